/**
 * Token buckets by key (client IP for handshakes): `rate` per second sustained, bursts of
 * `rate`. Full buckets are forgotten on a sweep, so memory follows the active keys only.
 */
export class KeyedRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private lastSweep = 0;

  constructor(private readonly rate: number) {}

  take(key: string, now = Date.now()): boolean {
    if (this.rate <= 0) return true;
    if (now - this.lastSweep > 10_000) this.sweep(now);
    const b = this.buckets.get(key);
    if (!b) {
      this.buckets.set(key, { tokens: this.rate - 1, at: now });
      return true;
    }
    b.tokens = Math.min(this.rate, b.tokens + ((now - b.at) * this.rate) / 1000);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.at) * this.rate) / 1000 >= this.rate) this.buckets.delete(key);
    }
  }
}
