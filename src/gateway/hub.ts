import { closeCodeOf } from '../domain/errors.js';
import { ALL_TOPIC, isAddressed, type Recipient, type StoredMessage } from '../domain/message.js';
import type { ConnectionRecord } from '../store/store.js';
import { getOrCreate } from '../util/maps.js';
import { SharedText } from './engines/shared-text.js';
import { CODEC_JSON, MessageFrames, type OutFrame } from './protocol/codec.js';
import { encodeCoalesced } from './protocol/json-codec.js';
import type { RoomMerger } from './room-merger.js';
import { CLOSED, LIVE, OFFER_GAP, OFFER_QUEUED, type Session, type TopicSub } from './session.js';

export interface HubOptions {
  /** Window in which frames for one connection are merged into one (0 = those routed in the same task). */
  readonly coalesceMs: number;
  /** Unsent bytes per connection before it is closed with 4009. */
  readonly maxSendBufferBytes: number;
}

export interface HubEvents {
  /** Frames were written to a session's socket: `seqs` (0 for topic frames) and accept times. */
  onWritten(s: Session, seqs: readonly number[], times: readonly number[], now: number): void;
  onRegistered(s: Session): void;
  onUnregistered(s: Session): void;
  /** A session saw a seq gap and is holding live messages: read the missing ones from the store. */
  onGap(s: Session): void;
  /** The hub itself closed a session (`slow`, `kicked`). */
  onClosedByServer(s: Session, reason: string): void;
  /** A session stopped being a topic's subscriber (unsubscribe or close). */
  onTopicLeft?(s: Session, topic: string): void;
  /**
   * A live session subscribed to a topic or unsubscribed from it (for `$all`: whether it
   * receives app-wide broadcasts). Not called for the subscriptions a closing session drops.
   */
  onSubscription?(s: Session, topic: string, subscribed: boolean): void;
}

/** One connection as presence reports it: the connections table's row, without its user. */
export type ConnectionInfo = Omit<ConnectionRecord, 'user_id'>;

/** Sessions flushed per event-loop turn, so acks and pings keep flowing during a large fan-out. */
const FLUSH_SLICE = 2048;
/**
 * And at most about this many bytes per turn: a live room's window of 1,000 messages is a
 * frame of ~130 KB, so 2,048 sockets of it were a quarter gigabyte of socket writes in one turn.
 */
const FLUSH_BYTES = 8 << 20;

/** Fan-out frames kept with their built WebSocket frame at most. */
const MAX_SHARED_FRAMES = 256;
/** How long a connection's send buffer may stay over PUSH_MAX_SEND_BUFFER before it is cut (4009). */
export const SLOW_AFTER_MS = 250;

const key = (appId: string, userId: string) => `${appId}\0${userId}`;

/**
 * The connection registry of this node (app → user → sessions, app → sessions) and the
 * outbound scheduler: it routes delivered messages to sessions, coalesces what is queued
 * for one connection within `coalesceMs`, and writes it in slices.
 */
export class Hub {
  private readonly byUser = new Map<string, Session[]>();
  private readonly byApp = new Map<string, Set<Session>>();
  /** app\0topic → subscribers; a topic without subscribers has no entry. */
  private readonly byTopic = new Map<string, Set<Session>>();
  /** app → sessions that unsubscribed from `$all`; an app without any has no entry. */
  private readonly allMuted = new Map<string, number>();
  private dirty: Session[] = [];
  private flushScheduled = false;
  /**
   * Frames of the fan-out being flushed (topic and `$all` messages), each encoded (and framed)
   * on first write and then shared by every socket. Cleared when the dirty list drains, so it
   * holds only what is in flight.
   */
  private readonly shared = new Map<string, SharedText>();
  private total = 0;
  /** Live rooms: topics whose messages are merged per window (set by the composition root). */
  rooms: RoomMerger | null = null;

  constructor(
    readonly nodeId: string,
    private readonly options: HubOptions,
    private readonly events: HubEvents,
  ) {}

  get size(): number {
    return this.total;
  }

  register(s: Session): void {
    const k = key(s.appId, s.userId);
    const list = this.byUser.get(k);
    if (list) list.push(s);
    else this.byUser.set(k, [s]);
    getOrCreate(this.byApp, s.appId, () => new Set()).add(s);
    this.total++;
    this.events.onRegistered(s);
  }

  /** Idempotent: every close path ends here. */
  unregister(s: Session): void {
    if (s.state === CLOSED) return;
    s.state = CLOSED;
    s.outFrames = s.outSeqs = s.outTimes = null;
    s.held = null;
    const k = key(s.appId, s.userId);
    const list = this.byUser.get(k);
    if (list) {
      const i = list.indexOf(s);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.byUser.delete(k);
    }
    const app = this.byApp.get(s.appId);
    if (app?.delete(s) && app.size === 0) this.byApp.delete(s.appId);
    if (s.subs) for (const topic of s.subs.keys()) this.removeSubscriber(s, topic);
    s.subs = null;
    this.setAllMuted(s, false, false);
    this.total--;
    this.events.onUnregistered(s);
  }

