import type { Logger } from '../observability/logger.js';
import { GroupCommit } from '../store/group-commit.js';
import type { DeliveryStore, DeliveryUpdate } from '../store/store.js';

/** How long a status write may wait for others to share its transaction. */
const STATUS_WINDOW_MS = 5;

/**
 * Delivery status writes (sent, acked) batched into group commits. Reads that must see
 * every ack received so far call `flush()` first: an ack is visible to any API call made
 * after its frame arrived.
 */
export class StatusWriter {
  private readonly commit: GroupCommit<DeliveryUpdate, number>;
  private sent = new Map<string, { appId: string; userId: string; seqs: number[]; at: number }>();
  private sentScheduled = false;
  /**
   * Called once a read cursor moved, with the cursor after the move and the connection that
   * read (if any): the composition root sends it to the user's other devices.
   */
  onRead: ((appId: string, userId: string, seq: number, except?: string) => void) | null = null;

  constructor(
    store: DeliveryStore,
    /** Delay before the first resend of a message written but not acked. */
    private readonly resendMs: number,
    private readonly log: Logger,
  ) {
    // Status writes wait a few ms for company: one transaction per handful of acks and sent
    // marks instead of one each (commits were a tenth of the CPU at 1000 direct pushes/s).
    // Reads that must see them flush first, so only an ack's `ok` reply waits for the window.
    this.commit = new GroupCommit((updates) => store.applyDeliveryUpdates(updates), 500, STATUS_WINDOW_MS);
  }

  /**
   * Records that frames were written to a socket; merged per user within one event-loop turn.
   * seq 0 marks a topic frame, which has no per-user status: a broadcast's writes cost a loop
   * over one element here and nothing else.
   */
  markSent(appId: string, userId: string, seqs: readonly number[], at: number): void {
    let entry: { seqs: number[] } | undefined;
    for (const seq of seqs) {
      if (seq === 0) continue;
      entry ??= this.sentEntry(appId, userId, at);
      entry.seqs.push(seq);
    }
  }

  private sentEntry(appId: string, userId: string, at: number): { seqs: number[] } {
    const k = `${appId}\0${userId}`;
    let entry = this.sent.get(k);
    if (!entry) {
      entry = { appId, userId, seqs: [], at };
      this.sent.set(k, entry);
    }
    if (!this.sentScheduled) {
      this.sentScheduled = true;
      setImmediate(() => this.submitSent());
    }
    return entry;
  }

  /** Applies an ack; resolves with how many deliveries moved to `acked`. */
  ack(update: DeliveryUpdate & { kind: 'ack_upto' | 'ack_ids' }): Promise<number> {
    this.submitSent();
    return this.commit.submit(update);
  }

  /** Moves the user's read cursor; resolves with the cursor after the move. `from`: the connection that read. */
  async read(appId: string, userId: string, seq: number, from?: string): Promise<number> {
    const cursor = await this.commit.submit({ kind: 'read', appId, userId, seq });
    this.onRead?.(appId, userId, cursor, from);
    return cursor;
  }

  async flush(): Promise<void> {
    this.submitSent();
    await this.commit.flush();
  }

  private submitSent(): void {
    this.sentScheduled = false;
    if (this.sent.size === 0) return;
    const batch = this.sent;
    this.sent = new Map();
    for (const { appId, userId, seqs, at } of batch.values()) {
      this.commit
        .submit({ kind: 'sent', appId, userId, seqs, at, retryAt: at + this.resendMs })
        .catch((err: unknown) => {
          // The message itself is safe: it stays `pending` and is replayed on the next connection.
          this.log.warn({ err, appId, count: seqs.length }, 'could not record sent status');
        });
    }
  }
}
