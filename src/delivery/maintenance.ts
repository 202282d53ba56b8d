import type { Logger } from '../observability/logger.js';
import type { MessageStore, PresenceStore } from '../store/store.js';

const EXPIRE_EVERY_MS = 1_000;
const PRUNE_EVERY_MS = 60_000;
const BATCH = 1_000;

/**
 * Background upkeep on one timer: marks deliveries whose ttl passed as `expired` (the API
 * already shows them expired; this makes the table agree), deletes messages past retention and
 * marks connections of dead nodes offline.
 * Work is done in bounded batches so one pass never holds the store for long.
 */
export class Maintenance {
  private timer: NodeJS.Timeout | null = null;
  private lastPrune = 0;
  private lastStaleSweep = 0;
  private running: Promise<void> | null = null;

  constructor(
    private readonly store: MessageStore & PresenceStore,
    private readonly options: {
      retentionMs: number;
      heartbeatMs: number;
      nodeId: string;
      topicRetentionCount: number;
      topicRetentionMs: number;
    },
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => {
      this.running ??= this.pass(Date.now()).finally(() => {
        this.running = null;
      });
    }, EXPIRE_EVERY_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One pass; exported for tests with a chosen clock. */
  async pass(now: number): Promise<void> {
    try {
      while ((await this.store.expireDue(now, BATCH)) === BATCH) {}
      const hb = this.options.heartbeatMs;
      if (now - this.lastStaleSweep >= hb / 2) {
        this.lastStaleSweep = now;
        // Live nodes refresh their row every heartbeat; one two intervals old is a dead node.
        // Presence already ignores its connections; this makes the table say so.
        await this.store.markStaleOffline(now - 2 * hb, now, this.options.nodeId);
      }
      if (now - this.lastPrune >= PRUNE_EVERY_MS) {
        this.lastPrune = now;
        while ((await this.store.pruneBefore(now - this.options.retentionMs, BATCH)) === BATCH) {}
        await this.store.pruneTopics(this.options.topicRetentionCount, now - this.options.topicRetentionMs);
      }
    } catch (err) {
      this.log.warn({ err }, 'maintenance pass failed; will retry');
    }
  }
}