  sessionsOf(appId: string, userId: string): readonly Session[] {
    return this.byUser.get(key(appId, userId)) ?? [];
  }

  /** Sessions past their backlog replay: the ones a resend may go to. */
  liveSessionsOf(appId: string, userId: string): Session[] {
    return this.sessionsOf(appId, userId).filter((s) => s.state === LIVE);
  }

  /** Queues a resend of a frame the session already had (the client dedupes by id). */
  resend(s: Session, seq: number, frame: OutFrame): void {
    // A negative time: resends are not part of the accept → socket latency histogram.
    if (s.enqueue(frame, seq, -1)) this.markDirty(s);
  }

  isOnline(appId: string, userId: string): boolean {
    return this.byUser.has(key(appId, userId));
  }

  /** Connections that a topic message would be handed to now. */
  countTopicConnections(appId: string, topic: string): number {
    if (topic === ALL_TOPIC) return (this.byApp.get(appId)?.size ?? 0) - (this.allMuted.get(appId) ?? 0);
    return this.byTopic.get(key(appId, topic))?.size ?? 0;
  }

  /**
   * Subscribes a session to a topic in replay mode: live messages of the topic are held
   * until `endTopicReplay`, so a replay by offset and live delivery join without gap or repeat.
   */
  subscribe(s: Session, topic: string): TopicSub {
    s.subs ??= new Map();
    if (topic === ALL_TOPIC) this.setAllMuted(s, false);
    const sub: TopicSub = { offset: 0, held: [], heldOverflow: false };
    s.subs.set(topic, sub);
    getOrCreate(this.byTopic, key(s.appId, topic), () => new Set()).add(s);
    if (topic !== ALL_TOPIC) this.events.onSubscription?.(s, topic, true);
    return sub;
  }

  /** Ends a topic replay: held frames past the replayed offset go out. Returns false if the hold overflowed. */
  endTopicReplay(s: Session, topic: string): boolean {
    const sub = s.subs?.get(topic);
    if (!sub || sub.held === null) return true;
    if (sub.heldOverflow) {
      sub.held = [];
      sub.heldOverflow = false;
      return false;
    }
    const held = sub.held;
    sub.held = null;
    for (const h of held) if (s.offerTopicMessage(topic, h.offset, h.frame, h.timestamp)) this.markDirty(s);
    return true;
  }

  /** Unsubscribing from `$all` also stops app-wide broadcasts to the session (it had them unasked). */
  unsubscribe(s: Session, topic: string): boolean {
    if (topic === ALL_TOPIC) this.setAllMuted(s, true);
    if (!s.subs?.delete(topic)) return false;
    this.removeSubscriber(s, topic);
    if (topic !== ALL_TOPIC) this.events.onSubscription?.(s, topic, false);
    return true;
  }

  private setAllMuted(s: Session, muted: boolean, notify = true): void {
    if (s.allMuted === muted) return;
    s.allMuted = muted;
    if (notify) this.events.onSubscription?.(s, ALL_TOPIC, !muted);
    const n = (this.allMuted.get(s.appId) ?? 0) + (muted ? 1 : -1);
    if (n === 0) this.allMuted.delete(s.appId);
    else this.allMuted.set(s.appId, n);
  }

  private removeSubscriber(s: Session, topic: string): void {
    const k = key(s.appId, topic);
    const set = this.byTopic.get(k);
    if (set?.delete(s) && set.size === 0) this.byTopic.delete(k);
    this.events.onTopicLeft?.(s, topic);
  }

  /** This node's subscribers of a topic (`$all`: every session of the app). */
  topicSessions(appId: string, topic: string): ReadonlySet<Session> | undefined {
    return topic === ALL_TOPIC ? this.byApp.get(appId) : this.byTopic.get(key(appId, topic));
  }

  /** Queues a control frame (revoke, read, join/leave) behind the frames already queued for the session. */
  sendControl(
    s: Session,
    op: 'revoke' | 'read' | 'join' | 'leave',
    fields: Record<string, unknown>,
    frame: string,
  ): void {
    if (s.state === CLOSED) return;
    // Queued like a message on both protocols, so a revoke never overtakes the message it
    // recalls, nor a read sync the messages it covers; v2 frames it when it is written.
    if (s.enqueue(s.codec.queuedControl(op, fields, frame), 0, -1)) this.markDirty(s);
  }

