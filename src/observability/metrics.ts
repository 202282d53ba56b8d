import { Counter, collectDefaultMetrics, Gauge, type Metric, Registry } from 'prom-client';

/** Every Prometheus name the service exports, in one place. One registry per server instance. */
export function createMetrics() {
  const registry = new Registry();
  // 1 ms resolution: event-loop delay is a headline figure (heartbeat, fan-out slices).
  const defaults = new Registry();
  collectDefaultMetrics({ register: defaults, prefix: 'push_process_', eventLoopMonitoringPrecision: 1 });
  // Not the active handle/resource counts nor open fds: each scrape listed every socket
  // (synchronously, /proc/self/fd included), blocking the event loop 35-60 ms at 15k
  // connections. `push_connections` counts the clients.
  for (const { name } of defaults.getMetricsAsArray()) {
    const metric = defaults.getSingleMetric(name);
    if (metric && !/_active_(handles|resources)|_open_fds/.test(name)) registry.registerMetric(metric);
  }
  // Live deliveries are tallied in a plain number on the fan-out path and folded into the
  // counter when it is scraped: a labelled inc hashes its label set on every call.
  const tally = { live: 0 };
  return {
    registry,
    connections: new Gauge({
      name: 'push_connections',
      help: 'Open client connections',
      labelNames: ['platform'] as const,
      registers: [registry],
    }),
    messagesAccepted: new Counter({
      name: 'push_messages_accepted_total',
      help: 'Messages made durable (duplicates not counted)',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    duplicates: new Counter({
      name: 'push_messages_duplicate_total',
      help: 'Pushes answered from an earlier message with the same id',
      registers: [registry],
    }),
    deliveries: new Counter({
      name: 'push_deliveries_total',
      help: 'Messages written to client connections',
      labelNames: ['kind'] as const,
      registers: [registry],
      collect() {
        if (tally.live === 0) return;
        this.inc({ kind: 'live' }, tally.live);
        tally.live = 0;
      },
    }),
    /** Counts live deliveries (`push_deliveries_total{kind="live"}`); called per socket write. */
    countLiveDeliveries(n: number): void {
      tally.live += n;
    },
    deliverySeconds: new FastHistogram(
      'push_delivery_seconds',
      'Time from accept to written to the socket',
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registry,
    ),
    retries: new Counter({
      name: 'push_retries_total',
      help: 'Unacked messages resent on a live connection',
      registers: [registry],
    }),
    failures: new Counter({
      name: 'push_deliveries_failed_total',
      help: 'Deliveries whose resends ran out (status failed)',
      registers: [registry],
    }),
    gapRepairs: new Counter({
      name: 'push_seq_gap_repairs_total',
      help: 'Live messages that arrived ahead of an earlier seq and were put in order from the store',
      registers: [registry],
    }),
    acks: new Counter({
      name: 'push_acks_total',
      help: 'Deliveries moved to acked',
      registers: [registry],
    }),
    queueMessages: new Counter({
      name: 'push_queue_messages_total',
      help: 'Queue ingress messages by outcome (pushed, dead, retry)',
      labelNames: ['queue', 'outcome'] as const,
      registers: [registry],
    }),
    handshakesRefused: new Counter({
      name: 'push_handshakes_refused_total',
      help: 'WebSocket handshakes refused before the upgrade',
      labelNames: ['status'] as const,
      registers: [registry],
    }),
    closes: new Counter({
      name: 'push_connection_closes_total',
      help: 'Connections closed by the server, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    /** Reports the bus's own count of frames received (read when scraped). */
    busFrames(read: () => number): void {
      new Counter({
        name: 'push_bus_frames_received_total',
        help: 'Frames this node received from the bus broker (its own echoes included)',
        registers: [registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * A histogram without labels for the fan-out's hot path, observed once per socket write.
 * prom-client's `observe` builds a closure and hashes the (empty) label set on every call:
 * ≈ 0.3 µs here, a tenth of the JavaScript a broadcast spends per socket; this one is a
 * bucket search and two additions. The registry exports it like any histogram.
 */
export class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  /** Per bucket, not cumulative; values past the last bound count only in `count`. */
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
    registry: Registry,
  ) {
    this.counts = new Float64Array(buckets.length);
    // The registry reads name, help, type, aggregator, get() and reset(): the shape of its own metrics.
    registry.registerMetric(this as unknown as Metric);
  }

  observe(value: number): void {
    const b = this.buckets;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    if (i < b.length) this.counts[i]!++;
    this.sum += value;
    this.count++;
  }

  async get() {
    const bucket = `${this.name}_bucket`;
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    let cumulative = 0;
    this.buckets.forEach((le, i) => {
      cumulative += this.counts[i]!;
      values.push({ labels: { le }, value: cumulative, metricName: bucket });
    });
    values.push(
      { labels: { le: '+Inf' }, value: this.count, metricName: bucket },
      { labels: {}, value: this.sum, metricName: `${this.name}_sum` },
      { labels: {}, value: this.count, metricName: `${this.name}_count` },
    );
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}
