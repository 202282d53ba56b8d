import { ALL_TOPIC } from '../domain/message.js';
import type { Session } from '../gateway/session.js';
import type { Logger } from '../observability/logger.js';
import { GroupCommit } from '../store/group-commit.js';
import { ALL_MUTED } from '../store/sql/cluster-sql.js';
import type { PresenceStore, SubscriptionChange } from '../store/store.js';

/** As the connection log: changes wait this long for company, so a subscribe storm is a few transactions. */
const WINDOW_MS = 20;

/**
 * Cluster mode: keeps the store's subscriptions table in step with this node's topic
 * subscriptions (and its `$all` opt-outs), group-committed, so other nodes can count a
 * topic's recipients and list its presence. Other nodes see a change at most WINDOW_MS plus
 * one commit after it happened here.
 */
export class SubscriptionLog {
  private readonly commit: GroupCommit<SubscriptionChange, void>;
  /** Connections with rows in the table: only their close needs a delete. */
  private readonly withRows = new Set<string>();

  constructor(
    store: PresenceStore,
    private readonly nodeId: string,
    private readonly log: Logger,
  ) {
    this.commit = new GroupCommit<SubscriptionChange, void>(
      async (changes) => {
        await store.recordSubscriptions(changes);
        return [];
      },
      1000,
      WINDOW_MS,
    );
  }

  /** Hub event: `subscribed` for `$all` means "receives app-wide broadcasts" (a row marks the opt-out). */
  changed(s: Session, topic: string, subscribed: boolean): void {
    const row = topic === ALL_TOPIC ? ALL_MUTED : topic;
    const add = topic === ALL_TOPIC ? !subscribed : subscribed;
    if (add) {
      this.withRows.add(s.id);
      this.record({
        kind: 'subscribe',
        connectionId: s.id,
        appId: s.appId,
        userId: s.userId,
        topic: row,
        node: this.nodeId,
      });
    } else if (this.withRows.has(s.id)) {
      this.record({ kind: 'unsubscribe', connectionId: s.id, topic: row });
    }
  }

  closed(connectionId: string): void {
    if (this.withRows.delete(connectionId)) this.record({ kind: 'close', connectionId });
  }

  flush(): Promise<void> {
    return this.commit.flush();
  }

  private record(change: SubscriptionChange): void {
    this.commit.submit(change).catch((err: unknown) => {
      // Counts on other nodes are off until the next change of this connection; delivery is not affected.
      this.log.warn({ err, connectionId: change.connectionId }, 'could not record subscription change');
    });
  }
}