  /** Who is subscribed to a topic on this node. */
  topicPresence(appId: string, topic: string): { users: string[]; connections: number } {
    const sessions = topic === ALL_TOPIC ? this.byApp.get(appId) : this.byTopic.get(key(appId, topic));
    if (!sessions) return { users: [], connections: 0 };
    const reached = [...sessions].filter((s) => !s.allMuted || topic !== ALL_TOPIC);
    return { users: [...new Set(reached.map((s) => s.userId))], connections: reached.length };
  }

  /** Routes a stored user-targeted message to the live sessions of its recipients. */
  deliverToUsers(message: StoredMessage, recipients: readonly Recipient[]): void {
    const encoded = new MessageFrames(message);
    for (const r of recipients) {
      const sessions = this.byUser.get(key(message.appId, r.user));
      if (!sessions) continue;
      for (const s of sessions) {
        if (!isAddressed(message.platforms, r.devices, s.platform, s.device)) {
          s.skipSeq(r.seq);
          continue;
        }
        const offered = s.offerUserMessage(r.seq, encoded.user(s.codec.kind, r.seq), message.timestamp);
        if (offered === OFFER_QUEUED) this.markDirty(s);
        else if (offered === OFFER_GAP) this.events.onGap(s);
      }
    }
  }

  /** Routes a topic message (`$all` for app-wide broadcast): encoded once, the same string to all. */
  deliverToTopic(message: StoredMessage): void {
    if (this.rooms?.take(message)) return; // goes out with its room's window (deliverWindow)
    const topic = message.topic!;
    const all = topic === ALL_TOPIC;
    const sessions = all ? this.byApp.get(message.appId) : this.byTopic.get(key(message.appId, topic));
    if (!sessions) return;
    const encoded = new MessageFrames(message);
    let shared = false;
    for (const s of sessions) {
      if (message.platforms !== null && !message.platforms.includes(s.platform)) continue;
      if (all && s.allMuted) continue;
      const frame = encoded.topic(s.codec.kind);
      if (!shared && sessions.size > 1 && typeof frame === 'string') {
        shared = true;
        // Flushes that chain slice after slice under constant traffic never drain the dirty
        // list; the cap bounds the map then (a frame missing from it is just sent as usual).
        if (this.shared.size >= MAX_SHARED_FRAMES) this.shared.clear();
        this.shared.set(frame, new SharedText(frame));
      }
      // `$all` needs no subscription; one exists only to replay it, and then orders it by offset.
      const queued =
        all && !s.subs?.has(topic)
          ? s.enqueue(frame, 0, message.timestamp)
          : s.offerTopicMessage(topic, message.offset!, frame, message.timestamp);
      if (queued) this.markDirty(s);
    }
  }

  /**
   * A live room's window (messages in offset order): one JSON array frame, encoded once and
   * written as the same pre-built WebSocket frame to every subscriber that takes all of it.
   * A subscriber still replaying, already past some of these offsets, filtered out of some
   * by platform, or on a transport that sends frames one by one gets them one by one, with
   * the usual topic rules.
   */
  deliverWindow(appId: string, topic: string, messages: readonly StoredMessage[]): void {
    const sessions = this.byTopic.get(key(appId, topic));
    if (!sessions) return;
    // Each message's frames are built once per protocol, whichever sessions need them.
    const encoded = messages.map((m) => new MessageFrames(m));
    const frames = encoded.map((e) => e.topic(CODEC_JSON) as string);
    // Always an array, even for one message: the room's frame shape does not depend on traffic.
    const merged = `[${frames.join(',')}]`;
    const first = messages[0]!;
    const lastOffset = messages[messages.length - 1]!.offset!;
    const filtered = messages.some((m) => m.platforms !== null);
    if (sessions.size > 1) {
      if (this.shared.size >= MAX_SHARED_FRAMES) this.shared.clear();
      this.shared.set(merged, new SharedText(merged));
    }
    for (const s of sessions) {
      const sub = s.subs?.get(topic);
      if (!sub || s.state === CLOSED) continue;
      const whole =
        sub.held === null &&
        sub.offset < first.offset! &&
        !s.transport.sendFrames &&
        s.codec.kind === CODEC_JSON &&
        (!filtered || messages.every((m) => m.platforms === null || m.platforms.includes(s.platform)));
      if (whole) {
        sub.offset = lastOffset;
        if (s.enqueue(merged, 0, first.timestamp)) this.markDirty(s);
        continue;
      }
      messages.forEach((m, i) => {
        if (m.platforms !== null && !m.platforms.includes(s.platform)) return;
        if (s.offerTopicMessage(topic, m.offset!, encoded[i]!.topic(s.codec.kind), m.timestamp))
          this.markDirty(s);
      });
    }
  }

  /** Ends the backlog replay: frames held meanwhile go out unless the backlog already had them. */
  goLive(s: Session): void {
    const held = s.held;
    s.held = null;
    s.state = LIVE;
    if (!held) return;
    for (const h of held) {
      if (s.offerUserMessage(h.seq, h.frame, h.timestamp, true) === OFFER_QUEUED) this.markDirty(s);
    }
  }

