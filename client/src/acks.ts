/** Acks wait this long for company before they are sent. */
export const DEFAULT_ACK_DELAY_MS = 100;
/** At most this many ids go in one ack (the server takes up to 1000; ids are up to 128 chars, frames up to 64 KiB). */
export const DEFAULT_ACK_BATCH = 200;

export interface AckBatcherOptions {
  readonly delayMs?: number;
  readonly maxBatch?: number;
}

/**
 * Collects the ids of received messages and sends them as one `ack` per batch: when
 * `maxBatch` ids are waiting, or `delayMs` after the first one. While there is no sink
 * (disconnected) ids wait and go out on the next connection; an id is acked at least once,
 * and acking again is harmless (the server only moves unacked deliveries).
 */
export class AckBatcher {
  private pending: string[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private sink: ((ids: string[]) => void) | null = null;
  private readonly delayMs: number;
  private readonly maxBatch: number;

  constructor(options: AckBatcherOptions = {}) {
    this.delayMs = options.delayMs ?? DEFAULT_ACK_DELAY_MS;
    this.maxBatch = Math.max(1, options.maxBatch ?? DEFAULT_ACK_BATCH);
  }

  get waiting(): number {
    return this.pending.length;
  }

  /** Where batches go (the current connection), or null while there is none. */
  attach(sink: ((ids: string[]) => void) | null): void {
    this.sink = sink;
    if (sink && this.pending.length > 0) this.schedule();
  }

  add(id: string): void {
    this.pending.push(id);
    if (this.pending.length >= this.maxBatch) this.flush();
    else this.schedule();
  }

  /** Sends everything waiting now (in batches of `maxBatch`). */
  flush(): void {
    this.cancel();
    if (!this.sink) return;
    while (this.pending.length > 0) this.sink(this.pending.splice(0, this.maxBatch));
  }

  cancel(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.timer !== null || !this.sink) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush();
    }, this.delayMs);
  }
}
