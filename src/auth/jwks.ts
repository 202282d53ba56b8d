import { KeyObject, type webcrypto } from 'node:crypto';
import { createRemoteJWKSet, decodeProtectedHeader, errors, type RemoteJWKSet } from 'jose';
import { PushError } from '../domain/errors.js';
import { createTokenVerifier, type TokenChecks, type TokenVerifier } from './tokens.js';

/** How a JWKS is fetched and kept (PUSH_JWKS_CACHE_MS, PUSH_JWKS_COOLDOWN_MS). */
export interface JwksOptions {
  /** Keys are fetched again after this long, whether or not a token asked for a new one. */
  readonly cacheMs: number;
  /** A token naming an unknown `kid` fetches the set again only this long after the last fetch. */
  readonly cooldownMs: number;
  /** One fetch may take this long. */
  readonly timeoutMs: number;
}

export const DEFAULT_JWKS_OPTIONS: JwksOptions = { cacheMs: 600_000, cooldownMs: 30_000, timeoutMs: 5_000 };

/** A verifier whose key comes from the network: a key set found by the token's `kid`. */
export type KeySetVerifier = (token: string) => Promise<Record<string, unknown>>;

/** An app's token key is a JWKS when it is an http(s) URL (a PEM key or an RS/ES app never is one). */
export function isJwksUrl(key: string): boolean {
  return /^https?:\/\//i.test(key);
}

/** Checks a JWKS URL given for an app: absolute http(s), no credentials in it. */
export function checkJwksUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PushError('bad_request', `JWKS URL "${url.slice(0, 200)}" is not a URL`);
  }
  if (!/^https?:$/.test(parsed.protocol)) throw new PushError('bad_request', 'JWKS URL must be http(s)');
  if (parsed.username || parsed.password)
    throw new PushError('bad_request', 'JWKS URL must not carry credentials');
}

/**
 * Remote key sets, one per URL, kept across the app cache's refreshes so a set is fetched on
 * its own schedule (jose's `createRemoteJWKSet`: cached for `cacheMs`, fetched again for an
 * unknown `kid` at most once per `cooldownMs`, one fetch at a time) and not per app lookup.
 */
export class KeySets {
  private readonly sets = new Map<string, RemoteJWKSet>();

  constructor(private readonly options: JwksOptions = DEFAULT_JWKS_OPTIONS) {}

  /**
   * The app's verifier: picks the key by the token's `kid` (and `alg`), then verifies with a
   * fast-jwt verifier built once per key, so the claim checks are those of every other app.
   */
  verifier(url: string, alg: string, checks: TokenChecks): KeySetVerifier {
    const set = this.set(url);
    const byKey = new WeakMap<object, TokenVerifier>();
    return async (token) => {
      let header: ReturnType<typeof decodeProtectedHeader>;
      try {
        header = decodeProtectedHeader(token);
      } catch {
        throw new PushError('unauthorized', 'invalid token: malformed');
      }
      if (header.alg !== alg) throw new PushError('unauthorized', 'invalid token: algorithm not allowed');
      let key: webcrypto.CryptoKey;
      try {
        key = (await set(header)) as webcrypto.CryptoKey;
      } catch (err) {
        throw keySetFailure(err, url);
      }
      let verify = byKey.get(key);
      if (!verify) {
        const pem = KeyObject.from(key).export({ type: 'spki', format: 'pem' }).toString();
        verify = createTokenVerifier(alg, pem, checks);
        byKey.set(key, verify);
      }
      return verify(token);
    };
  }

  private set(url: string): RemoteJWKSet {
    let set = this.sets.get(url);
    if (!set) {
      set = createRemoteJWKSet(new URL(url), {
        cacheMaxAge: this.options.cacheMs,
        cooldownDuration: this.options.cooldownMs,
        timeoutDuration: this.options.timeoutMs,
      });
      this.sets.set(url, set);
    }
    return set;
  }
}

/**
 * A token the set has no key for (unknown `kid`, wrong key type) is the client's fault: 401. A
 * set that cannot be fetched is ours: 503, retryable, and the valid token stays valid.
 */
function keySetFailure(err: unknown, url: string): PushError {
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys)
    return new PushError('unauthorized', "invalid token: no key in the app's key set matches its kid");
  if (err instanceof errors.JOSENotSupported)
    return new PushError('unauthorized', 'invalid token: unusable key');
  return new PushError('unavailable', `the app's key set (${new URL(url).host}) cannot be fetched now`, {
    cause: err,
  });
}
