import type { AddressInfo } from 'node:net';
import { createHttpServer } from './api/http-server.js';
import { registerAdminRoutes } from './api/routes/admin.js';
import { registerClientRoutes } from './api/routes/client.js';
import { registerDemoRoutes } from './api/routes/demo.js';
import { registerHistoryRoutes } from './api/routes/history.js';
import { registerOperationRoutes } from './api/routes/operations.js';
import { registerPushRoutes } from './api/routes/push.js';
import { registerUserRoutes } from './api/routes/users.js';
import { registerWebRoutes } from './api/routes/web.js';
import { AppRegistry } from './auth/app-registry.js';
import { createBus } from './bus/create-bus.js';
import type { Config } from './config.js';
import { Maintenance } from './delivery/maintenance.js';
import { RetryScheduler } from './delivery/retry-scheduler.js';
import { Router } from './delivery/router.js';
import { StatusWriter } from './delivery/status-writer.js';
import { ConnectionLog } from './gateway/connection-log.js';
import { Gateway } from './gateway/gateway.js';
import { Hub } from './gateway/hub.js';
import { Presence } from './gateway/presence.js';
import { TcpTransport } from './gateway/transports/tcp.js';
import { WebSocketTransport } from './gateway/transports/websocket.js';
import { createQueueConsumers } from './ingest/create-queue-consumers.js';
import { Ingest } from './ingest/ingest.js';
import { QueueIngest } from './ingest/queue-consumer.js';
import { createLogger, type Logger } from './observability/logger.js';
import { createMetrics } from './observability/metrics.js';
import { createStore } from './store/create-store.js';

/** Each resend waits this many times longer than the one before (5 s, 15 s, 45 s, …). */
const RESEND_BACKOFF = 3;

export interface PushServer {
  readonly config: Config;
  readonly apps: AppRegistry;
  readonly log: Logger;
  /** Listens; resolves with the bound port (useful with port 0). */
  start(): Promise<number>;
  /** Graceful stop: refuse new clients, close sockets with 1001, finish requests, flush writes, close backends. */
  stop(): Promise<void>;
}

/**
 * The composition root: builds every part from Config, in dependency order, and owns
 * start/stop. Nothing else constructs drivers or reads configuration.
 *
 *   HTTP push ─► Ingest ─► Store (group commit) ─► Router ─► Bus ─► Hub ─► Session ─► socket
 *   socket frames ─► Gateway ─► StatusWriter ─► Store
 */
