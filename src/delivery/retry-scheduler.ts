import { isAddressed } from '../domain/message.js';
import type { Hub } from '../gateway/hub.js';
import { MessageFrames } from '../gateway/protocol/codec.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { DeliveryStore, RetryUpdate } from '../store/store.js';

export interface RetryOptions {
  /** First resend after this long; each next one waits `backoff` times longer (5 s, 15 s, 45 s, …). */
  readonly resendMs: number;
  /** Resends before a delivery is `failed`. */
  readonly maxRetries: number;
  readonly backoff: number;
}

/** Rows taken per scan: the scheduler's memory bound. */
const SCAN = 500;

/**
 * Resends messages that were written to a connection but not acked. One timer for all of
 * them; its only state is in the store (`next_retry_at`, `retries`), so it costs no memory
 * per message and survives restarts. A due delivery whose user has no live connection here
 * is disarmed: the next connection replays it as backlog, which arms it again.
 *
 * Several nodes (`cluster`): a node looks only at deliveries of users it holds a connection
 * of, or that no live node holds (those it disarms); one whose user is online on another node
 * is left armed for that node to resend, never disarmed from here.
 */
export class RetryScheduler {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly store: DeliveryStore,
    private readonly hub: Hub,
    private readonly options: RetryOptions,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly cluster: { nodeId: string; heartbeatMs: number } | null = null,
  ) {}

  start(): void {
    const every = Math.min(1000, Math.max(20, Math.floor(this.options.resendMs / 4)));
    this.timer ??= setInterval(() => {
      this.running ??= this.tick(Date.now()).finally(() => {
        this.running = null;
      });
    }, every);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  async tick(now: number): Promise<void> {
    try {
      for (;;) {
        const scope = this.cluster && {
          node: this.cluster.nodeId,
          freshSince: now - 2 * this.cluster.heartbeatMs,
        };
        const due = await this.store.dueRetries(now, SCAN, scope ?? undefined);
        const updates: RetryUpdate[] = [];
        let skipped = 0;
        for (const d of due) {
          const key = {
            appId: d.message.appId,
            userId: d.userId,
            seq: d.seq,
            ...(this.cluster ? { dueBy: now } : {}),
          };
          const sessions = this.hub
            .liveSessionsOf(key.appId, key.userId)
            .filter((s) => isAddressed(d.message.platforms, d.devices, s.platform, s.device));
          if (sessions.length === 0 && d.onlineElsewhere) {
            skipped++; // the node holding the user resends it; the row stays armed for it
          } else if (sessions.length === 0) {
            updates.push({ kind: 'disarm', ...key });
          } else if (d.retries >= this.options.maxRetries) {
            updates.push({ kind: 'failed', ...key });
          } else {
            const frames = new MessageFrames(d.message);
            for (const s of sessions) this.hub.resend(s, d.seq, frames.user(s.codec.kind, d.seq));
            const delay = this.options.resendMs * this.options.backoff ** (d.retries + 1);
            updates.push({ kind: 'resent', ...key, nextRetryAt: now + delay });
          }
        }
        if (updates.length > 0) await this.store.updateRetries(updates);
        this.metrics.retries.inc(updates.filter((u) => u.kind === 'resent').length);
        this.metrics.failures.inc(updates.filter((u) => u.kind === 'failed').length);
        // Rows left armed would be read again: the next tick continues past them.
        if (due.length < SCAN || skipped > 0) return;
      }
    } catch (err) {
      this.log.warn({ err }, 'retry pass failed; will retry');
    }
  }
}
