import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

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
    }),
    deliverySeconds: new Histogram({
      name: 'push_delivery_seconds',
      help: 'Time from accept to written to the socket',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
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
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