export async function createServer(config: Config, options: { log?: Logger } = {}): Promise<PushServer> {
  const log = options.log ?? createLogger(config.logLevel);
  const metrics = createMetrics();
  const store = await createStore(config.store);
  const apps = new AppRegistry(store);
  await apps.bootstrap(config.apps);

  const topicRetention = { count: config.delivery.topicRetentionCount, ms: config.delivery.topicRetentionMs };
  let bus: Awaited<ReturnType<typeof createBus>>;
  try {
    bus = await createBus(config.busUrl, config.nodeId, log);
  } catch (err) {
    await store.close();
    throw err;
  }
  const status = new StatusWriter(store, config.delivery.resendMs, log);
  const connections = new ConnectionLog(store, config.nodeId, log);
  let gateway: Gateway | undefined;
  const hub = new Hub(
    config.nodeId,
    { coalesceMs: config.delivery.coalesceMs, maxSendBufferBytes: config.limits.maxSendBufferBytes },
    {
      onWritten(s, seqs, times, now) {
        for (const t of times) if (t >= 0) metrics.deliverySeconds.observe((now - t) / 1000);
        metrics.countLiveDeliveries(seqs.length);
        status.markSent(s.appId, s.userId, seqs, now);
      },
      onRegistered: (s) => gateway!.registered(s),
      onUnregistered: (s) => gateway!.unregistered(s),
      onClosedByServer: (_s, reason) => metrics.closes.inc({ reason }),
      onGap: (s) => gateway!.repairGap(s),
    },
  );
  const presence = new Presence(
    hub,
    bus,
    config.busUrl === '' ? null : { store, nodeId: config.nodeId, heartbeatMs: config.heartbeatMs },
  );
  gateway = new Gateway(
    {
      nodeId: config.nodeId,
      heartbeatMs: config.heartbeatMs,
      limits: config.limits,
      allowedOrigins: config.allowedOrigins,
      topicRetention,
    },
    { hub, store, apps, status, connections, presence, metrics, log },
  );
  bus.subscribe((e) => {
    if (e.kind === 'users') hub.deliverToUsers(e.message, e.recipients);
    else if (e.kind === 'topic') hub.deliverToTopic(e.message);
    else hub.kick(e.appId, e.userId, e.device);
  });
  const ingest = new Ingest(store, new Router(bus), hub, metrics);
  const consumers = createQueueConsumers(config.queue, config.nodeId, {
    queue: new QueueIngest(ingest, apps, config.limits.maxDataBytes, log),
    metrics,
    log,
  });
  const retries = new RetryScheduler(
    store,
    hub,
    { resendMs: config.delivery.resendMs, maxRetries: config.delivery.maxRetries, backoff: RESEND_BACKOFF },
    metrics,
    log,
  );
  const maintenance = new Maintenance(
    store,
    {
      retentionMs: config.delivery.retentionMs,
      heartbeatMs: config.heartbeatMs,
      nodeId: config.nodeId,
      topicRetentionCount: config.delivery.topicRetentionCount,
      topicRetentionMs: config.delivery.topicRetentionMs,
    },
    log,
  );

  const http = createHttpServer(log, config.limits.headersTimeoutMs);
  registerPushRoutes(http, { apps, ingest, maxDataBytes: config.limits.maxDataBytes });
  registerUserRoutes(http, { apps, store, presence, status });
  registerHistoryRoutes(http, { apps, store, hub, status, topicRetention });
  registerClientRoutes(http, { apps, store, status, gateway, metrics, trustProxy: config.trustProxy });
  registerOperationRoutes(http, {
    metrics,
    checks: [
      { name: 'store', check: () => store.ping() },
      ...(config.busUrl === '' ? [] : [{ name: 'bus', check: () => bus.ready() }]),
      ...consumers.map((c) => ({ name: c.name, check: () => c.ready() })),
    ],
    isStopping: () => gateway!.isStopping,
  });
  const maxDataBytes = config.limits.maxDataBytes;
  registerAdminRoutes(http, {
    adminToken: config.adminToken,
    apps,
    store,
    presence,
    status,
    ingest,
    metrics,
    maxDataBytes,
  });
  registerDemoRoutes(http, { enabled: config.demoTokens, apps, ingest, maxDataBytes });
  registerWebRoutes(http, { dashboardEnabled: config.adminToken !== null });
  http.finishRoutes();
  const websocket = new WebSocketTransport(
    gateway,
    {
      maxFrameBytes: config.limits.maxFrameBytes,
      trustProxy: config.trustProxy,
      compressMin: config.binary.compressMin,
    },
    metrics,
    log,
  );
  websocket.attach(http.server);
  // TLS: pass the HTTPS certificate settings here once the server has them.
  const tcp =
    config.binary.tcpPort > 0
      ? new TcpTransport(
          gateway,
          {
            port: config.binary.tcpPort,
            host: config.host,
            compressMin: config.binary.compressMin,
            helloTimeoutMs: config.limits.headersTimeoutMs,
          },
          metrics,
          log,
        )
      : null;

  let stopped: Promise<void> | null = null;
  return {
    config,
    apps,
    log,
    async start() {
      // Connections this node recorded before a crash are not live any more; the node is.
      await store.markNodeOffline(config.nodeId, Date.now());
      await store.touchNode(config.nodeId, Date.now());
      // Brokers first: a wrong queue URL stops the start before anything is served, and
      // whatever was opened is closed again.
      const started: typeof consumers = [];
      try {
        for (const c of consumers) {
          await c.start();
          started.push(c);
        }
        await http.listen({ port: config.port, host: config.host });
        if (tcp) log.info({ port: await tcp.listen() }, 'protocol v2 TCP listening');
      } catch (err) {
        for (const c of started) await c.close().catch(() => {});
        await bus.close();
        await store.close();
        throw err;
      }
      gateway!.start();
      maintenance.start();
      retries.start();
      const port = (http.server.address() as AddressInfo).port;
      log.info({ port, node: config.nodeId }, 'message-push listening');
      return port;
    },
    stop() {
      stopped ??= (async () => {
        for (const c of consumers) await c.close(); // no new queue messages; in-flight ones finish
        const closed = gateway!.stop();
        log.info({ closed }, 'shutting down: sockets closed with 1001');
        // Waits for in-flight requests, so every push answered 202 is durable. A request that
        // outlives half the shutdown bound (a stuck client holding a stream open) is cut so
        // the rest of the stop — flushing status writes — still fits inside the bound.
        const cut = setTimeout(() => http.server.closeAllConnections(), config.shutdownTimeoutMs / 2);
        await http.close();
        clearTimeout(cut);
        websocket.close();
        await tcp?.close();
        await status.flush();
        await connections.flush();
        await store.markNodeOffline(config.nodeId, Date.now());
        await retries.stop();
        await maintenance.stop();
        await bus.close();
        await store.close();
        log.info('stopped');
      })();
      return stopped;
    },
  };
}
