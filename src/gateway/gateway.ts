import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AppRegistry } from '../auth/app-registry.js';
import type { TokenClaims } from '../auth/tokens.js';
import type { Bus } from '../bus/bus.js';
import type { ConnectionLog } from '../cluster/connection-log.js';
import type { InterestTracker } from '../cluster/interest-tracker.js';
import type { Presence } from '../cluster/presence.js';
import type { LimitsConfig } from '../config.js';
import type { StatusWriter } from '../delivery/status-writer.js';
import { type ClosingCode, closeCodeOf, ERRORS, isPushError, PushError } from '../domain/errors.js';
import { ALL_TOPIC, isAddressed } from '../domain/message.js';
import { rateKey } from '../limits/client-ip.js';
import type { LoadMonitor } from '../limits/load-monitor.js';
import { UserReservations } from '../limits/user-reservations.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../store/store.js';
import { parseHandshake } from './handshake.js';
import { ExpiryWheel, HeartbeatWheel } from './heartbeat.js';
import type { Hub } from './hub.js';
import { platformLabel, resolvePlatform } from './platform.js';
import { MessageFrames, type OutFrame, type ServerOp, type SessionCodec } from './protocol/codec.js';
import type { ClientFrame, Ref } from './protocol/json-codec.js';
import { KeyedRateLimiter } from './rate-limiter.js';
import { CLOSED, Session, type Transport } from './session.js';

export interface GatewayOptions {
  readonly nodeId: string;
  readonly heartbeatMs: number;
  readonly limits: LimitsConfig;
  readonly allowedOrigins: readonly string[];
  readonly topicRetention: TopicRetention;
}

/** What a topic keeps replayable: the newest `count` messages, none older than `ms`. */
export interface TopicRetention {
  readonly count: number;
  readonly ms: number;
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

/** A client that passed the handshake checks and may be given a session. */
export interface Admission {
  readonly appId: string;
  readonly claims: TokenClaims;
  readonly platform: string;
  readonly device: string | null;
  readonly since: number | null;
}

/** Consecutive bad frames tolerated before the connection is closed with 1008. */
const MAX_BAD_FRAMES = 10;
/** Backlog rows read per page, and messages per coalesced backlog frame. */
const BACKLOG_PAGE = 500;
const BACKLOG_FRAME_BYTES = 64 * 1024;

/**
 * The transport-independent half of client connections: admission (auth and limits),
 * session lifecycle, backlog replay, client frames and the heartbeat/expiry wheels.
 * Transports (WebSocket, SSE, long-poll) only move bytes and call in here.
 */
export class Gateway {
  readonly heartbeat: HeartbeatWheel;
  readonly expiry: ExpiryWheel;
  private readonly handshakes: KeyedRateLimiter;
  private readonly reservations = new UserReservations();
  private readonly bootId = randomBytes(4).toString('hex');
  private nextId = 0;
  private stopping = false;
  /** Topics each session takes part in the presence of (announced on join and leave). */
  private readonly presenceSubs = new WeakMap<Session, Set<string>>();

  constructor(
    private readonly options: GatewayOptions,
    private readonly deps: GatewayDeps,
  ) {
    this.handshakes = new KeyedRateLimiter(options.limits.handshakesPerSecondPerIp);
    this.heartbeat = new HeartbeatWheel(
      options.heartbeatMs,
      (s) => this.drop(s),
      (now) => deps.connections.heartbeat(now),
    );
    this.expiry = new ExpiryWheel((s) => this.closeFor(s, 'token_expired', 'token expired'));
  }

