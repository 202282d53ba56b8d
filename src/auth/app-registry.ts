import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AppBootstrap } from '../config.js';
import { PushError } from '../domain/errors.js';
import { isValidAppId } from '../domain/ids.js';
import type { AppRecord, AppStore } from '../store/store.js';
import { checkJwksUrl, isJwksUrl, KeySets, type KeySetVerifier } from './jwks.js';
import type { Revocations } from './revocations.js';
import {
  createTokenVerifier,
  SUPPORTED_ALGS,
  type TokenChecks,
  type TokenClaims,
  type TokenVerifier,
  verifyClientToken,
  verifyClientTokenAsync,
} from './tokens.js';

/** How long a looked-up app is trusted before the store is asked again (rotation takes effect within it). */
const CACHE_MS = 5_000;

/** An app's verifier: local keys verify in the calling thread; a JWKS may have to fetch its key. */
type AppVerifier =
  | { readonly remote: false; readonly verify: TokenVerifier }
  | { readonly remote: true; readonly verify: KeySetVerifier };

interface CachedApp {
  readonly record: AppRecord | undefined;
  /** The app's token verifier; the error instead when its stored key cannot be used. */
  readonly verifier: AppVerifier | PushError | null;
  readonly until: number;
}

/** A new token algorithm and/or key for an app (`app create|rotate|update`). */
export interface TokenKeyChange {
  readonly jwtAlg?: string;
  /** HS key, RS/ES public key (PEM), or for RS/ES a JWKS URL (http(s)). */
  readonly jwtKey?: string;
}

/**
 * Apps (tenants): lookup with a short cache, API secret checks, client token checks,
 * creation and rotation. Secrets are kept as salted hashes; the HS256 JWT key is, by
 * default, the secret itself, which the server has to hold to verify HMAC signatures.
 */
/** Configured app secrets shorter than this stop the start (`config_invalid`); generated ones carry 256 bits. */
export const MIN_SECRET_LENGTH = 24;

export class AppRegistry {
  private readonly cache = new Map<string, CachedApp>();

  /** Set by the composition root: tokens issued before a user's revocation are refused. */
  revocations: Pick<Revocations, 'check'> | null = null;

  constructor(
    private readonly store: AppStore,
    private readonly checks: TokenChecks = {},
    private readonly keySets = new KeySets(),
  ) {}

  async find(appId: string): Promise<AppRecord | undefined> {
    return (await this.entry(appId)).record;
  }

  /** Checks `Authorization: Basic base64(app:secret)`. Wrong secret and unknown app look the same. */
  async verifyBasic(header: string | undefined): Promise<string> {
    const m = header ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
    if (!m) throw new PushError('unauthorized', 'Basic credentials required');
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    const appId = i > 0 ? decoded.slice(0, i) : '';
    const secret = i > 0 ? decoded.slice(i + 1) : '';
    const app = isValidAppId(appId) ? await this.find(appId) : undefined;
    // Hash even for unknown apps so timing does not tell which app ids exist.
    const actual = hashSecret(secret, app?.secretSalt ?? 'x');
    const expected = app?.secretHash ?? actual;
    if (!app || !timingSafeEqual(Buffer.from(actual), Buffer.from(expected))) {
      throw new PushError('unauthorized', 'invalid credentials');
    }
    return appId;
  }

  /** Verifies a client token for an app; `unknown_app` when the app does not exist. */
  async verifyToken(appId: string, token: string): Promise<TokenClaims> {
    const entry = isValidAppId(appId) ? await this.entry(appId) : undefined;
    if (!entry?.record || !entry.verifier)
      throw new PushError('unknown_app', `unknown app "${appId.slice(0, 64)}"`);
    if (entry.verifier instanceof PushError) throw entry.verifier;
    const claims = entry.verifier.remote
      ? await verifyClientTokenAsync(token, entry.verifier.verify)
      : verifyClientToken(token, entry.verifier.verify);
    this.revocations?.check(appId, claims);
    return claims;
  }

  /** Creates an app, or rotates its secret when it exists. Returns the new plain secret. */
  async createOrRotate(appId: string, options: TokenKeyChange & { secret?: string } = {}) {
    if (!isValidAppId(appId)) throw new PushError('bad_request', 'app id: 1..64 of [A-Za-z0-9._-]');
    if (options.secret !== undefined && options.secret.length < MIN_SECRET_LENGTH) {
      throw new PushError(
        'bad_request',
        `app "${appId}": a secret needs at least ${MIN_SECRET_LENGTH} characters`,
      );
    }
    const existing = await this.store.getApp(appId);
    // A rotation keeps the token algorithm and a key of its own (RS/ES public key, separate HS
    // key); a key that was the old secret (the default) follows the new secret.
    const ownKey = existing && !keyIsSecret(existing);
    if (existing && options.jwtAlg === undefined && options.jwtKey === undefined && ownKey) {
      options = { ...options, jwtAlg: existing.jwtAlg, jwtKey: existing.jwtKey };
    } else if (existing && options.jwtAlg === undefined && options.jwtKey === undefined) {
      options = { ...options, jwtAlg: existing.jwtAlg };
    }
    const jwtAlg = options.jwtAlg ?? 'HS256';
    checkTokenKey(jwtAlg, options.jwtKey);
    const secret = options.secret ?? randomBytes(32).toString('base64url');
    const salt = randomBytes(16).toString('base64url');
    const now = Date.now();
    const record: AppRecord = {
      appId,
      secretHash: hashSecret(secret, salt),
      secretSalt: salt,
      jwtAlg,
      jwtKey: options.jwtKey ?? secret,
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
    };
    await this.store.saveApp(record);
    this.cache.delete(appId);
    return { appId, secret, created: !existing };
  }

