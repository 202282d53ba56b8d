import type { Logger } from '../observability/logger.js';
import { GroupCommit } from '../store/group-commit.js';
import type { ConnectionChange, PresenceStore } from '../store/store.js';

/**
 * How long an open or close waits for company. During a connect storm one transaction per
 * few dozen handshakes instead of one or two: the commit was ≈ 80 µs of every connect here.
 * Other nodes count a connection (the cluster-wide per-user limit) this much later at most.
 */
const WINDOW_MS = 20;

/**
 * Keeps the store's connections table (online/offline) in step with the hub, in batches:
 * opens and closes are group-committed; the node's heartbeat is one row per interval, which
 * vouches for all of its connections.
 */
export class ConnectionLog {
  private readonly commit: GroupCommit<ConnectionChange, void>;

  constructor(
    private readonly store: PresenceStore,
    private readonly nodeId: string,
    private readonly log: Logger,
  ) {
    this.commit = new GroupCommit<ConnectionChange, void>(
      async (changes) => {
        await store.recordConnections(changes);
        return [];
      },
      1000,
      WINDOW_MS,
    );
  }

  opened(c: Omit<ConnectionChange & { kind: 'open' }, 'kind' | 'node'>): void {
    this.record({ kind: 'open', node: this.nodeId, ...c });
  }

  closed(connectionId: string, at: number): void {
    this.record({ kind: 'close', connectionId, at });
  }

  heartbeat(now: number): void {
    this.store.touchNode(this.nodeId, now).catch((err: unknown) => {
      this.log.warn({ err }, 'could not record the node heartbeat');
    });
  }

  flush(): Promise<void> {
    return this.commit.flush();
  }

  private record(change: ConnectionChange): void {
    this.commit.submit(change).catch((err: unknown) => {
      // Presence is served from memory; the table is bookkeeping and catches up on the next change.
      this.log.warn({ err, connectionId: change.connectionId }, 'could not record connection change');
    });
  }
}