  start(): void {
    this.heartbeat.start();
    this.expiry.start();
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  /**
   * Every check before a connection is accepted, in the order docs/reference/client-api.md implies: per-IP rate,
   * parameters (400), token presence (401), app (403), token validity (401), origin (403),
   * per-user connection limit (429).
   */
  async admit(req: IncomingMessage, url: URL, ip: string): Promise<Admission> {
    if (this.stopping) throw new PushError('unavailable', 'server is shutting down');
    this.checkProcessCapacity();
    if (!this.handshakes.take(rateKey(ip)))
      throw new PushError('rate_limited', 'too many handshakes from this address');
    const params = parseHandshake(req, url);
    const claims = await this.deps.apps.verifyToken(params.appId, params.token);
    const origin = req.headers.origin;
    if (origin && this.options.allowedOrigins.length > 0 && !this.options.allowedOrigins.includes(origin)) {
      throw new PushError('forbidden', 'origin not allowed');
    }
    const max = this.options.limits.maxConnectionsPerUser;
    const before = this.heldBy(params.appId, claims.userId);
    const elsewhere =
      before >= max ? 0 : await this.deps.presence.countElsewhere(params.appId, claims.userId);
    // From here to the reservation nothing awaits: concurrent handshakes see each other's slots.
    const open = this.heldBy(params.appId, claims.userId) + elsewhere;
    if (open >= max) {
      throw new PushError('too_many_connections', `user already has ${open} connections`);
    }
    this.reservations.reserve(params.appId, claims.userId);
    // Listening before the session exists: whatever is committed after its backlog read is routed here.
    await this.deps.interest?.user(params.appId, claims.userId);
    return {
      appId: params.appId,
      claims,
      platform: resolvePlatform(url.pathname, params.platform, claims),
      device: params.device,
      since: params.since,
    };
  }

  /** 503 `overloaded` while the event loop is stalled or the node is at PUSH_MAX_CONNECTIONS. */
  private checkProcessCapacity(): void {
    if (this.deps.load?.isOverloaded()) {
      throw new PushError('overloaded', 'the server is overloaded; retry after Retry-After seconds');
    }
    const cap = this.options.limits.maxConnections;
    if (cap > 0 && this.deps.hub.size >= cap) {
      throw new PushError('overloaded', `this node holds its maximum of ${cap} connections`);
    }
  }

  /** Connections a user holds on this node, counting handshakes that passed the check but are not open yet. */
  private heldBy(appId: string, userId: string): number {
    return this.deps.hub.sessionsOf(appId, userId).length + this.reservations.count(appId, userId);
  }

  /** Creates and registers a session; live messages for it are held until its backlog is replayed. */
  open(a: Admission, transport: Transport, codec?: SessionCodec): Session {
    // admit() awaited the token check; a stop may have begun since and already closed every
    // session it knew, so a late one would hold the listener open.
    this.reservations.release(a.appId, a.claims.userId);
    if (this.stopping) throw new PushError('unavailable', 'server is shutting down');
    const cap = this.options.limits.maxConnections;
    if (cap > 0 && this.deps.hub.size >= cap) {
      throw new PushError('overloaded', `this node holds its maximum of ${cap} connections`);
    }
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
    this.reply(s, 'welcome', {
      connection_id: s.id,
      user_id: s.userId,
      device_id: s.device,
      heartbeat_ms: this.options.heartbeatMs,
    });
  }

  /**
   * Sends the backlog (unacked messages, or everything after `since`) in seq order, then
   * switches the session to live. Live messages that arrived meanwhile were held; if the
   * hold overflowed, the store is read again from where the replay got to.
   */
  async replay(s: Session, since: number | null): Promise<void> {
    const { hub, store, status, metrics } = this.deps;
    s.lastSeq = since ?? 0;
    let floor = 0;
    try {
      for (;;) {
        // Every seq up to the user's newest before this read is either in the page or not for
        // this connection (acked, expired, filtered): after the last page it counts as seen.
        floor = await store.lastSeq(s.appId, s.userId);
        // Nothing past what the client has (a resume with since = its last seq, a user never
        // sent anything): no read. Anything committed from here on is routed live and held.
        const page =
          floor > s.lastSeq
            ? await store.readUserMessages({
                appId: s.appId,
                userId: s.userId,
                afterSeq: s.lastSeq,
                unackedOnly: since === null,
                limit: BACKLOG_PAGE,
                now: Date.now(),
              })
            : [];
        if (s.state === CLOSED) return;
        const frames: OutFrame[] = [];
        const seqs: number[] = [];
        for (const row of page) {
          if (row.seq <= s.lastSeq) continue;
          s.lastSeq = row.seq;
          if (!isAddressed(row.message.platforms, row.devices, s.platform, s.device)) continue;
          frames.push(new MessageFrames(row.message).user(s.codec.kind, row.seq));
          seqs.push(row.seq);
        }
        if (frames.length > 0) {
          await this.writeReplay(s, frames, seqs);
          status.markSent(s.appId, s.userId, seqs, Date.now());
          metrics.deliveries.inc({ kind: 'backlog' }, seqs.length);
          if (s.state === CLOSED) return;
        }
        if (page.length < BACKLOG_PAGE) {
          if (s.heldOverflow) {
            s.heldOverflow = false;
            continue;
          }
          s.lastSeq = Math.max(s.lastSeq, floor);
          if (!s.heldHasHole()) break;
        }
      }
      hub.goLive(s);
    } catch (err) {
      this.deps.log.error({ err, connectionId: s.id }, 'backlog replay failed');
      this.closeFor(s, 'internal', 'internal error');
    }
  }

  /**
   * Client input as the transport got it, decoded by the session's codec (one v1 frame, or
   * any number of v2 frames). Every frame, fragments included, costs a frame of the rate.
   */
  handleFrame(s: Session, data: Buffer | string, isBinary: boolean): void {
    const now = Date.now();
    s.lastSeen = now;
    for (const frame of s.codec.decode(data, isBinary)) {
      if (s.state === CLOSED) return;
      if (!s.takeFrameToken(now, this.options.limits.framesPerSecond)) {
        this.closeFor(s, 'rate_limited', 'rate limited');
        return;
      }
      switch (frame.op) {
        case 'skip':
          continue;
        case 'fatal':
          // The stream is out of step (or over a limit): say why, then close.
          this.reply(s, 'error', { code: frame.code, message: frame.message });
          this.close(s, frame.closeCode, frame.message.slice(0, 100), 'protocol_error');
          return;
        case 'error':
          this.reject(s, frame.code, frame.message, frame.ref);
          continue;
      }
      s.badFrames = 0;
      this.dispatch(s, frame).catch((err: unknown) => this.frameFailed(s, err, frame.ref));
    }
  }

  private async dispatch(s: Session, f: ClientFrame): Promise<void> {
    const { status, metrics } = this.deps;
    switch (f.op) {
      case 'ping':
        this.reply(s, 'pong', {}, f.ref);
        return;
      case 'ack': {
        const at = Date.now();
        const n = await status.ack(
          f.ids
            ? { kind: 'ack_ids', appId: s.appId, userId: s.userId, device: s.device, ids: f.ids, at }
            : { kind: 'ack_upto', appId: s.appId, userId: s.userId, device: s.device, seq: f.seq, at },
        );
        metrics.acks.inc(n);
        if (f.ref !== undefined) this.reply(s, 'ok', {}, f.ref);
        return;
      }
      case 'read':
        await status.read(s.appId, s.userId, f.seq, s.id);
        if (f.ref !== undefined) this.reply(s, 'ok', {}, f.ref);
        return;
      case 'refresh': {
        let claims: TokenClaims;
        try {
          claims = await this.deps.apps.verifyToken(s.appId, f.token);
        } catch (err) {
          const why = isPushError(err) ? err.message : 'invalid token';
          this.replyError(s, 'unauthorized', why, f.ref);
          return;
        }
        if (claims.userId !== s.userId) {
          this.replyError(s, 'unauthorized', 'token names another user', f.ref);
          return;
        }
        this.expiry.update(s, claims.exp);
        s.topics = claims.topics;
        this.dropDisallowedTopics(s);
        this.reply(s, 'refreshed', { exp: Math.floor(claims.exp / 1000) }, f.ref);
        return;
      }
      case 'subscribe':
        if (!mayUseTopic(s.topics, f.topic)) {
          this.replyError(s, 'forbidden', `this token may not subscribe to "${f.topic}"`, f.ref);
          return;
        }
        if (f.presence && f.topic === ALL_TOPIC) {
          this.replyError(s, 'forbidden', 'no presence events on $all', f.ref);
          return;
        }
        if (!s.subs?.has(f.topic) && (s.subs?.size ?? 0) >= this.options.limits.maxTopicsPerConnection) {
          const max = this.options.limits.maxTopicsPerConnection;
          this.replyError(s, ERRORS.too_many_topics.wire, `at most ${max} topics per connection`, f.ref);
          return;
        }
        await this.subscribe(s, f.topic, f.since, f.ref, f.presence === true);
        return;
      case 'unsubscribe':
        this.deps.hub.unsubscribe(s, f.topic);
        this.reply(s, 'unsubscribed', { topic: f.topic }, f.ref);
        return;
    }
  }

  /** After `refresh`: subscriptions the new token no longer allows end, each with `unsubscribed`. */
  private dropDisallowedTopics(s: Session): void {
    for (const topic of [...(s.subs?.keys() ?? [])]) {
      if (mayUseTopic(s.topics, topic)) continue;
      this.deps.hub.unsubscribe(s, topic);
      this.reply(s, 'unsubscribed', { topic });
    }
  }

  /**
   * Subscribes, answers `subscribed` with the topic's current offset, replays offsets after
   * `since` (when given), then goes live. Live messages are held during the replay, so the
   * client sees each offset once and in order. `$all` reaches every session anyway; subscribing
   * to it adds the replay and the ordering by offset.
   */
  private async subscribe(
    s: Session,
    topic: string,
    since: number | null,
    ref: Ref,
    presence = false,
  ): Promise<void> {
    const { hub, store } = this.deps;
    hub.unsubscribe(s, topic);
    const sub = hub.subscribe(s, topic);
    await this.deps.interest?.topic(s.appId, topic);
    if (s.state === CLOSED) return;
    if (presence) {
      sub.presence = true;
      this.announce(s, topic, 'join');
    }
    const current = await store.topicOffset(s.appId, topic);
    if (s.state === CLOSED) return;
    this.reply(s, 'subscribed', { topic, offset: current }, ref);
    // A `since` past the end of the stream means "up to date": live messages follow `current`.
    let offset = Math.min(since ?? current, current);
    for (;;) {
      if (offset < current || since !== null) {
        offset = await this.replayTopic(s, topic, offset);
        if (s.state === CLOSED) return;
      }
      sub.offset = Math.max(sub.offset, offset);
      if (hub.endTopicReplay(s, topic)) return;
      // The hold overflowed during the replay: read on from the store.
      since = offset;
    }
  }

  /**
   * Writes replayed frames with flow control: merged into array frames of bounded size (on a
   * WebSocket), each written only once the OS has taken the previous one, so a replay never
   * holds more than one frame of unsent data. A client that leaves a frame untaken for a
   * whole heartbeat interval has stopped reading: it is cut with 4009 and resumes from the store.
   */
  private async writeReplay(s: Session, frames: readonly OutFrame[], seqs: readonly number[]): Promise<void> {
    const { transport } = s;
    const written = (write: (done: () => void) => void) =>
      new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), this.options.heartbeatMs);
        write(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    if (transport.sendFrames) {
      // Only v1 sessions ride transports with sendFrames (SSE, long-poll).
      const text = frames as readonly string[];
      if (!(await written((done) => transport.sendFrames!(text, seqs, done)))) this.cutStalled(s);
      return;
    }
    let batch: OutFrame[] = [];
    let bytes = 0;
    for (let i = 0; i < frames.length; i++) {
      batch.push(frames[i]!);
      bytes += frames[i]!.length;
      if (bytes < BACKLOG_FRAME_BYTES && i < frames.length - 1) continue;
      const merged = batch;
      batch = [];
      bytes = 0;
      if (!(await written((done) => s.codec.sendMessages(transport, merged, done))))
        return this.cutStalled(s);
      if (s.state === CLOSED) return;
    }
  }

