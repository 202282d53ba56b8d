import { importSPKI, type JWTPayload, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { PushError } from '../domain/errors.js';
import { isValidPlatform, isValidUserId } from '../domain/ids.js';

/** What a verified client token grants. */
export interface TokenClaims {
  readonly userId: string;
  /** Expiry in ms. */
  readonly exp: number;
  readonly platform: string;
  /** Allowed topic patterns (`*` suffix wildcard); null = only `$all`. */
  readonly topics: readonly string[] | null;
}

export const SUPPORTED_ALGS = ['HS256', 'HS384', 'HS512', 'RS256', 'ES256'] as const;
export type JwtAlg = (typeof SUPPORTED_ALGS)[number];

/** Platform label when a token carries none. */
export const DEFAULT_PLATFORM = 'unknown';

export type VerifyKey = Awaited<ReturnType<typeof importSPKI>>;

/**
 * The app's verification key, imported once. jose handed raw HMAC bytes imports them into a
 * WebCrypto key on every verify, which profiling showed as a third of a handshake's CPU.
 */
export async function importVerifyKey(alg: string, key: string): Promise<VerifyKey> {
  if (alg.startsWith('HS')) {
    return crypto.subtle.importKey(
      'raw',
      new TextEncoder().encode(key),
      { name: 'HMAC', hash: `SHA-${alg.slice(2)}` },
      false,
      ['verify'],
    );
  }
  return importSPKI(key, alg);
}

/**
 * Verifies a client JWT with the app's key, accepting only the app's configured algorithm
 * (so `alg: none` and algorithm confusion are refused). Requires `sub` and `exp`.
 */
export async function verifyClientToken(token: string, key: VerifyKey, alg: string): Promise<TokenClaims> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, key, { algorithms: [alg], requiredClaims: ['sub', 'exp'] }));
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) throw new PushError('token_expired', 'token expired');
    throw new PushError('unauthorized', `invalid token: ${describeJoseError(err)}`);
  }
  if (!isValidUserId(payload.sub)) throw new PushError('unauthorized', 'invalid token: bad sub');
  const platform = payload.platform ?? DEFAULT_PLATFORM;
  if (!isValidPlatform(platform)) throw new PushError('unauthorized', 'invalid token: bad platform');
  const topics = payload.topics;
  if (topics !== undefined && !(Array.isArray(topics) && topics.every((t) => typeof t === 'string'))) {
    throw new PushError('unauthorized', 'invalid token: topics must be an array of strings');
  }
  return {
    userId: payload.sub,
    exp: (payload.exp as number) * 1000,
    platform,
    topics: topics ?? null,
  };
}

function describeJoseError(err: unknown): string {
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `claim ${err.claim} ${err.reason}`;
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'signature mismatch';
  if (err instanceof joseErrors.JOSEError) return err.code;
  return 'malformed';
}

/** Mints an HS* token (CLI `token`, demo page, tests). */
export async function signClientToken(options: {
  secret: string;
  alg?: string;
  userId: string;
  ttlSeconds: number;
  platform?: string;
  topics?: readonly string[];
}): Promise<string> {
  const claims: JWTPayload = {};
  if (options.platform) claims.platform = options.platform;
  if (options.topics) claims.topics = [...options.topics];
  return new SignJWT(claims)
    .setProtectedHeader({ alg: options.alg ?? 'HS256', typ: 'JWT' })
    .setSubject(options.userId)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + options.ttlSeconds)
    .sign(new TextEncoder().encode(options.secret));
}
