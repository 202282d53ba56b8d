import type { Metrics } from './metrics.js';

/** One sample per second, five minutes kept: what the dashboard charts. */
export const STATS_INTERVAL_MS = 1000;
export const STATS_SAMPLES = 300;

/** Counters the dashboard shows as totals and as per-second rates. */
const COUNTERS = ['in', 'out', 'acks', 'retries', 'failures'] as const;
type CounterName = (typeof COUNTERS)[number];

export interface StatsSnapshot {
  readonly now: number;
  readonly intervalMs: number;
  /** Since the process started. */
  readonly totals: Record<CounterName, number>;
  readonly connections: { readonly total: number; readonly byPlatform: Record<string, number> };
  /** Oldest first: `t` in ms; counters as per-second rates over each interval; open connections. */
  readonly series: Record<CounterName | 't' | 'connections', number[]>;
}

/**
 * Samples the Prometheus counters (messages in = accepted, out = written to connections,
 * acks, resends, failed deliveries) and the connection gauge once a second into a ring of
 * five minutes, so a dashboard opened now has history to draw.
 */
export class StatsSampler {
  private readonly series: Record<CounterName | 't' | 'connections', number[]> = {
    t: [],
    connections: [],
    in: [],
    out: [],
    acks: [],
    retries: [],
    failures: [],
  };
  private last: Record<CounterName, number> | null = null;
  private lastAt = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly metrics: Metrics) {}

  start(): void {
    if (this.timer) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), STATS_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  async snapshot(): Promise<StatsSnapshot> {
    const [totals, connections] = await Promise.all([this.readTotals(), this.readConnections()]);
    const series = Object.fromEntries(
      Object.entries(this.series).map(([k, v]) => [k, [...v]]),
    ) as StatsSnapshot['series'];
    return { now: Date.now(), intervalMs: STATS_INTERVAL_MS, totals, connections, series };
  }

  private async sample(): Promise<void> {
    const now = Date.now();
    const [totals, connections] = await Promise.all([this.readTotals(), this.readConnections()]);
    if (this.last) {
      const seconds = Math.max(0.001, (now - this.lastAt) / 1000);
      this.push('t', now);
      this.push('connections', connections.total);
      for (const c of COUNTERS) this.push(c, Math.max(0, (totals[c] - this.last[c]) / seconds));
    }
    this.last = totals;
    this.lastAt = now;
  }

  private push(key: CounterName | 't' | 'connections', value: number): void {
    const list = this.series[key];
    list.push(value);
    if (list.length > STATS_SAMPLES) list.shift();
  }

  private async readTotals(): Promise<Record<CounterName, number>> {
    const m = this.metrics;
    const [inn, out, acks, retries, failures] = await Promise.all(
      [m.messagesAccepted, m.deliveries, m.acks, m.retries, m.failures].map(async (metric) =>
        (await metric.get()).values.reduce((sum, v) => sum + v.value, 0),
      ),
    );
    return { in: inn!, out: out!, acks: acks!, retries: retries!, failures: failures! };
  }

  private async readConnections(): Promise<StatsSnapshot['connections']> {
    const byPlatform: Record<string, number> = {};
    let total = 0;
    for (const v of (await this.metrics.connections.get()).values) {
      if (v.value <= 0) continue;
      const platform = String(v.labels.platform ?? 'unknown');
      byPlatform[platform] = (byPlatform[platform] ?? 0) + v.value;
      total += v.value;
    }
    return { total, byPlatform };
  }
}
