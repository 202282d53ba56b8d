/**
 * One client connection: identity, outbound queue with coalescing, the hold buffer used
 * while its backlog is replayed, and the small counters for rate limits and liveness.
 *
 * Memory per idle connection is the scale limit, so a session is a handful of fields and
 * allocates its queues only while something is queued. No timers or closures per session:
 * the hub flushes queues, the heartbeat wheel checks liveness.
 */

import type { ClosingCode } from '../domain/errors.js';
import type { SharedText } from './engines/shared-text.js';
import { JSON_CODEC, type OutFrame, type ServerOp, type SessionCodec } from './protocol/codec.js';
import type { Ref } from './protocol/json-codec.js';

/**
 * The connection capability a session writes through: the only way the gateway and the hub
 * reach a socket. Each WebSocket engine (engines/), SSE, long-poll and TCP implement it.
 */
export interface Transport {
  /** One frame (text for a string, binary for a Buffer); `cb` once the OS has taken it, or with an error if it never will. */
  send(data: string | Buffer, cb?: (err?: Error) => void): void;
  /**
   * Message frames one by one, with their seqs (0 for topic frames). Transports without it
   * (WebSocket) get several frames coalesced into one JSON array frame through `send`.
   */
  sendFrames?(frames: readonly string[], seqs: readonly number[], cb?: () => void): void;
  /**
   * A fan-out text frame whose bytes are shared with every other socket it goes to; false
   * when it could not be written this way now (the caller sends it through `send`).
   */
  sendShared?(frame: SharedText): boolean;
  /**
   * One binary frame made of a small per-connection head and a body shared with other
   * sockets: v2 fan-out, where only the 16-byte header differs per connection. Engines write
   * the two without building a per-connection copy where they can.
   */
  sendParts?(head: Buffer, body: Buffer, cb?: (err?: Error) => void): void;
  /** Bytes written but not yet taken by the OS: the backpressure signal the slow-consumer cut reads. */
  readonly bufferedAmount: number;
  ping(): void;
  /** Ends the connection with a close code and reason the client sees. */
  close(code: number, reason?: string): void;
  /** Ends it at once, without a close frame. */
  terminate(): void;
}

export const SYNCING = 0;
export const LIVE = 1;
export const CLOSED = 2;

/** What offering a live message did: nothing to send, queued (first in its queue: schedule a flush), or found a gap. */
export const OFFER_NONE = 0;
export const OFFER_QUEUED = 1;
export const OFFER_GAP = 2;

/** Live frames held while the backlog replays; past this the hold is dropped and re-read from the store. */
export const MAX_HELD = 1024;

/** One topic subscription: the last offset queued, and live frames held while its replay runs. */
export interface TopicSub {
  offset: number;
  held: { offset: number; frame: OutFrame; timestamp: number }[] | null;
  heldOverflow: boolean;
  /** The subscriber asked for the topic's join/leave events. */
  presence?: boolean;
}

export class Session {
  state = SYNCING;
  lastSeen: number;
  /** Highest user seq queued on this connection; live frames at or below it are duplicates. */
  lastSeq = 0;
  /** Heartbeat wheel slot. */
  slot = 0;
  // Outbound queue: parallel arrays, null while empty.
  outFrames: OutFrame[] | null = null;
  outSeqs: number[] | null = null;
  outTimes: number[] | null = null;
  // Held during backlog replay.
  held: { seq: number; frame: OutFrame; timestamp: number }[] | null = null;
  heldOverflow = false;
  /** When a write first found this connection's send buffer over the limit (0: it is not). */
  overLimitSince = 0;
  /** Topic subscriptions (not `$all`, which every session receives); null while there are none. */
  subs: Map<string, TopicSub> | null = null;
  /** The client unsubscribed from `$all`: app-wide broadcasts skip it until it subscribes again. */
  allMuted = false;
  // Rate limiting (token bucket) and tolerance for bad frames.
  frameTokens: number;
  frameRefillAt: number;
  badFrames = 0;

  constructor(
    readonly id: string,
    readonly appId: string,
    readonly userId: string,
    readonly device: string,
    readonly platform: string,
    readonly transport: Transport,
    /** Token expiry, ms. */
    public exp: number,
    public topics: readonly string[] | null,
    readonly connectedAt: number,
    framesPerSecond: number,
    /** The wire protocol chosen at the handshake. */
    readonly codec: SessionCodec = JSON_CODEC,
  ) {
    this.lastSeen = connectedAt;
    this.frameTokens = framesPerSecond;
    this.frameRefillAt = connectedAt;
  }

