import { describe, expect, it, vi } from 'vitest';
import type { SharedText } from '../../../src/gateway/engines/shared-text.js';
import { Hub, SLOW_AFTER_MS } from '../../../src/gateway/hub.js';
import { LIVE, Session, type Transport } from '../../../src/gateway/session.js';
import { message, noEvents } from './fixtures.js';

/** A transport that does nothing unless told; the tests set `bufferedAmount`. */
function stubTransport(over: Partial<Transport> = {}): Transport & { bufferedAmount: number } {
  return { send: () => {}, bufferedAmount: 0, ping: () => {}, close: () => {}, terminate: () => {}, ...over };
}

function newSession(transport: Transport): Session {
  return new Session('c1', 'a', 'u', 'd', 'web', transport, Date.now() + 60_000, null, 0, 100);
}

/** A registered session past its backlog replay. */
function liveSession(hub: Hub, transport: Transport): Session {
  const s = newSession(transport);
  hub.register(s);
  s.state = LIVE;
  return s;
}

describe('hub: ordering when messages of one user arrive out of seq order', () => {
  it('reports the gap, holds the later message, and releases it after the repair in seq order', async () => {
    const sent: string[] = [];
    const gaps: Session[] = [];
    const hub = new Hub(
      'n1',
      { coalesceMs: 0, maxSendBufferBytes: 1 << 20 },
      { ...noEvents, onGap: (s) => void gaps.push(s) },
    );
    const s = liveSession(hub, stubTransport({ send: (d) => void sent.push(String(d)) }));
    s.lastSeq = 1;
    hub.deliverToUsers(message('m3'), [{ user: 'u', seq: 3, devices: null }]);
    expect(gaps).toEqual([s]);
    // The repair (a store replay) sends seq 2 and moves lastSeq; then the held seq 3 goes out.
    s.lastSeq = 2;
    hub.goLive(s);
    await new Promise((r) => setImmediate(r));
    expect(sent.map((f) => JSON.parse(f).seq)).toEqual([3]);
  });
});

describe('session: a hold that skips a seq is not released', () => {
  const holding = (lastSeq: number, seqs: number[]) => {
    const s = newSession(stubTransport());
    s.lastSeq = lastSeq;
    s.held = seqs.map((seq) => ({ seq, frame: '{}', timestamp: 0 }));
    return s;
  };

  it('sees a hole between lastSeq and the held seqs, or among them, in any arrival order', () => {
    expect(holding(2, [4]).heldHasHole()).toBe(true);
    expect(holding(2, [3, 5]).heldHasHole()).toBe(true);
    expect(holding(2, [5, 3]).heldHasHole()).toBe(true);
  });

  it('sees none when the held seqs continue lastSeq (or are already covered by it)', () => {
    expect(holding(2, []).heldHasHole()).toBe(false);
    expect(holding(2, [4, 3]).heldHasHole()).toBe(false);
    expect(holding(5, [2, 4, 6]).heldHasHole()).toBe(false);
    expect(holding(5, [5, 7, 6]).heldHasHole()).toBe(false);
  });
});

