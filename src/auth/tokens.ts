import { createSigner, createVerifier, TokenError } from 'fast-jwt';
import { PushError } from '../domain/errors.js';
import { isValidPlatform, isValidUserId } from '../domain/ids.js';

/** What a verified client token grants. */
export interface TokenClaims {
  readonly userId: string;
  /** Expiry in ms. */
  readonly exp: number;
  readonly platform: string;
  /** `iat` in ms (whole seconds), when the token has one: revocation compares it. */
  readonly issuedAt?: number;
  /** False when the token carries no `platform` claim (`platform` is then the default). */
  readonly platformClaimed?: boolean;
  /** Allowed topic patterns (`*` suffix wildcard); null = only `$all`. */
  readonly topics: readonly string[] | null;
}

export const SUPPORTED_ALGS = ['HS256', 'HS384', 'HS512', 'RS256', 'ES256'] as const;
export type JwtAlg = (typeof SUPPORTED_ALGS)[number];

/** Platform label when a token carries none. */
export const DEFAULT_PLATFORM = 'unknown';

/** Claim checks every app's verifier applies (PUSH_JWT_AUDIENCE, PUSH_JWT_CLOCK_TOLERANCE). */
export interface TokenChecks {
  /** When non-empty, a token's `aud` must name one of these. */
  readonly audience?: readonly string[];
  /** Leeway for `exp` and `nbf`, for clocks that disagree a little. */
  readonly clockToleranceMs?: number;
}

/** An app's token verifier: built once per app key, called synchronously per handshake. */
export type TokenVerifier = (token: string) => Record<string, unknown>;

/**
 * The app's verifier, built once: it accepts only the app's configured algorithm (so
 * `alg: none` and algorithm confusion are refused) and requires `sub` and `exp`. A public
 * key that cannot be used for the algorithm is a `bad_request`.
 *
 * fast-jwt verifies with node:crypto in the calling thread (≈ 8 µs for HS256 here). jose
 * verified through WebCrypto, whose every call is a job on libuv's thread pool: ≈ 80–120 µs
 * of the main thread's CPU per handshake on the bench VM, the largest single cost of a connect.
 */
export function createTokenVerifier(alg: string, key: string, checks: TokenChecks = {}): TokenVerifier {
  if (!(SUPPORTED_ALGS as readonly string[]).includes(alg)) {
    throw new PushError('bad_request', `jwt alg must be one of ${SUPPORTED_ALGS.join(', ')}`);
  }
  const audience = checks.audience ?? [];
  try {
    return createVerifier({
      key,
      algorithms: [alg as JwtAlg],
      requiredClaims: audience.length > 0 ? ['sub', 'exp', 'aud'] : ['sub', 'exp'],
      ...(audience.length > 0 ? { allowedAud: [...audience] } : {}),
      ...(checks.clockToleranceMs ? { clockTolerance: checks.clockToleranceMs } : {}),
    });
  } catch (err) {
    throw new PushError('bad_request', `jwt key unusable for ${alg}: ${(err as Error).message}`);
  }
}

/** Verifies a client JWT with the app's verifier and checks the claims this service reads. */
export function verifyClientToken(token: string, verify: TokenVerifier): TokenClaims {
  let payload: Record<string, unknown>;
  try {
    payload = verify(token);
  } catch (err) {
    throw tokenFailure(err);
  }
  return claimsOf(payload);
}

/** The same for a verifier that may have to fetch its key (a JWKS app). */
export async function verifyClientTokenAsync(
  token: string,
  verify: (token: string) => Promise<Record<string, unknown>>,
): Promise<TokenClaims> {
  let payload: Record<string, unknown>;
  try {
    payload = await verify(token);
  } catch (err) {
    throw tokenFailure(err);
  }
  return claimsOf(payload);
}

function tokenFailure(err: unknown): PushError {
  if (err instanceof PushError) return err;
  if (err instanceof TokenError && err.code === TokenError.codes.expired) {
    return new PushError('token_expired', 'token expired');
  }
  return new PushError('unauthorized', `invalid token: ${describeTokenError(err)}`);
}

function claimsOf(payload: Record<string, unknown>): TokenClaims {
  if (!isValidUserId(payload.sub)) throw new PushError('unauthorized', 'invalid token: bad sub');
  if (typeof payload.exp !== 'number') throw new PushError('unauthorized', 'invalid token: bad exp');
  const platform = payload.platform ?? DEFAULT_PLATFORM;
  if (!isValidPlatform(platform)) throw new PushError('unauthorized', 'invalid token: bad platform');
  const topics = payload.topics;
  if (topics !== undefined && !(Array.isArray(topics) && topics.every((t) => typeof t === 'string'))) {
    throw new PushError('unauthorized', 'invalid token: topics must be an array of strings');
  }
  return {
    userId: payload.sub,
    exp: payload.exp * 1000,
    platform,
    platformClaimed: payload.platform !== undefined,
    ...(typeof payload.iat === 'number' ? { issuedAt: payload.iat * 1000 } : {}),
    topics: (topics as string[] | undefined) ?? null,
  };
}

function describeTokenError(err: unknown): string {
  if (!(err instanceof TokenError)) return 'malformed';
  switch (err.code) {
    case TokenError.codes.invalidSignature:
      return 'signature mismatch';
    case TokenError.codes.invalidAlgorithm:
      return 'algorithm not allowed';
    case TokenError.codes.invalidCritHeader:
      return 'unsupported critical header';
    case TokenError.codes.missingRequiredClaim:
    case TokenError.codes.invalidClaimType:
    case TokenError.codes.invalidClaimValue:
    case TokenError.codes.inactive:
      return err.message.replace(/\.$/, '');
    default:
      return 'malformed';
  }
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
  const claims: Record<string, unknown> = {};
  if (options.platform) claims.platform = options.platform;
  if (options.topics) claims.topics = [...options.topics];
  const sign = createSigner({
    key: options.secret,
    algorithm: (options.alg ?? 'HS256') as JwtAlg,
    sub: options.userId,
    expiresIn: options.ttlSeconds * 1000,
  });
  return sign(claims);
}