  /** Queues a frame; returns true when the queue was empty (the hub must schedule a flush). */
  enqueue(frame: OutFrame, seq: number, timestamp: number): boolean {
    if (this.outFrames === null) {
      this.outFrames = [frame];
      this.outSeqs = [seq];
      this.outTimes = [timestamp];
      return true;
    }
    this.outFrames.push(frame);
    this.outSeqs!.push(seq);
    this.outTimes!.push(timestamp);
    return false;
  }

  /**
   * A live user message; while syncing it is held and sent after the backlog. A seq past
   * `lastSeq + 1` means an earlier message has not arrived (several nodes publish on the bus
   * in no common order): the session goes back to syncing, holds this one, and the caller
   * repairs the gap from the store. `allowGap` is for frames released after such a repair.
   */
  offerUserMessage(seq: number, frame: OutFrame, timestamp: number, allowGap = false): number {
    if (this.state === CLOSED) return OFFER_NONE;
    if (this.state === SYNCING) {
      if (this.heldOverflow) return OFFER_NONE;
      if (this.held === null) this.held = [];
      if (this.held.length >= MAX_HELD) {
        this.held = null;
        this.heldOverflow = true;
      } else {
        this.held.push({ seq, frame, timestamp });
      }
      return OFFER_NONE;
    }
    if (seq <= this.lastSeq) return OFFER_NONE;
    if (!allowGap && seq > this.lastSeq + 1) {
      this.state = SYNCING;
      this.held = [{ seq, frame, timestamp }];
      this.heldOverflow = false;
      return OFFER_GAP;
    }
    this.lastSeq = seq;
    return this.enqueue(frame, seq, timestamp) ? OFFER_QUEUED : OFFER_NONE;
  }

  /**
   * Whether the held live messages skip a seq past `lastSeq`. With several nodes publishing,
   * a message can overtake an earlier one on the bus; the earlier one is already committed
   * (seqs are allocated under the counter's row lock, so seq n commits before n+1), so one
   * more read of the store fills the hole. On one node messages arrive in seq order and
   * this is always false.
   */
  heldHasHole(): boolean {
    if (this.held === null || this.held.length === 0) return false;
    let next = this.lastSeq + 1;
    for (const seq of this.held.map((h) => h.seq).sort((a, b) => a - b)) {
      if (seq < next) continue;
      if (seq > next) return true;
      next++;
    }
    return false;
  }

  /** A message of this user not addressed to this connection (device or platform filter): seen, not a gap. */
  skipSeq(seq: number): void {
    if (this.state === LIVE && seq === this.lastSeq + 1) this.lastSeq = seq;
  }

  /** A live topic message; held while that topic's replay runs, dropped if the replay already sent it. */
  offerTopicMessage(topic: string, offset: number, frame: OutFrame, timestamp: number): boolean {
    const sub = this.subs?.get(topic);
    if (!sub || this.state === CLOSED) return false;
    if (sub.held !== null) {
      if (sub.held.length >= MAX_HELD) {
        sub.held = [];
        sub.heldOverflow = true;
      } else if (!sub.heldOverflow) {
        sub.held.push({ offset, frame, timestamp });
      }
      return false;
    }
    if (offset <= sub.offset) return false;
    sub.offset = offset;
    return this.enqueue(frame, 0, timestamp);
  }

  /** Takes the queued frames (the caller writes them). */
  takeQueue(): { frames: OutFrame[]; seqs: number[]; times: number[] } | null {
    if (this.outFrames === null) return null;
    const q = { frames: this.outFrames, seqs: this.outSeqs!, times: this.outTimes! };
    this.outFrames = this.outSeqs = this.outTimes = null;
    return q;
  }

  /** Token bucket: `rate` frames/s sustained, bursts up to one second's worth. */
  takeFrameToken(now: number, rate: number): boolean {
    const refill = ((now - this.frameRefillAt) * rate) / 1000;
    this.frameTokens = Math.min(rate, this.frameTokens + refill);
    this.frameRefillAt = now;
    if (this.frameTokens < 1) return false;
    this.frameTokens -= 1;
    return true;
  }
}

/** Sends a control frame (welcome, pong, ok, error…) unless the session has closed. */
export function reply(s: Session, op: ServerOp, fields: Record<string, unknown>, ref?: Ref): void {
  if (s.state !== CLOSED) s.codec.sendControl(s.transport, op, fields, ref);
}

export function replyError(s: Session, code: string, message: string, ref: Ref): void {
  reply(s, 'error', { code, message }, ref);
}

/** How the gateway's parts end a session: with a close code the client sees, and a metric reason. */
export interface SessionCloser {
  close(s: Session, code: number, reason: string, metricReason: string): void;
  /** Closes for a registry error: its close code, and the code as the metric's reason. */
  closeFor(s: Session, code: ClosingCode, reason: string): void;
}
