import type { PresenceStore } from '../store/store.js';
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
  /** Nodes whose figures are included (1 on one node). */
  readonly nodes: number;
  /** Oldest first: `t` in ms; counters as per-second rates over each interval; open connections. */
  readonly series: Record<CounterName | 't' | 'connections', number[]>;
}

/** Another node's figures are left out once this old (it stopped or died). */
const NODE_STALE_MS = 5 * STATS_INTERVAL_MS;

type NodeFigures = { totals: Record<CounterName, number>; connections: StatsSnapshot['connections'] };

/**
 * Samples the Prometheus counters (messages in = accepted, out = written to connections,
 * acks, resends, failed deliveries) and the connection gauge once a second into a ring of
 * five minutes, so a dashboard opened now has history to draw.
 *
 * Several nodes (`cluster`): each node writes its own figures to the store every sample and
 * adds the other nodes' latest ones, so every node's dashboard shows the whole cluster, at
 * most one interval behind. Rates are summed per node, so a node that joins or leaves does
 * not show as a burst or a drop in the rates.
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
  private last = new Map<string, Record<CounterName, number>>();
  private lastAt = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly metrics: Metrics,
    private readonly cluster: { store: PresenceStore; nodeId: string } | null = null,
  ) {}

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
    const figures = await this.figures(Date.now(), false);
    const series = Object.fromEntries(
      Object.entries(this.series).map(([k, v]) => [k, [...v]]),
    ) as StatsSnapshot['series'];
    const { totals, connections } = sum([...figures.values()]);
    return {
      now: Date.now(),
      intervalMs: STATS_INTERVAL_MS,
      totals,
      connections,
      nodes: figures.size,
      series,
    };
  }

  private async sample(): Promise<void> {
    const now = Date.now();
    const figures = await this.figures(now, true);
    if (this.lastAt !== 0) {
      const seconds = Math.max(0.001, (now - this.lastAt) / 1000);
      this.push('t', now);
      this.push('connections', sum([...figures.values()]).connections.total);
      for (const c of COUNTERS) {
        let delta = 0;
        for (const [node, f] of figures) {
          const before = this.last.get(node);
          if (before) delta += Math.max(0, f.totals[c] - before[c]);
        }
        this.push(c, delta / seconds);
      }
    }
    this.last = new Map([...figures].map(([node, f]) => [node, f.totals]));
    this.lastAt = now;
  }

  /** This node's figures and, in a cluster, the other live nodes' latest (this node's written when `publish`). */
  private async figures(now: number, publish: boolean): Promise<Map<string, NodeFigures>> {
    const [totals, connections] = await Promise.all([this.readTotals(), this.readConnections()]);
    const self = this.cluster?.nodeId ?? '';
    const result = new Map<string, NodeFigures>([[self, { totals, connections }]]);
    if (!this.cluster) return result;
    const { store, nodeId } = this.cluster;
    try {
      if (publish) await store.recordNodeStats(nodeId, now, JSON.stringify({ totals, connections }));
      for (const r of await store.readNodeStats(nodeId, now - NODE_STALE_MS)) {
        result.set(r.node, JSON.parse(r.stats) as NodeFigures);
      }
    } catch {
      // The store is unreachable: this node's own figures are still worth showing.
    }
    return result;
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

function sum(figures: readonly NodeFigures[]): NodeFigures {
  const totals = Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Record<CounterName, number>;
  const byPlatform: Record<string, number> = {};
  let total = 0;
  for (const f of figures) {
    for (const c of COUNTERS) totals[c] += f.totals[c] ?? 0;
    for (const [p, n] of Object.entries(f.connections.byPlatform)) byPlatform[p] = (byPlatform[p] ?? 0) + n;
    total += f.connections.total;
  }
  return { totals, connections: { total, byPlatform } };
}
