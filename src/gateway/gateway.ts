import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { AppRegistry } from '../auth/app-registry.js';
import type { Bus } from '../bus/bus.js';
import type { ConnectionLog } from '../cluster/connection-log.js';
import type { InterestTracker } from '../cluster/interest-tracker.js';
import type { Presence } from '../cluster/presence.js';
import type { LimitsConfig } from '../config.js';
import type { StatusWriter } from '../delivery/status-writer.js';
import { type ClosingCode, closeCodeOf, PushError } from '../domain/errors.js';
import type { AllowedOrigins } from '../limits/allowed-origins.js';
import type { LoadMonitor } from '../limits/load-monitor.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../store/store.js';
import { type Admission, Admissions } from './admission.js';
import { FrameHandler } from './frames.js';
import { ExpiryWheel, HeartbeatWheel } from './heartbeat.js';
import type { Hub } from './hub.js';
import { platformLabel } from './platform.js';
import type { SessionCodec } from './protocol/codec.js';
import { Replayer, type TopicRetention } from './replay.js';
import { reply, Session, type SessionCloser, type Transport } from './session.js';

export type { Admission } from './admission.js';
export type { TopicRetention } from './replay.js';

export interface GatewayOptions {
  readonly nodeId: string;
  readonly heartbeatMs: number;
  readonly limits: LimitsConfig;
  readonly allowedOrigins: AllowedOrigins;
  readonly topicRetention: TopicRetention;
}

export interface GatewayDeps {
  readonly hub: Hub;
  readonly store: Store;
  readonly apps: AppRegistry;
  readonly status: StatusWriter;
  readonly connections: ConnectionLog;
  /** Connections of a user on other nodes, for the cluster-wide per-user limit. */
  readonly presence: Pick<Presence, 'countElsewhere'>;
  /** Cluster mode: makes the bus bring this node a user's or topic's envelopes before they are needed. */
  readonly interest?: Pick<InterestTracker, 'user' | 'topic'> | null;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Topic join/leave announcements go out on it (see lifecycle-signals.ts); none without it. */
  readonly bus?: Pick<Bus, 'publish'>;
  /** Sheds new connections while the event loop is stalled (absent: never). */
  readonly load?: Pick<LoadMonitor, 'isOverloaded'>;
}

/**
 * The transport-independent half of client connections: session lifecycle and the
 * heartbeat/expiry wheels, with admission (admission.ts), backlog replay (replay.ts) and
 * client frames (frames.ts) as its parts. Transports (WebSocket engines, SSE, long-poll,
 * TCP) only move bytes and call in here.
 */
export class Gateway implements SessionCloser {
  readonly heartbeat: HeartbeatWheel;
  readonly expiry: ExpiryWheel;
  private readonly admissions: Admissions;
  private readonly replayer: Replayer;
  private readonly frames: FrameHandler;
  private readonly bootId = randomBytes(4).toString('hex');
  private nextId = 0;
  private stopping = false;

  constructor(
    private readonly options: GatewayOptions,
    private readonly deps: GatewayDeps,
  ) {
    this.admissions = new Admissions(options, deps);
    this.heartbeat = new HeartbeatWheel(
      options.heartbeatMs,
      (s) => this.drop(s),
      (now) => deps.connections.heartbeat(now),
    );
    this.expiry = new ExpiryWheel((s) => this.closeFor(s, 'token_expired', 'token expired'));
    this.replayer = new Replayer(options, deps, this);
    this.frames = new FrameHandler(options.limits, deps, this.expiry, this.replayer, this);
  }

