import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AppRegistry } from '../auth/app-registry.js';
import type { TokenClaims } from '../auth/tokens.js';
import type { LimitsConfig } from '../config.js';
import type { StatusWriter } from '../delivery/status-writer.js';
import { isPushError, PushError } from '../domain/errors.js';
import { ALL_TOPIC, isAddressed } from '../domain/message.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../store/store.js';
import type { ConnectionLog } from './connection-log.js';
import { parseHandshake } from './handshake.js';
import { ExpiryWheel, HeartbeatWheel } from './heartbeat.js';
import type { Hub } from './hub.js';
import type { Presence } from './presence.js';
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
  readonly metrics: Metrics;
  readonly log: Logger;
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
  private readonly bootId = randomBytes(4).toString('hex');
  private nextId = 0;
  private stopping = false;

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
    this.expiry = new ExpiryWheel((s) => this.close(s, 4001, 'token expired', 'token_expired'));
  }

  start(): void {
    this.heartbeat.start();
    this.expiry.start();
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  /**
   * Every check before a connection is accepted, in the order API.md implies: per-IP rate,
   * parameters (400), token presence (401), app (403), token validity (401), origin (403),
   * per-user connection limit (429).
   */
  async admit(req: IncomingMessage, url: URL, ip: string): Promise<Admission> {
    if (this.stopping) throw new PushError('unavailable', 'server is shutting down');
    if (!this.handshakes.take(ip))
      throw new PushError('rate_limited', 'too many handshakes from this address');
    const params = parseHandshake(req, url);
    const claims = await this.deps.apps.verifyToken(params.appId, params.token);
    const origin = req.headers.origin;
    if (origin && this.options.allowedOrigins.length > 0 && !this.options.allowedOrigins.includes(origin)) {
      throw new PushError('forbidden', 'origin not allowed');
    }
    const here = this.deps.hub.sessionsOf(params.appId, claims.userId).length;
    const open =
      here >= this.options.limits.maxConnectionsPerUser
        ? here
        : here + (await this.deps.presence.countElsewhere(params.appId, claims.userId));
    if (open >= this.options.limits.maxConnectionsPerUser) {
      throw new PushError('too_many_connections', `user already has ${open} connections`);
    }
    return {
      appId: params.appId,
      claims,
      platform: params.platform ?? claims.platform,
      device: params.device,
      since: params.since,
    };
  }

  /** Creates and registers a session; live messages for it are held until its backlog is replayed. */
  open(a: Admission, transport: Transport, codec?: SessionCodec): Session {
    // admit() awaited the token check; a stop may have begun since and already closed every
    // session it knew, so a late one would hold the listener open.
    if (this.stopping) throw new PushError('unavailable', 'server is shutting down');
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
    this.deps.metrics.connections.inc({ platform: s.platform });
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
    this.deps.metrics.connections.dec({ platform: s.platform });
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
      this.close(s, 1011, 'internal error', 'internal');
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
        this.close(s, 4008, 'rate limited', 'rate_limited');
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
        await status.read(s.appId, s.userId, f.seq);
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
        this.reply(s, 'refreshed', { exp: Math.floor(claims.exp / 1000) }, f.ref);
        return;
      }
      case 'subscribe':
        if (!mayUseTopic(s.topics, f.topic)) {
          this.replyError(s, 'forbidden', `this token may not subscribe to "${f.topic}"`, f.ref);
          return;
        }
        await this.subscribe(s, f.topic, f.since, f.ref);
        return;
      case 'unsubscribe':
        this.deps.hub.unsubscribe(s, f.topic);
        this.reply(s, 'unsubscribed', { topic: f.topic }, f.ref);
        return;
    }
  }

  /**
   * Subscribes, answers `subscribed` with the topic's current offset, replays offsets after
   * `since` (when given), then goes live. Live messages are held during the replay, so the
   * client sees each offset once and in order. `$all` reaches every session anyway; subscribing
   * to it adds the replay and the ordering by offset.
   */
  private async subscribe(s: Session, topic: string, since: number | null, ref: Ref): Promise<void> {
    const { hub, store } = this.deps;
    hub.unsubscribe(s, topic);
    const sub = hub.subscribe(s, topic);
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
    if (s.state !== CLOSED) this.close(s, 4009, 'too slow', 'slow');
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

  private reply(s: Session, op: ServerOp, fields: Record<string, unknown>, ref?: Ref): void {
    if (s.state !== CLOSED) s.codec.sendControl(s.transport, op, fields, ref);
  }

  private replyError(s: Session, code: string, message: string, ref: Ref): void {
    this.reply(s, 'error', { code, message }, ref);
  }

  private reject(s: Session, code: string, message: string, ref: Ref): void {
    this.replyError(s, code, message, ref);
    if (++s.badFrames >= MAX_BAD_FRAMES) this.close(s, 1008, 'too many bad frames', 'policy_violation');
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

  /** Silent for two heartbeat intervals: dropped without a close frame (API.md). */
  private drop(s: Session): void {
    this.deps.metrics.closes.inc({ reason: 'silent' });
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
    for (const s of sessions) this.close(s, 1001, 'server shutting down', 'shutdown');
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
