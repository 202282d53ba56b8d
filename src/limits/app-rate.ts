/**
 * Messages per second per app on the server API (PUSH_APP_PUSH_RATE): a token bucket per app
 * holding one second of rate. A batch larger than the bucket passes when the bucket is full
 * and leaves it in debt, so big batches are slowed, never refused forever.
 */
export class AppRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(readonly ratePerSecond: number) {}

  /** Takes `n` messages' worth; returns 0 when allowed, else whole seconds to wait. */
  take(appId: string, n: number, now = Date.now()): number {
    const rate = this.ratePerSecond;
    if (rate <= 0) return 0;
    let b = this.buckets.get(appId);
    if (!b) {
      b = { tokens: rate, at: now };
      this.buckets.set(appId, b);
    }
    b.tokens = Math.min(rate, b.tokens + ((now - b.at) * rate) / 1000);
    b.at = now;
    const need = Math.min(n, rate);
    if (b.tokens >= need) {
      b.tokens -= n;
      return 0;
    }
    return Math.max(1, Math.ceil((need - b.tokens) / rate));
  }
}
