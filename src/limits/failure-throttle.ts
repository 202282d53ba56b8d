/**
 * Counts failed credential attempts per client address in fixed windows; past `max` in one
 * window the address is refused until the window ends, so an admin token cannot be guessed
 * at line rate. Successful attempts do not count.
 */
export class FailureThrottle {
  private readonly windows = new Map<string, { start: number; failures: number }>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
  ) {}

  /** Seconds until `key` may try again, or 0 when it may try now. */
  blockedFor(key: string, now = Date.now()): number {
    const w = this.windows.get(key);
    if (!w || now - w.start >= this.windowMs) return 0;
    return w.failures >= this.max ? Math.ceil((w.start + this.windowMs - now) / 1000) : 0;
  }

  fail(key: string, now = Date.now()): void {
    if (this.windows.size > 10_000) this.sweep(now);
    const w = this.windows.get(key);
    if (!w || now - w.start >= this.windowMs) this.windows.set(key, { start: now, failures: 1 });
    else w.failures++;
  }

  private sweep(now: number): void {
    for (const [k, w] of this.windows) if (now - w.start >= this.windowMs) this.windows.delete(k);
  }
}
