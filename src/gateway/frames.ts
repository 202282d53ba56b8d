import type { AppRegistry } from '../auth/app-registry.js';
import type { TokenClaims } from '../auth/tokens.js';
import type { Bus } from '../bus/bus.js';
import type { InterestTracker } from '../cluster/interest-tracker.js';
import type { LimitsConfig } from '../config.js';
import type { StatusWriter } from '../delivery/status-writer.js';
import { ERRORS, isPushError } from '../domain/errors.js';
import { ALL_TOPIC } from '../domain/message.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../store/store.js';
import type { ExpiryWheel } from './heartbeat.js';
import type { Hub } from './hub.js';
import type { ClientFrame, Ref } from './protocol/json-codec.js';
import type { Replayer } from './replay.js';
import { CLOSED, reply, replyError, type Session, type SessionCloser } from './session.js';

export interface FrameDeps {
  readonly hub: Hub;
  readonly store: Pick<Store, 'topicOffset'>;
  readonly apps: Pick<AppRegistry, 'verifyToken'>;
  readonly status: Pick<StatusWriter, 'ack' | 'read'>;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Cluster mode: makes the bus bring this node a topic's envelopes before they are needed. */
  readonly interest?: Pick<InterestTracker, 'topic'> | null;
  /** Topic join/leave announcements go out on it (see lifecycle-signals.ts); none without it. */
  readonly bus?: Pick<Bus, 'publish'>;
}

/** Consecutive bad frames tolerated before the connection is closed with 1008. */
const MAX_BAD_FRAMES = 10;

/**
 * What a client says on an open session: frames decoded by the session's codec, rate
 * limited, and carried out (ack, read, refresh, subscribe with topic replay, unsubscribe),
 * with the topic presence announcements that subscriptions imply.
 */
export class FrameHandler {
  /** Topics each session takes part in the presence of (announced on join and leave). */
  private readonly presenceSubs = new WeakMap<Session, Set<string>>();

  constructor(
    private readonly limits: LimitsConfig,
    private readonly deps: FrameDeps,
    private readonly expiry: ExpiryWheel,
    private readonly replayer: Replayer,
    private readonly closer: SessionCloser,
  ) {}

  /**
   * Client input as the transport got it, decoded by the session's codec (one v1 frame, or
   * any number of v2 frames). Every frame, fragments included, costs a frame of the rate.
   */
  handle(s: Session, data: Buffer | string, isBinary: boolean): void {
    const now = Date.now();
    s.lastSeen = now;
    for (const frame of s.codec.decode(data, isBinary)) {
      if (s.state === CLOSED) return;
      if (!s.takeFrameToken(now, this.limits.framesPerSecond)) {
        this.closer.closeFor(s, 'rate_limited', 'rate limited');
        return;
      }
      switch (frame.op) {
        case 'skip':
          continue;
        case 'fatal':
          // The stream is out of step (or over a limit): say why, then close.
          reply(s, 'error', { code: frame.code, message: frame.message });
          this.closer.close(s, frame.closeCode, frame.message.slice(0, 100), 'protocol_error');
          return;
        case 'error':
          this.reject(s, frame.code, frame.message, frame.ref);
          continue;
      }
      s.badFrames = 0;
      this.dispatch(s, frame).catch((err: unknown) => this.failed(s, err, frame.ref));
    }
  }

  private async dispatch(s: Session, f: ClientFrame): Promise<void> {
    const { status, metrics } = this.deps;
    switch (f.op) {
      case 'ping':
        reply(s, 'pong', {}, f.ref);
        return;
      case 'ack': {
        const at = Date.now();
        const n = await status.ack(
          f.ids
            ? { kind: 'ack_ids', appId: s.appId, userId: s.userId, device: s.device, ids: f.ids, at }
            : { kind: 'ack_upto', appId: s.appId, userId: s.userId, device: s.device, seq: f.seq, at },
        );
        metrics.acks.inc(n);
        if (f.ref !== undefined) reply(s, 'ok', {}, f.ref);
        return;
      }
      case 'read':
        await status.read(s.appId, s.userId, f.seq, s.id);
        if (f.ref !== undefined) reply(s, 'ok', {}, f.ref);
        return;
      case 'refresh': {
        let claims: TokenClaims;
        try {
          claims = await this.deps.apps.verifyToken(s.appId, f.token);
        } catch (err) {
          const why = isPushError(err) ? err.message : 'invalid token';
          replyError(s, 'unauthorized', why, f.ref);
          return;
        }
        if (claims.userId !== s.userId) {
          replyError(s, 'unauthorized', 'token names another user', f.ref);
          return;
        }
        this.expiry.update(s, claims.exp);
        s.topics = claims.topics;
        this.dropDisallowedTopics(s);
        reply(s, 'refreshed', { exp: Math.floor(claims.exp / 1000) }, f.ref);
        return;
      }
      case 'subscribe':
        if (!mayUseTopic(s.topics, f.topic)) {
          replyError(s, 'forbidden', `this token may not subscribe to "${f.topic}"`, f.ref);
          return;
        }
        if (f.presence && f.topic === ALL_TOPIC) {
          replyError(s, 'forbidden', 'no presence events on $all', f.ref);
          return;
        }
        if (!s.subs?.has(f.topic) && (s.subs?.size ?? 0) >= this.limits.maxTopicsPerConnection) {
          const max = this.limits.maxTopicsPerConnection;
          replyError(s, ERRORS.too_many_topics.wire, `at most ${max} topics per connection`, f.ref);
          return;
        }
        await this.subscribe(s, f.topic, f.since, f.ref, f.presence === true);
        return;
      case 'unsubscribe':
        this.deps.hub.unsubscribe(s, f.topic);
        reply(s, 'unsubscribed', { topic: f.topic }, f.ref);
        return;
    }
  }

  /** After `refresh`: subscriptions the new token no longer allows end, each with `unsubscribed`. */
  private dropDisallowedTopics(s: Session): void {
    for (const topic of [...(s.subs?.keys() ?? [])]) {
      if (mayUseTopic(s.topics, topic)) continue;
      this.deps.hub.unsubscribe(s, topic);
      reply(s, 'unsubscribed', { topic });
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
    reply(s, 'subscribed', { topic, offset: current }, ref);
    // A `since` past the end of the stream means "up to date": live messages follow `current`.
    let offset = Math.min(since ?? current, current);
    for (;;) {
      if (offset < current || since !== null) {
        offset = await this.replayer.replayTopic(s, topic, offset);
        if (s.state === CLOSED) return;
      }
      sub.offset = Math.max(sub.offset, offset);
      if (hub.endTopicReplay(s, topic)) return;
      // The hold overflowed during the replay: read on from the store.
      since = offset;
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

  private reject(s: Session, code: string, message: string, ref: Ref): void {
    replyError(s, code, message, ref);
    if (++s.badFrames >= MAX_BAD_FRAMES) this.closer.closeFor(s, 'policy_violation', 'too many bad frames');
  }

  private failed(s: Session, err: unknown, ref: Ref): void {
    this.deps.log.error({ err, connectionId: s.id }, 'client frame failed');
    replyError(s, 'internal', 'internal error', ref);
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