  private cutStalled(s: Session): void {
    if (s.state !== CLOSED) this.closeFor(s, 'slow_consumer', 'too slow');
  }

  /** Writes a topic's stored messages after `afterOffset`; returns the last offset written. */
  private async replayTopic(s: Session, topic: string, afterOffset: number): Promise<number> {
    let offset = afterOffset;
    for (;;) {
      const now = Date.now();
      const { rows, hasMore } = await this.deps.store.readTopicHistory({
        appId: s.appId,
        topic,
        keepCount: this.options.topicRetention.count,
        keepSince: now - this.options.topicRetention.ms,
        afterOffset: offset,
        beforeOffset: null,
        limit: BACKLOG_PAGE,
        forward: true,
        now,
      });
      if (s.state === CLOSED) return offset;
      const frames = rows
        .filter((m) => m.platforms === null || m.platforms.includes(s.platform))
        .map((m) => new MessageFrames(m).topic(s.codec.kind));
      if (rows.length > 0) offset = rows[rows.length - 1]!.offset!;
      if (frames.length > 0) await this.writeReplay(s, frames, new Array<number>(frames.length).fill(0));
      if (!hasMore) return offset;
    }
  }

  /** Hub event: the session is no longer a subscriber of the topic. */
  topicLeft(s: Session, topic: string): void {
    if (this.presenceSubs.get(s)?.delete(topic)) this.announce(s, topic, 'leave');
  }

