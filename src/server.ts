import { readFileSync } from 'node:fs';
import { registerCors } from './api/cors.js';
import { createHttpServer } from './api/http-server.js';
import { PACKAGE_VERSION, registerOpenApi } from './api/openapi.js';
import { registerAdminRoutes } from './api/routes/admin.js';
import { registerAdminGroupRoutes } from './api/routes/admin-groups.js';
import { registerClientRoutes } from './api/routes/client.js';
import { registerDemoRoutes, warnIfDemoExposed } from './api/routes/demo.js';
import { registerGroupRoutes } from './api/routes/groups.js';
import { registerHistoryRoutes } from './api/routes/history.js';
import { registerLifecycleRoutes } from './api/routes/lifecycle.js';
import { registerOperationRoutes } from './api/routes/operations.js';
import { registerPushRoutes } from './api/routes/push.js';
import { registerRevokeRoutes } from './api/routes/revoke.js';
import { registerRoomRoutes } from './api/routes/rooms.js';
import { registerUserRoutes } from './api/routes/users.js';
import { registerWebRoutes } from './api/routes/web.js';
import { AppRegistry } from './auth/app-registry.js';
import { KeySets } from './auth/jwks.js';
import { Revocations } from './auth/revocations.js';
import { createBus } from './bus/create-bus.js';
import { ClusterAudience } from './cluster/audience.js';
import { ConnectionLog } from './cluster/connection-log.js';
import { InterestTracker } from './cluster/interest-tracker.js';
import { Presence } from './cluster/presence.js';
import { SubscriptionLog } from './cluster/subscription-log.js';
import type { Config } from './config.js';
import { Maintenance } from './delivery/maintenance.js';
import { RetryScheduler } from './delivery/retry-scheduler.js';
import { Router } from './delivery/router.js';
import { StatusWriter } from './delivery/status-writer.js';
import { PushError } from './domain/errors.js';
import { prepareEngine } from './gateway/engines/create-engine.js';
import { Gateway } from './gateway/gateway.js';
import { Hub } from './gateway/hub.js';
import { LifecycleSignals } from './gateway/lifecycle-signals.js';
import { RoomMerger } from './gateway/room-merger.js';
import { TcpTransport } from './gateway/transports/tcp.js';
import { WebSocketHandshake } from './gateway/transports/websocket.js';
import { createQueueConsumers } from './ingest/create-queue-consumers.js';
import { GroupPusher } from './ingest/group-push.js';
import { Ingest } from './ingest/ingest.js';
import { QueueIngest } from './ingest/queue-consumer.js';
import { HandoffSender } from './lifecycle/handoff-sender.js';
import { Recall } from './lifecycle/recall.js';
import { Webhooks } from './lifecycle/webhooks.js';
import { AllowedOrigins } from './limits/allowed-origins.js';
import { AppRateLimiter } from './limits/app-rate.js';
import { PRIVATE_NETWORKS, TrustedProxies } from './limits/client-ip.js';
import { LoadMonitor } from './limits/load-monitor.js';
import { pushAdmission } from './limits/push-admission.js';
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
  const buildEngine = await prepareEngine(config.engine);
  const metrics = createMetrics();
  const store = await createStore(config.store);
  const apps = new AppRegistry(store, config.jwt, new KeySets(config.jwt.jwks));
  await apps.bootstrap(config.apps);
  const revocations = new Revocations(store);
  await revocations.load();
  apps.revocations = revocations;

  const topicRetention = { count: config.delivery.topicRetentionCount, ms: config.delivery.topicRetentionMs };
  let bus: Awaited<ReturnType<typeof createBus>>;
  try {
    bus = await createBus(config.busUrl, config.nodeId, log, config.busRouting, config.busNamespace);
  } catch (err) {
    await store.close();
    throw err;
  }
  const load = new LoadMonitor(config.limits.overloadDelayMs);
  const proxies = new TrustedProxies(
    config.trustedProxies.length > 0 ? config.trustedProxies : config.trustProxy ? PRIVATE_NETWORKS : [],
  );
  const status = new StatusWriter(store, config.delivery.resendMs, log);
  const connections = new ConnectionLog(store, config.nodeId, log);
  const cluster =
    config.busUrl === '' ? null : { store, nodeId: config.nodeId, heartbeatMs: config.heartbeatMs };
  const subscriptions = cluster ? new SubscriptionLog(store, config.nodeId, log) : null;
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
      onUnregistered: (s) => {
        gateway!.unregistered(s);
        subscriptions?.closed(s.id);
      },
      onSubscription: (s, topic, on) => subscriptions?.changed(s, topic, on),
      onClosedByServer: (_s, reason) => metrics.closes.inc({ reason }),
      onGap: (s) => gateway!.repairGap(s),
      onTopicLeft: (s, topic) => gateway!.topicLeft(s, topic),
    },
  );
  const signals = new LifecycleSignals(hub, config.lifecycle.presenceDebounceMs);
  status.onRead = (appId, userId, seq, except) =>
    bus.publish({ kind: 'read', appId, userId, seq, ...(except ? { except } : {}) });
  const presence = new Presence(hub, bus, cluster);
  const interest = cluster ? new InterestTracker(bus, hub) : null;
  metrics.busFrames(() => bus.framesReceived);
  const audience = new ClusterAudience(hub, cluster);
  const origins = new AllowedOrigins(config.allowedOrigins);
  gateway = new Gateway(
    {
      nodeId: config.nodeId,
      heartbeatMs: config.heartbeatMs,
      limits: config.limits,
      allowedOrigins: origins,
      topicRetention,
    },
    { hub, store, apps, status, connections, presence, interest, metrics, log, bus, load },
  );
  const rooms = new RoomMerger((appId, topic, messages) => hub.deliverWindow(appId, topic, messages));
  hub.rooms = rooms;
  rooms.load(await store.groups.listTopicSettings());
  // Notices on the bus are at most once: a periodic reload repairs a missed one.
  const roomReload = setInterval(() => {
    store.groups.listTopicSettings().then(
      (list) => rooms.load(list),
      (err: unknown) => log.warn({ err }, 'reloading room settings failed; will retry'),
    );
  }, config.heartbeatMs);
  roomReload.unref();
  bus.subscribe((e) => {
    if (e.kind === 'users') hub.deliverToUsers(e.message, e.recipients);
    else if (e.kind === 'topic') hub.deliverToTopic(e.message);
    else if (e.kind === 'kick') hub.kick(e.appId, e.userId, e.device);
    else if (e.kind === 'revoke_tokens') {
      revocations.note(e.appId, e.userId, e.before);
      hub.kick(e.appId, e.userId);
    } else if (e.kind === 'room') rooms.apply(e.appId, e.topic, e.mergeMs);
    else signals.deliver(e);
  });
  const router = new Router(bus);
  const ingest = new Ingest(store, router, audience, metrics);
  const groupPusher = new GroupPusher(
    store.groups,
    router,
    audience,
    {
      nodeId: config.nodeId,
      batchSize: config.delivery.groupBatch,
      staleAfterMs: 2 * config.heartbeatMs,
      adoptEveryMs: config.heartbeatMs,
    },
    log,
  );
  ingest.groups = groupPusher;
  const consumers = createQueueConsumers(config.queue, config.nodeId, {
    queue: new QueueIngest(ingest, apps, config.limits.maxDataBytes, log, load),
    metrics,
    log,
  });
  const retries = new RetryScheduler(
    store,
    hub,
    { resendMs: config.delivery.resendMs, maxRetries: config.delivery.maxRetries, backoff: RESEND_BACKOFF },
    metrics,
    log,
    cluster,
  );
  const handoffs = new HandoffSender(
    store,
    async (appId, userId) => ((await presence.of(appId, [userId])).get(userId)?.length ?? 0) > 0,
    {
      nodeId: config.nodeId,
      pollMs: config.lifecycle.webhookPollMs,
      timeoutMs: config.lifecycle.webhookTimeoutMs,
      allowPrivate: config.lifecycle.webhookAllowPrivate,
    },
    metrics.registry,
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

  // One certificate for https/wss and the protocol v2 TCP listener. On the uws engine uWS
  // owns the port and terminates TLS; Fastify serves plain HTTP behind it, where the sockets
  // are the bridge's, not clients' (the plain-connection cap would count the wrong thing).
  const tlsFiles = config.tls ? readTls(config.tls) : null;
  const onPort = config.engine === 'ws';
  const http = createHttpServer(log, config.limits.headersTimeoutMs, {
    bodyTimeoutMs: config.limits.bodyTimeoutMs,
    maxPlainConnections: onPort ? config.limits.maxHttpConnections : 0,
    ...(tlsFiles && onPort ? { tls: tlsFiles } : {}),
  });
  await registerOpenApi(http, PACKAGE_VERSION);
  await registerCors(http, origins);
  registerPushRoutes(http, {
    apps,
    ingest,
    maxDataBytes: config.limits.maxDataBytes,
    admission: pushAdmission(load, new AppRateLimiter(config.limits.appPushRate)),
  });
  registerUserRoutes(http, { apps, store, presence, status });
  registerGroupRoutes(http, { apps, groups: store.groups });
  registerRoomRoutes(http, {
    apps,
    store: store.groups,
    announce: (appId, topic, mergeMs) => bus.publish({ kind: 'room', appId, topic, mergeMs }),
  });
  registerRevokeRoutes(http, { apps, revocations, bus, hub, presence });
  registerHistoryRoutes(http, { apps, store, audience, status, topicRetention });
  registerClientRoutes(http, { apps, store, status, gateway, metrics, trustProxy: proxies });
  registerOperationRoutes(http, {
    metrics,
    checks: [
      { name: 'store', check: () => store.ping() },
      ...(config.busUrl === '' ? [] : [{ name: 'bus', check: () => bus.ready() }]),
      ...consumers.map((c) => ({ name: c.name, check: () => c.ready() })),
    ],
    isStopping: () => gateway!.isStopping,
    log,
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
    statsCluster: cluster,
  });
  registerLifecycleRoutes(http, {
    apps,
    recall: new Recall(store, bus, status),
    webhooks: new Webhooks(store, config.lifecycle.webhookAllowPrivate),
    store,
    adminToken: config.adminToken,
  });
  registerAdminGroupRoutes(http, { adminToken: config.adminToken, groups: store.groups });
  registerDemoRoutes(http, { enabled: config.demoTokens, apps, ingest, maxDataBytes });
  registerWebRoutes(http, {
    dashboardEnabled: config.adminToken !== null,
    demoEnabled: config.demo || config.demoTokens,
  });
  http.finishRoutes();
  const handshake = new WebSocketHandshake(
    gateway,
    {
      maxFrameBytes: config.limits.maxFrameBytes,
      trustProxy: proxies,
      compressMin: config.binary.compressMin,
    },
    metrics,
    log,
  );
  const engine = buildEngine({
    http,
    handshake,
    gateway,
    tls: config.tls,
    maxSendBufferBytes: config.limits.maxSendBufferBytes,
    log,
  });
  const tcp =
    config.binary.tcpPort > 0
      ? new TcpTransport(
          gateway,
          {
            port: config.binary.tcpPort,
            host: config.host,
            compressMin: config.binary.compressMin,
            helloTimeoutMs: config.limits.headersTimeoutMs,
            tls: tlsFiles,
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
      let port: number;
      try {
        for (const c of consumers) {
          await c.start();
          started.push(c);
        }
        port = await engine.listen({ port: config.port, host: config.host });
        if (tcp) log.info({ port: await tcp.listen() }, 'protocol v2 TCP listening');
      } catch (err) {
        for (const c of started) await c.close().catch(() => {});
        // The room reload ticks from construction on: it must not outlive the store.
        clearInterval(roomReload);
        rooms.stop();
        await bus.close();
        await store.close();
        throw err;
      }
      gateway!.start();
      load.start();
      interest?.start();
      maintenance.start();
      groupPusher.start();
      retries.start();
      handoffs.start();
      warnIfDemoExposed({ demo: config.demo || config.demoTokens, host: config.host }, log);
      log.info({ port, node: config.nodeId, engine: engine.name }, 'message-push listening');
      return port;
    },
    stop() {
      stopped ??= (async () => {
        for (const c of consumers) await c.close(); // no new queue messages; in-flight ones finish
        load.stop();
        const closed = gateway!.stop();
        log.info({ closed }, 'shutting down: sockets closed with 1001');
        // Waits for in-flight requests, so every push answered 202 is durable. A request that
        // outlives half the shutdown bound (a stuck client holding a stream open) is cut so
        // the rest of the stop — flushing status writes — still fits inside the bound.
        const cut = setTimeout(() => engine.closeAllConnections(), config.shutdownTimeoutMs / 2);
        await engine.close();
        clearTimeout(cut);
        await groupPusher.stop();
        clearInterval(roomReload);
        rooms.stop();
        await tcp?.close();
        await status.flush();
        await connections.flush();
        await subscriptions?.flush();
        await store.markNodeOffline(config.nodeId, Date.now());
        interest?.stop();
        await retries.stop();
        await handoffs.stop();
        signals.close();
        await maintenance.stop();
        await bus.close();
        await store.close();
        log.info('stopped');
      })();
      return stopped;
    },
  };
}

/** Reads the PEM files named by PUSH_TLS_CERT/PUSH_TLS_KEY; a missing file stops the start. */
function readTls(files: { certFile: string; keyFile: string }): { cert: string; key: string } {
  try {
    return { cert: readFileSync(files.certFile, 'utf8'), key: readFileSync(files.keyFile, 'utf8') };
  } catch (err) {
    throw new PushError('config_invalid', `PUSH_TLS_CERT/PUSH_TLS_KEY: ${(err as Error).message}`);
  }
}
