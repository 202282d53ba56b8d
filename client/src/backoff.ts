/** Reconnect delays: exponential growth with full jitter, capped (the schedule nats.js and the AWS builders' guide use). */

/** Upper bound of the first delay; each failed attempt doubles it. */
export const DEFAULT_RECONNECT_MIN_MS = 500;
/** No delay is ever longer than this. */
export const DEFAULT_RECONNECT_MAX_MS = 30_000;

export interface BackoffOptions {
  readonly minDelayMs?: number;
  readonly maxDelayMs?: number;
  /** Uniform in [0, 1); injectable for tests. */
  readonly random?: () => number;
}

/**
 * The delay before reconnect attempt `attempt` (0-based): uniform in
 * [0, min(max, min · 2^attempt)). Full jitter spreads a crowd of clients that lost the same
 * server, so its restart is not met by all of them at once.
 */
export function reconnectDelay(
  attempt: number,
  minDelayMs: number,
  maxDelayMs: number,
  random: () => number,
): number {
  const ceiling = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** Attempt counter over `reconnectDelay`; reset once a connection is established. */
export class Backoff {
  private attempt = 0;
  private readonly min: number;
  private readonly max: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.min = options.minDelayMs ?? DEFAULT_RECONNECT_MIN_MS;
    this.max = Math.max(this.min, options.maxDelayMs ?? DEFAULT_RECONNECT_MAX_MS);
    this.random = options.random ?? Math.random;
  }

  /** Attempts made since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  next(): number {
    return reconnectDelay(this.attempt++, this.min, this.max, this.random);
  }

  reset(): void {
    this.attempt = 0;
  }
}
