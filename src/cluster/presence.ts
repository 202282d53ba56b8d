import type { Bus } from '../bus/bus.js';
import type { ConnectionInfo, Hub } from '../gateway/hub.js';
import type { PresenceStore } from '../store/store.js';

/**
 * Presence, kicks and the per-user connection count for the whole deployment.
 *
 * One node: the hub is the whole truth, answered from memory. Several nodes (a bus is
 * configured): this node's share comes from its hub, the others' from the store's
 * connections table, which every node keeps in step (opens and closes group-committed), and
 * the nodes table, whose row each node refreshes once per interval. A connection counts only
 * while its node's heartbeat is fresher than two intervals, so a node that died stops
 * counting at once, before any sweep marks its rows offline. Kicks travel on the bus to
 * whichever node holds the sockets.
 */
export class Presence {
  constructor(
    private readonly hub: Hub,
    private readonly bus: Bus,
    private readonly cluster: { store: PresenceStore; nodeId: string; heartbeatMs: number } | null,
  ) {}

  /** Every connection of these users, this node's first. */
  async of(appId: string, userIds: readonly string[]): Promise<Map<string, ConnectionInfo[]>> {
    const result = new Map<string, ConnectionInfo[]>();
    for (const u of userIds) result.set(u, this.hub.presenceOf(appId, u));
    for (const r of await this.remote(appId, userIds)) {
      const { user_id, ...info } = r;
      result.get(user_id)?.push(info);
    }
    return result;
  }

  /** Connections of a user held by other nodes (0 on one node): for the cluster-wide limit. */
  async countElsewhere(appId: string, userId: string): Promise<number> {
    return this.cluster ? (await this.remote(appId, [userId])).length : 0;
  }

  /** Closes the user's connections (or one device's) with 4003 on every node; returns how many. */
  async kick(appId: string, userId: string, device?: string): Promise<number> {
    const elsewhere = (await this.remote(appId, [userId])).filter(
      (r) => device === undefined || r.device === device,
    ).length;
    const here = this.hub.kick(appId, userId, device);
    if (this.cluster) this.bus.publish({ kind: 'kick', appId, userId, ...(device ? { device } : {}) });
    return here + elsewhere;
  }

  private async remote(appId: string, userIds: readonly string[]) {
    if (!this.cluster) return [];
    const { store, nodeId, heartbeatMs } = this.cluster;
    return store.remoteConnections(appId, userIds, nodeId, Date.now() - 2 * heartbeatMs);
  }
}
