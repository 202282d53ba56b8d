import type { StatusWriter } from '../delivery/status-writer.js';
import { isAddressed } from '../domain/message.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../store/store.js';
import type { Hub } from './hub.js';
import { MessageFrames, type OutFrame } from './protocol/codec.js';
import { CLOSED, type Session, type SessionCloser } from './session.js';

/** What a topic keeps replayable: the newest `count` messages, none older than `ms`. */
export interface TopicRetention {
  readonly count: number;
  readonly ms: number;
}

export interface ReplayOptions {
  /** A replay frame the client leaves untaken this long has stopped it (4009). */
  readonly heartbeatMs: number;
  readonly topicRetention: TopicRetention;
}

export interface ReplayDeps {
  readonly hub: Pick<Hub, 'goLive'>;
  readonly store: Pick<Store, 'lastSeq' | 'readUserMessages' | 'readTopicHistory'>;
  readonly status: Pick<StatusWriter, 'markSent'>;
  readonly metrics: Metrics;
  readonly log: Logger;
}

/** Backlog rows read per page, and messages per coalesced backlog frame. */
const BACKLOG_PAGE = 500;
const BACKLOG_FRAME_BYTES = 64 * 1024;

/**
 * Backlog and resume: what a session missed, read from the store page by page and written
 * with flow control, joined to live delivery without a gap or a repeat (live frames are
 * held by the session meanwhile).
 */
export class Replayer {
  constructor(
    private readonly options: ReplayOptions,
    private readonly deps: ReplayDeps,
    private readonly closer: SessionCloser,
  ) {}

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
          await this.write(s, frames, seqs);
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
      this.closer.closeFor(s, 'internal', 'internal error');
    }
  }

  /** Writes a topic's stored messages after `afterOffset`; returns the last offset written. */
  async replayTopic(s: Session, topic: string, afterOffset: number): Promise<number> {
    const { count, ms } = this.options.topicRetention;
    let offset = afterOffset;
    for (;;) {
      const now = Date.now();
      const { rows, hasMore } = await this.deps.store.readTopicHistory({
        appId: s.appId,
        topic,
        keepCount: count,
        keepSince: now - ms,
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
      if (frames.length > 0) await this.write(s, frames, new Array<number>(frames.length).fill(0));
      if (!hasMore) return offset;
    }
  }

  /**
   * Writes replayed frames with flow control: merged into array frames of bounded size (on a
   * WebSocket), each written only once the OS has taken the previous one, so a replay never
   * holds more than one frame of unsent data. A client that leaves a frame untaken for a
   * whole heartbeat interval has stopped reading: it is cut with 4009 and resumes from the store.
   */
  private async write(s: Session, frames: readonly OutFrame[], seqs: readonly number[]): Promise<void> {
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
    if (s.state !== CLOSED) this.closer.closeFor(s, 'slow_consumer', 'too slow');
  }
}