  /**
   * Changes an app's token algorithm and/or key and keeps its API secret. A new algorithm of
   * the other family (HS ↔ RS/ES) needs a new key: the secret is kept only as a hash.
   */
  async updateTokenKey(appId: string, change: TokenKeyChange): Promise<AppRecord> {
    const existing = isValidAppId(appId) ? await this.store.getApp(appId) : undefined;
    if (!existing) throw new PushError('not_found', `no app "${appId.slice(0, 64)}"`);
    const jwtAlg = change.jwtAlg ?? existing.jwtAlg;
    const sameFamily = jwtAlg.startsWith('HS') === existing.jwtAlg.startsWith('HS');
    const jwtKey = change.jwtKey ?? (sameFamily ? existing.jwtKey : undefined);
    if (jwtKey === undefined) throw new PushError('bad_request', `${jwtAlg} needs a key of its own`);
    checkTokenKey(jwtAlg, jwtKey);
    const record: AppRecord = { ...existing, jwtAlg, jwtKey, updatedAt: Date.now() };
    await this.store.saveApp(record);
    this.cache.delete(appId);
    return record;
  }

  /** PUSH_APPS: config is the source of truth for these apps' secrets. */
  async bootstrap(apps: readonly AppBootstrap[]): Promise<void> {
    for (const { appId, secret } of apps) {
      const existing = await this.store.getApp(appId);
      if (
        existing &&
        existing.secretHash === hashSecret(secret, existing.secretSalt) &&
        existing.jwtKey === secret
      ) {
        continue;
      }
      await this.createOrRotate(appId, { secret });
    }
  }

  private async entry(appId: string): Promise<CachedApp> {
    const now = Date.now();
    const cached = this.cache.get(appId);
    if (cached && cached.until > now) return cached;
    const record = await this.store.getApp(appId);
    const entry = {
      record,
      verifier: record ? this.storedVerifier(record) : null,
      until: now + CACHE_MS,
    };
    // Unknown ids are cached too (bounded) so a flood of bogus app ids cannot hammer the store.
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(appId, entry);
    return entry;
  }

  /**
   * A stored key that cannot be used (written before keys were checked, or by hand) fails the
   * app's handshakes with `internal`; its API calls still work.
   */
  private storedVerifier(record: AppRecord): AppVerifier | PushError {
    try {
      if (!record.jwtAlg.startsWith('HS') && isJwksUrl(record.jwtKey)) {
        checkJwksUrl(record.jwtKey);
        return { remote: true, verify: this.keySets.verifier(record.jwtKey, record.jwtAlg, this.checks) };
      }
      return { remote: false, verify: createTokenVerifier(record.jwtAlg, record.jwtKey, this.checks) };
    } catch {
      return new PushError('internal', `app "${record.appId}" has an unusable ${record.jwtAlg} key`);
    }
  }
}

/** What an app's token key is, for `app list`: its secret (the default), a key of its own, or a JWKS. */
export function tokenKeyKind(record: AppRecord): 'secret' | 'own key' | 'jwks' {
  if (!record.jwtAlg.startsWith('HS') && isJwksUrl(record.jwtKey)) return 'jwks';
  return keyIsSecret(record) ? 'secret' : 'own key';
}

/** True when the app's HS key is its API secret (the default), so the stored key is the secret. */
export function keyIsSecret(record: AppRecord): boolean {
  return hashSecret(record.jwtKey, record.secretSalt) === record.secretHash;
}

/** Refuses an unusable algorithm or key when it is given, not at every handshake. */
function checkTokenKey(jwtAlg: string, jwtKey: string | undefined): void {
  if (!(SUPPORTED_ALGS as readonly string[]).includes(jwtAlg)) {
    throw new PushError('bad_request', `jwt alg must be one of ${SUPPORTED_ALGS.join(', ')}`);
  }
  if (jwtKey === undefined) {
    if (!jwtAlg.startsWith('HS'))
      throw new PushError('bad_request', `${jwtAlg} needs a public key or a JWKS URL`);
    return;
  }
  if (!jwtAlg.startsWith('HS') && isJwksUrl(jwtKey)) checkJwksUrl(jwtKey);
  else createTokenVerifier(jwtAlg, jwtKey);
}

function hashSecret(secret: string, salt: string): string {
  return createHash('sha256').update(salt).update('\0').update(secret).digest('base64url');
}
