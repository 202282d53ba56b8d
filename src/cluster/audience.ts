import type { Hub } from '../gateway/hub.js';
import type { Audience } from '../ingest/ingest.js';
import type { PresenceStore } from '../store/store.js';

/**
 * A remote topic count is reused this long by the pushes of one topic, and concurrent pushes
 * share one query: a busy room costs a query per window, not one per message. A topic
 * presence read refreshes it.
 */
const COUNT_REUSE_MS = 100;
/** Users looked up per query for ttl 0. */
const CHUNK = 500;

export interface ClusterView {
  readonly store: PresenceStore;
  readonly nodeId: string;
  readonly heartbeatMs: number;
}

/**
 * Who is connected, for the whole deployment: ttl-0 pushes (who is online), topic and `$all`
 * recipient counts, and topic presence. One node: its hub is the whole truth. Several nodes:
 * this node's share from its hub, the others' from the store's connections and subscriptions
 * tables (kept by each node within a group-commit window) of nodes whose heartbeat is fresh.
 */
export class ClusterAudience implements Audience {
  private readonly counts = new Map<string, { at: number; value: Promise<number> }>();

  constructor(
    private readonly hub: Hub,
    private readonly cluster: ClusterView | null,
  ) {}

  async onlineAmong(appId: string, users: readonly string[]): Promise<Set<string>> {
    const online = new Set<string>();
    const elsewhere: string[] = [];
    for (const u of users) {
      if (this.hub.isOnline(appId, u)) online.add(u);
      else elsewhere.push(u);
    }
    if (!this.cluster || elsewhere.length === 0) return online;
    const { store, nodeId } = this.cluster;
    for (let i = 0; i < elsewhere.length; i += CHUNK) {
      const rows = await store.remoteConnections(
        appId,
        elsewhere.slice(i, i + CHUNK),
        nodeId,
        this.freshSince(),
      );
      for (const r of rows) online.add(r.user_id);
    }
    return online;
  }

  async countTopicConnections(appId: string, topic: string): Promise<number> {
    const here = this.hub.countTopicConnections(appId, topic);
    if (!this.cluster) return here;
    const key = `${appId}\0${topic}`;
    const now = Date.now();
    let entry = this.counts.get(key);
    if (!entry || now - entry.at > COUNT_REUSE_MS) {
      if (this.counts.size > 10_000) this.counts.clear();
      const value = this.remote(appId, topic, false).then((r) => r.connections);
      // A failed count is not reused.
      value.catch(() => this.counts.delete(key));
      entry = { at: now, value };
      this.counts.set(key, entry);
    }
    return here + (await entry.value);
  }

  async topicPresence(appId: string, topic: string): Promise<{ users: string[]; connections: number }> {
    const here = this.hub.topicPresence(appId, topic);
    if (!this.cluster) return here;
    const there = await this.remote(appId, topic, true);
    // The freshest count there is: pushes from now on use it.
    this.counts.set(`${appId}\0${topic}`, { at: Date.now(), value: Promise.resolve(there.connections) });
    return {
      users: [...new Set([...here.users, ...there.users])],
      connections: here.connections + there.connections,
    };
  }

  private remote(appId: string, topic: string, users: boolean) {
    const { store, nodeId } = this.cluster!;
    return store.remoteTopicAudience({
      appId,
      topic,
      exceptNode: nodeId,
      freshSince: this.freshSince(),
      users,
    });
  }

  /** A node whose heartbeat is older than two intervals is dead: its connections do not count. */
  private freshSince(): number {
    return Date.now() - 2 * this.cluster!.heartbeatMs;
  }
}
