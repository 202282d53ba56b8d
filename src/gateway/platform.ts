import type { TokenClaims } from '../auth/tokens.js';
import { PushError } from '../domain/errors.js';

/** The seed's socket path, the only one where a `PLATFORM:` prefix on the token counts. */
export const SEED_SOCKET_PATH = '/message-push/v1/message';

/**
 * Platform labels that get their own metric series. Anything else a token names is still the
 * connection's platform (for `platforms` filters and presence) but is counted as `other`, so
 * clients cannot grow the label set of `push_connections` without bound.
 */
export const KNOWN_PLATFORMS: ReadonlySet<string> = new Set([
  'web',
  'pc',
  'desktop',
  'mobile',
  'ios',
  'android',
  'iot',
  'server',
  'unknown',
]);

export function platformLabel(platform: string): string {
  return KNOWN_PLATFORMS.has(platform) ? platform : 'other';
}

/**
 * The connection's platform: the token's claim. On the seed's socket path a `PLATFORM:`
 * prefix fills in a missing claim; a prefix that contradicts the claim is refused (401), as
 * the token's issuer, not the client, decides the platform. Elsewhere the prefix is ignored.
 */
export function resolvePlatform(path: string, prefix: string | null, claims: TokenClaims): string {
  if (prefix === null || path !== SEED_SOCKET_PATH) return claims.platform;
  if (claims.platformClaimed === false) return prefix;
  if (prefix !== claims.platform) {
    throw new PushError('unauthorized', `platform prefix "${prefix}" differs from the token's platform`);
  }
  return prefix;
}
