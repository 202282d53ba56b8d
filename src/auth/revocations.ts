import type { Bus } from '../bus/bus.js';
import { PushError } from '../domain/errors.js';
import type { AppStore } from '../store/store.js';
import type { TokenClaims } from './tokens.js';

/**
 * Token revocation (`POST /v1/users/{user}/revoke`): per (app, user) the instant before which
 * its tokens are refused. The store keeps it, so a node that starts later loads it; the bus
 * tells running nodes at once; each node answers from memory, so a handshake costs no read.
 *
 *   node A: revoke ─► store ─► own cache ─► bus {kind:'revoke_tokens'} ─► node B: cache, close 4003
 */
export class Revocations {
  private readonly before = new Map<string, number>();

  constructor(private readonly store: AppStore) {}

  /** Fills the cache from the store (at start, before the node accepts clients). */
  async load(): Promise<void> {
    for (const r of await this.store.listRevocations()) this.note(r.appId, r.userId, r.beforeMs);
  }

  /** Records a revocation cluster-wide: durable first, then this node, then the others. */
  async revoke(appId: string, userId: string, beforeMs: number, bus: Bus): Promise<void> {
    await this.store.revokeTokens(appId, userId, beforeMs);
    this.note(appId, userId, beforeMs);
    bus.publish({ kind: 'revoke_tokens', appId, userId, before: beforeMs });
  }

  /** A revocation heard from the bus (or made here); instants only move forwards. */
  note(appId: string, userId: string, beforeMs: number): void {
    const k = `${appId}\0${userId}`;
    if ((this.before.get(k) ?? -1) < beforeMs) this.before.set(k, beforeMs);
  }

  /**
   * Refuses a token issued before the user's revocation (401 / `unauthorized` on refresh).
   * `iat` has whole seconds, so a token minted in the very second of a revocation is refused
   * too; a token without `iat` cannot show it came later and is refused once its user is revoked.
   */
  check(appId: string, claims: TokenClaims): void {
    const before = this.before.get(`${appId}\0${claims.userId}`);
    if (before === undefined) return;
    if (claims.issuedAt === undefined || claims.issuedAt < before) {
      throw new PushError('unauthorized', 'token revoked');
    }
  }
}