  /**
   * Only subscriptions that take part in a topic's presence (`presence: true`) are announced:
   * they are the ones that see the others. Everyone else subscribes and leaves without a
   * message on the bus, so mass disconnects of plain subscribers cost nothing here.
   */
  private announce(s: Session, topic: string, op: 'join' | 'leave'): void {
    if (topic === ALL_TOPIC || !this.deps.bus) return;
    if (op === 'join') {
      let topics = this.presenceSubs.get(s);
      if (!topics) {
        topics = new Set();
        this.presenceSubs.set(s, topics);
      }
      topics.add(topic);
    }
    this.deps.bus.publish({
      kind: 'topic_presence',
      appId: s.appId,
      topic,
      op,
      user: s.userId,
      device: s.device,
      connection: s.id,
    });
  }

  private reply(s: Session, op: ServerOp, fields: Record<string, unknown>, ref?: Ref): void {
    if (s.state !== CLOSED) s.codec.sendControl(s.transport, op, fields, ref);
  }

  private replyError(s: Session, code: string, message: string, ref: Ref): void {
    this.reply(s, 'error', { code, message }, ref);
  }

  private reject(s: Session, code: string, message: string, ref: Ref): void {
    this.replyError(s, code, message, ref);
    if (++s.badFrames >= MAX_BAD_FRAMES) this.closeFor(s, 'policy_violation', 'too many bad frames');
  }

  private frameFailed(s: Session, err: unknown, ref: Ref): void {
    this.deps.log.error({ err, connectionId: s.id }, 'client frame failed');
    this.replyError(s, 'internal', 'internal error', ref);
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

/**
 * Topic authorisation from the token's `topics` claim: exact names or prefixes ending in `*`.
 * Without the claim only `$all` may be subscribed.
 */
export function mayUseTopic(patterns: readonly string[] | null, topic: string): boolean {
  if (topic === ALL_TOPIC) return true;
  if (patterns === null) return false;
  return patterns.some((p) => (p.endsWith('*') ? topic.startsWith(p.slice(0, -1)) : p === topic));
}