  markDirty(s: Session): void {
    this.dirty.push(s);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    if (this.options.coalesceMs > 0) setTimeout(this.flush, this.options.coalesceMs);
    // A microtask, not setImmediate: it runs once the current task has routed everything it
    // has (a persisted batch routes all its pushes in one chain of continuations, so they
    // still coalesce), without waiting for the next poll phase — that wait was ≈ 1 ms at
    // 5,000 pushes/s, and the write went out behind every request that arrived meanwhile.
    else queueMicrotask(this.flush);
  }

  private readonly flush = (): void => {
    const batch = this.dirty;
    this.dirty = [];
    // Still "scheduled" while writing: a session marked meanwhile waits for the next slice.
    this.flushScheduled = true;
    const now = Date.now();
    let i = 0;
    for (let bytes = 0; i < batch.length && i < FLUSH_SLICE && bytes < FLUSH_BYTES; i++)
      bytes += this.write(batch[i]!, now);
    if (i < batch.length) this.dirty = batch.slice(i).concat(this.dirty);
    if (this.dirty.length > 0) {
      setImmediate(this.flush);
    } else {
      this.flushScheduled = false;
      this.shared.clear();
    }
  };

  /** Writes a session's queue; returns about how many bytes that was. */
  private write(s: Session, now: number): number {
    const q = s.takeQueue();
    if (q === null || s.state === CLOSED) return 0;
    if (this.tooSlow(s, now)) {
      s.transport.close(closeCodeOf('slow_consumer'), 'too slow');
      this.events.onClosedByServer(s, 'slow_consumer');
      this.unregister(s);
      return 0;
    }
    // Only v1 sessions ride SSE / long-poll (sendFrames) or whole text frames (sendShared).
    if (s.transport.sendFrames) s.transport.sendFrames(q.frames as string[], q.seqs);
    else if (!this.writeWhole(s, q.frames)) s.codec.sendMessages(s.transport, q.frames);
    this.events.onWritten(s, q.seqs, q.times, now);
    let bytes = 0;
    for (const f of q.frames) bytes += typeof f === 'string' ? f.length : Buffer.isBuffer(f) ? f.length : 16;
    return bytes;
  }

  /**
   * Too slow = the send buffer stayed over the limit from one write to another SLOW_AFTER_MS
   * later: the client has not read what was written before. One look was not enough: right
   * after a large burst (a page of resends, a backlog page) the buffer is over the limit for
   * a client that reads at full speed, and a push in the next turn cut it (the client, if it
   * shares the server's process or core, has not run yet). Memory stays within the limit
   * plus what is written in SLOW_AFTER_MS.
   */
  private tooSlow(s: Session, now: number): boolean {
    if (s.transport.bufferedAmount <= this.options.maxSendBufferBytes) {
      s.overLimitSince = 0;
      return false;
    }
    if (s.overLimitSince === 0) s.overLimitSince = now;
    return now - s.overLimitSince >= SLOW_AFTER_MS;
  }

  /**
   * Writes a v1 session's queue as one whole text frame: a fan-out frame's shared bytes, or
   * a frame built for this socket (a user message carries the user's own seq). One buffer,
   * one socket write: ws's own `send` corks a header and a payload into a writev, about
   * twice the cost per socket, which a group push to thousands of online members paid in
   * full. False when the transport cannot take it now (the caller sends it through `send`).
   */
  private writeWhole(s: Session, frames: readonly OutFrame[]): boolean {
    if (!s.transport.sendShared || s.codec.kind !== CODEC_JSON) return false;
    const text = frames.length === 1 ? (frames[0] as string) : encodeCoalesced(frames as string[]);
    return s.transport.sendShared(this.shared.get(text) ?? new SharedText(text));
  }

  /** Closes a user's connections (all, or one device's) with 4003. */
  kick(appId: string, userId: string, device?: string): number {
    const sessions = [...this.sessionsOf(appId, userId)].filter(
      (s) => device === undefined || s.device === device,
    );
    for (const s of sessions) {
      s.transport.close(closeCodeOf('kicked'), 'kicked');
      this.events.onClosedByServer(s, 'kicked');
      this.unregister(s);
    }
    return sessions.length;
  }

  presenceOf(appId: string, userId: string): ConnectionInfo[] {
    return this.sessionsOf(appId, userId).map((s) => ({
      connection_id: s.id,
      device: s.device,
      platform: s.platform,
      node: this.nodeId,
      connected_at: s.connectedAt,
      last_heartbeat: s.lastSeen,
    }));
  }

  /** Every session, for shutdown and metrics. */
  *all(): IterableIterator<Session> {
    for (const set of this.byApp.values()) yield* set;
  }
}