  start(): void {
    this.heartbeat.start();
    this.expiry.start();
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  /** The handshake checks (see Admissions.admit); 503 once a stop began. */
  async admit(headers: IncomingHttpHeaders, url: URL, ip: string): Promise<Admission> {
    if (this.stopping) throw new PushError('unavailable', 'server is shutting down');
    return this.admissions.admit(headers, url, ip);
  }

  /** Gives back the reservation of an admission that will not be opened (the client went away). */
  release(a: Admission): void {
    this.admissions.release(a);
  }

  /** Creates and registers a session; live messages for it are held until its backlog is replayed. */
  open(a: Admission, transport: Transport, codec?: SessionCodec): Session {
    // admit() awaited the token check; a stop may have begun since and already closed every
    // session it knew, so a late one would hold the listener open.
    if (this.stopping) {
      this.admissions.release(a);
      throw new PushError('unavailable', 'server is shutting down');
    }
    this.admissions.take(a);
    const id = `c${this.bootId}${(this.nextId++).toString(36)}`;
    const s = new Session(
      id,
      a.appId,
      a.claims.userId,
      a.device ?? id,
      a.platform,
      transport,
      a.claims.exp,
      a.claims.topics,
      Date.now(),
      this.options.limits.framesPerSecond,
      codec,
    );
    this.deps.hub.register(s);
    return s;
  }

  /** Hub event: a session joined the registry. */
  registered(s: Session): void {
    this.heartbeat.add(s);
    this.expiry.add(s);
    this.deps.metrics.connections.inc({ platform: platformLabel(s.platform) });
    this.deps.connections.opened({
      connectionId: s.id,
      appId: s.appId,
      userId: s.userId,
      device: s.device,
      platform: s.platform,
      at: s.connectedAt,
    });
  }

  /** Hub event: a live message skipped seqs; replay from the store what came before it. */
  repairGap(s: Session): void {
    this.deps.metrics.gapRepairs.inc();
    void this.replay(s, s.lastSeq);
  }

  /** Hub event: a session left the registry, whichever path closed it. */
  unregistered(s: Session): void {
    this.heartbeat.remove(s);
    this.expiry.remove(s);
    this.deps.metrics.connections.dec({ platform: platformLabel(s.platform) });
    this.deps.connections.closed(s.id, Date.now());
  }

  sendWelcome(s: Session): void {
    reply(s, 'welcome', {
      connection_id: s.id,
      user_id: s.userId,
      device_id: s.device,
      heartbeat_ms: this.options.heartbeatMs,
    });
  }

  /** Sends the backlog, then switches the session to live (see Replayer.replay). */
  replay(s: Session, since: number | null): Promise<void> {
    return this.replayer.replay(s, since);
  }

  /** Client input as the transport got it (see FrameHandler.handle). */
  handleFrame(s: Session, data: Buffer | string, isBinary: boolean): void {
    this.frames.handle(s, data, isBinary);
  }

  /** Hub event: the session is no longer a subscriber of the topic. */
  topicLeft(s: Session, topic: string): void {
    this.frames.topicLeft(s, topic);
  }

  /** Closes with a code (the client learns why) and forgets the session. */
  close(s: Session, code: number, reason: string, metricReason: string): void {
    this.deps.metrics.closes.inc({ reason: metricReason });
    s.transport.close(code, reason);
    this.closed(s);
  }

  /** Closes for a registry error: its close code, and the code as the metric's reason. */
  closeFor(s: Session, code: ClosingCode, reason: string): void {
    this.close(s, closeCodeOf(code), reason, code);
  }

  /** Silent for two heartbeat intervals: dropped without a close frame (docs/reference/client-api.md). */
  private drop(s: Session): void {
    this.deps.metrics.closes.inc({ reason: 'heartbeat_timeout' });
    s.transport.terminate();
    this.closed(s);
  }

  /** Cleanup for every close path (the transport saw the connection end); idempotent. */
  closed(s: Session): void {
    this.deps.hub.unregister(s);
  }

  /** Shutdown: refuse new clients, close every session with 1001. */
  stop(): number {
    this.stopping = true;
    this.heartbeat.stop();
    this.expiry.stop();
    const sessions = [...this.deps.hub.all()];
    for (const s of sessions) this.closeFor(s, 'shutting_down', 'server shutting down');
    return sessions.length;
  }
}
