import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

/** How often the loop is probed; a probe that fires late measures how long the loop was blocked. */
const PROBE_MS = 100;
/** Once overloaded, stay so this long after the last late probe, so shedding does not flap per request. */
const HOLD_MS = 1000;

/**
 * Decides whether the process is overloaded: its event loop was delayed past `boundMs`
 * (a probe timer fired that late, or the p99 of the last second's loop delay exceeds it).
 * New handshakes and pushes are then answered 503 `overloaded` with `Retry-After` instead
 * of queueing behind the stall until the client times out; queue consumers wait instead.
 *
 * The probe timer runs first when a blocked loop resumes (libuv runs timers before I/O), so
 * the requests that piled up during a stall already meet the flag.
 */
export class LoadMonitor {
  private timer: NodeJS.Timeout | null = null;
  private histogram: IntervalHistogram | null = null;
  private lastProbe = 0;
  private lastWindow = 0;
  private overloadedUntil = 0;
  /** The worst delay seen by the probes in the current window, ms (for logs and the test). */
  lastDelayMs = 0;

  constructor(private readonly boundMs: number) {}

  get enabled(): boolean {
    return this.boundMs > 0;
  }

  start(): void {
    if (!this.enabled || this.timer) return;
    this.histogram = monitorEventLoopDelay({ resolution: 20 });
    this.histogram.enable();
    this.lastProbe = this.lastWindow = Date.now();
    this.timer = setInterval(() => this.probe(Date.now()), PROBE_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.histogram?.disable();
    this.histogram = null;
  }

  /** True while the loop is (or just was) delayed past the bound. */
  isOverloaded(now = Date.now()): boolean {
    return this.enabled && now < this.overloadedUntil;
  }

  /** Seconds a refused client should wait: until the hold ends, at least one. */
  retryAfterSeconds(now = Date.now()): number {
    return Math.max(1, Math.ceil((this.overloadedUntil - now) / 1000));
  }

  /** Resolves once the process is no longer overloaded (queue consumers wait here instead of refusing). */
  async whenNotOverloaded(): Promise<void> {
    while (this.isOverloaded()) {
      await new Promise((r) => setTimeout(r, Math.max(10, this.overloadedUntil - Date.now())));
    }
  }

  private probe(now: number): void {
    const late = now - this.lastProbe - PROBE_MS;
    this.lastProbe = now;
    this.lastDelayMs = Math.max(0, late);
    let overloaded = late > this.boundMs;
    if (this.histogram && now - this.lastWindow >= 1000) {
      // The histogram counts nanoseconds of delay per resolution tick.
      if (this.histogram.count > 0 && this.histogram.percentile(99) / 1e6 > this.boundMs) overloaded = true;
      this.histogram.reset();
      this.lastWindow = now;
    }
    if (overloaded) this.overloadedUntil = now + HOLD_MS;
  }
}