describe('hub: a slow consumer is one whose send buffer stays over the limit', () => {
  it('writes past a burst that the client is still reading, and cuts with 4009 once over for SLOW_AFTER_MS', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const sent: number[] = [];
      const closes: number[] = [];
      const transport = stubTransport({
        send: (d) => void sent.push(JSON.parse(String(d)).seq),
        close: (code) => void closes.push(code),
      });
      const slow: string[] = [];
      const hub = new Hub(
        'n1',
        { coalesceMs: 0, maxSendBufferBytes: 1000 },
        { ...noEvents, onClosedByServer: (_s, why) => void slow.push(why) },
      );
      liveSession(hub, transport);
      let seq = 0;
      const push = async (advanceMs: number, buffered: number) => {
        vi.advanceTimersByTime(advanceMs);
        transport.bufferedAmount = buffered;
        seq++;
        hub.deliverToUsers(message(`m${seq}`), [{ user: 'u', seq, devices: null }]);
        await new Promise((r) => setImmediate(r));
      };

      await push(0, 50_000); // right after a large burst: over the limit, but only just seen
      await push(SLOW_AFTER_MS - 1, 40_000); // still over, not yet for SLOW_AFTER_MS
      await push(1, 0); // it read everything: the clock starts again
      await push(10, 50_000);
      await push(SLOW_AFTER_MS - 1, 50_000);
      expect(sent).toEqual([1, 2, 3, 4, 5]);
      expect(closes).toEqual([]);

      await push(1, 50_000); // over the limit for SLOW_AFTER_MS: too slow
      expect(sent).toEqual([1, 2, 3, 4, 5]);
      expect(closes).toEqual([4009]);
      expect(slow).toEqual(['slow_consumer']);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('hub: when routed frames are written', () => {
  it('writes what one task routed right after it, frames for one connection merged into one', async () => {
    const sent: unknown[] = [];
    const hub = new Hub('n1', { coalesceMs: 0, maxSendBufferBytes: 1 << 20 }, noEvents);
    liveSession(hub, stubTransport({ send: (d) => void sent.push(JSON.parse(String(d))) }));
    hub.deliverToUsers(message('m1'), [{ user: 'u', seq: 1, devices: null }]);
    hub.deliverToUsers(message('m2'), [{ user: 'u', seq: 2, devices: null }]);
    expect(sent).toEqual([]); // not inside the routing call
    await Promise.resolve(); // the flush was queued before this continuation: it has run
    expect(sent).toHaveLength(1);
    expect((sent[0] as { seq: number }[]).map((f) => f.seq)).toEqual([1, 2]);
  });
});

describe('hub: a large fan-out is written over several turns', () => {
  it('stops a turn after about 8 MiB of frames and writes the rest in the next', async () => {
    const hub = new Hub('n1', { coalesceMs: 0, maxSendBufferBytes: 1 << 30 }, noEvents);
    const written: string[] = [];
    for (let i = 0; i < 5; i++) {
      const s = new Session(
        `c${i}`,
        'a',
        `u${i}`,
        'd',
        'web',
        stubTransport({ send: () => void written.push(`u${i}`) }),
        Date.now() + 60_000,
        null,
        0,
        100,
      );
      hub.register(s);
      s.state = LIVE;
    }
    // ~3 MiB per frame: three of them pass the turn's budget.
    const big = { ...message('big'), dataJson: JSON.stringify('x'.repeat(3 << 20)) };
    hub.deliverToUsers(
      big,
      [0, 1, 2, 3, 4].map((i) => ({ user: `u${i}`, seq: 1, devices: null })),
    );
    await Promise.resolve();
    expect(written).toEqual(['u0', 'u1', 'u2']);
    await new Promise((r) => setImmediate(r));
    expect(written).toEqual(['u0', 'u1', 'u2', 'u3', 'u4']);
  });
});

describe('hub: v1 frames go to a WebSocket as one whole frame', () => {
  /** What a WebSocket engine's `sendShared` puts on the wire: the frame's bytes, parsed back. */
  const wire = (frames: Buffer[]) => (shared: SharedText) => {
    frames.push(shared.frame());
    return true;
  };
  const payloadOf = (frame: Buffer) => JSON.parse(frame.subarray(frame[1]! < 126 ? 2 : 4).toString('utf8'));

  it('writes each user its own frame (its own seq, its queue coalesced) through the whole-frame write, not send', async () => {
    const hub = new Hub('n1', { coalesceMs: 0, maxSendBufferBytes: 1 << 20 }, noEvents);
    const frames: [Buffer[], Buffer[]] = [[], []];
    const sends: unknown[] = [];
    ['u1', 'u2'].forEach((user, i) => {
      const s = new Session(
        `c${i}`,
        'a',
        user,
        'd',
        'web',
        stubTransport({ send: (d) => void sends.push(d), sendShared: wire(frames[i]!) }),
        Date.now() + 60_000,
        null,
        0,
        100,
      );
      hub.register(s);
      s.state = LIVE;
    });
    hub.deliverToUsers(message('g1'), [
      { user: 'u1', seq: 1, devices: null },
      { user: 'u2', seq: 1, devices: null },
    ]);
    hub.deliverToUsers(message('g2'), [{ user: 'u1', seq: 2, devices: null }]);
    await Promise.resolve();
    expect(sends).toEqual([]);
    // u1's two messages coalesced into one array frame; u2's one message alone.
    expect(frames[0]).toHaveLength(1);
    expect(payloadOf(frames[0]![0]!).map((m: { id: string; seq: number }) => [m.id, m.seq])).toEqual([
      ['g1', 1],
      ['g2', 2],
    ]);
    expect(frames[1]).toHaveLength(1);
    expect(payloadOf(frames[1]![0]!)).toMatchObject({ op: 'message', id: 'g1', seq: 1 });
  });

  it('falls back to send when the transport cannot take a whole frame now', async () => {
    const hub = new Hub('n1', { coalesceMs: 0, maxSendBufferBytes: 1 << 20 }, noEvents);
    const sent: unknown[] = [];
    liveSession(
      hub,
      stubTransport({ send: (d) => void sent.push(JSON.parse(String(d))), sendShared: () => false }),
    );
    hub.deliverToUsers(message('m1'), [{ user: 'u', seq: 1, devices: null }]);
    await Promise.resolve();
    expect(sent).toEqual([expect.objectContaining({ id: 'm1', seq: 1 })]);
  });
});
