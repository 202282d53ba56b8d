import { describe, expect, it } from 'vitest';
import { ExpiryWheel, HeartbeatWheel } from '../../../src/gateway/heartbeat.js';
import { KeyedRateLimiter } from '../../../src/gateway/rate-limiter.js';
import {
  LIVE,
  OFFER_GAP,
  OFFER_NONE,
  OFFER_QUEUED,
  Session,
  SYNCING,
  type Transport,
} from '../../../src/gateway/session.js';

function fakeTransport() {
  const t = { pings: 0, sent: [] as string[] };
  const transport: Transport = {
    send: (d) => void t.sent.push(String(d)),
    bufferedAmount: 0,
    ping: () => void t.pings++,
    close: () => {},
    terminate: () => {},
  };
  return { t, transport };
}

const session = (transport: Transport, now: number, exp = now + 3600_000) =>
  new Session('c1', 'a', 'u', 'd', 'web', transport, exp, null, now, 100);

describe('heartbeat wheel (one timer for all connections)', () => {
  it('pings each session once per interval, spread over slots and turns of a few sessions each', () => {
    const wheel = new HeartbeatWheel(32_000, () => {});
    // A 32 s interval is 16 turns of 2 s (the longest gap between two liveness checks),
    // each of 100 slots visited every 20 ms.
    expect(wheel.phases).toBe(16);
    expect(wheel.slotCount).toBe(100);
    expect(wheel.tickMs).toBe(20);
    const positions = wheel.slotCount * wheel.phases;
    const fakes = Array.from({ length: 2 * positions }, () => fakeTransport());
    const t0 = 1_000_000;
    for (const f of fakes) wheel.add(session(f.transport, t0));
    // One tick visits one slot and pings the sessions whose turn it is: two of them.
    wheel.tick(t0 + wheel.tickMs);
    expect(fakes.reduce((n, f) => n + f.t.pings, 0)).toBe(2);
    for (let i = 1; i < positions; i++) wheel.tick(t0 + wheel.tickMs * (i + 1));
    expect(fakes.every((f) => f.t.pings === 1)).toBe(true);
  });

  it('keeps at least 32 slots for short intervals', () => {
    const wheel = new HeartbeatWheel(320, () => {});
    expect(wheel.phases).toBe(1);
    expect(wheel.slotCount).toBe(32);
    expect(wheel.tickMs).toBe(10);
  });

  it('reports a session silent for two intervals and keeps answering ones', () => {
    const silent: Session[] = [];
    const wheel = new HeartbeatWheel(3200, (s) => silent.push(s));
    const quiet = session(fakeTransport().transport, 0);
    const chatty = session(fakeTransport().transport, 0);
    wheel.add(quiet);
    wheel.add(chatty);
    for (let now = wheel.tickMs; now <= 6600; now += wheel.tickMs) {
      chatty.lastSeen = now; // answers every ping
      wheel.tick(now);
    }
    expect(silent).toEqual([quiet]);
  });

  it.each([100, 300, 1000, 15_000, 60_000, 120_000])(
    'drops a silent session between 2·H and 2·H + 5 s after its last sign of life, H = %i ms, with late timers',
    (intervalMs) => {
      const dropped = new Map<Session, number>();
      const wheel = new HeartbeatWheel(intervalMs, (s) => {
        dropped.set(s, now);
        wheel.remove(s);
      });
      // A seeded walk of the clock: timers fire up to 250 ms late, sessions arrive throughout.
      let seed = 7;
      const random = () => {
        seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
        return seed / 2 ** 31;
      };
      let now = 1_000_000;
      const sessions: Session[] = [];
      const end = now + 3 * intervalMs + 10_000;
      while (now < end) {
        now += wheel.tickMs + Math.floor(random() < 0.1 ? random() * 250 : 0);
        if (now < end - 2 * intervalMs - 6000 && random() < 0.3) {
          const s = session(fakeTransport().transport, now);
          sessions.push(s);
          wheel.add(s);
        }
        wheel.advance(now);
      }
      expect(sessions.length).toBeGreaterThan(10);
      for (const s of sessions) {
        const at = dropped.get(s);
        expect(at, 'every silent session is dropped').toBeDefined();
        expect(at! - s.lastSeen).toBeGreaterThanOrEqual(2 * intervalMs);
        expect(at! - s.lastSeen).toBeLessThanOrEqual(2 * intervalMs + 5000);
      }
    },
  );

  it('reports the node heartbeat once per interval, not once per turn', () => {
    const ticks: number[] = [];
    const wheel = new HeartbeatWheel(
      10_000,
      () => {},
      (now) => ticks.push(now),
    );
    for (let i = 1; i <= 5 * wheel.slotCount * wheel.phases; i++) wheel.tick(i * wheel.tickMs);
    expect(wheel.phases).toBe(5);
    expect(ticks).toHaveLength(5);
  });
});

describe('expiry wheel', () => {
  it('reports a session when its token expires, and not before', () => {
    const expired: Session[] = [];
    const wheel = new ExpiryWheel((s) => expired.push(s));
    const now = Date.now();
    const s = session(fakeTransport().transport, now, now + 2500);
    wheel.add(s);
    wheel.tick(now + 1000);
    expect(expired).toEqual([]);
    wheel.tick(now + 4000);
    expect(expired).toEqual([s]);
  });

  it('moves a refreshed session to its new expiry', () => {
    const expired: Session[] = [];
    const wheel = new ExpiryWheel((s) => expired.push(s));
    const now = Date.now();
    const s = session(fakeTransport().transport, now, now + 2000);
    wheel.add(s);
    wheel.update(s, now + 60_000);
    wheel.tick(now + 5000);
    expect(expired).toEqual([]);
    wheel.tick(now + 61_000);
    expect(expired).toEqual([s]);
  });
});

describe('session', () => {
  it('holds live messages while syncing and drops duplicates of what the backlog sent', () => {
    const s = session(fakeTransport().transport, 0);
    expect(s.offerUserMessage(5, 'f5', 0)).toBe(OFFER_NONE);
    expect(s.held?.map((h) => h.seq)).toEqual([5]);
    s.state = LIVE;
    s.lastSeq = 5;
    expect(s.offerUserMessage(5, 'f5', 0)).toBe(OFFER_NONE);
    expect(s.offerUserMessage(6, 'f6', 0)).toBe(OFFER_QUEUED);
    expect(s.offerUserMessage(7, 'f7', 0)).toBe(OFFER_NONE); // queue already scheduled
    expect(s.takeQueue()?.seqs).toEqual([6, 7]);
  });

  it('a seq gap (messages from several nodes out of order) holds the message and asks for a repair', () => {
    const s = session(fakeTransport().transport, 0);
    s.state = LIVE;
    s.lastSeq = 3;
    expect(s.offerUserMessage(5, 'f5', 0)).toBe(OFFER_GAP);
    expect(s.state).toBe(SYNCING);
    expect(s.held?.map((h) => h.seq)).toEqual([5]);
    // A message for another device of the user is seen, not a gap.
    const t = session(fakeTransport().transport, 0);
    t.state = LIVE;
    t.lastSeq = 3;
    t.skipSeq(4);
    expect(t.offerUserMessage(5, 'f5', 0)).toBe(OFFER_QUEUED);
  });

  it('limits client frames with a token bucket', () => {
    const s = session(fakeTransport().transport, 0);
    let ok = 0;
    for (let i = 0; i < 150; i++) if (s.takeFrameToken(0, 100)) ok++;
    expect(ok).toBe(100);
    expect(s.takeFrameToken(500, 100)).toBe(true); // half a second refills 50
  });
});

describe('per-IP handshake limiter', () => {
  it('allows `rate` per second per key and refills over time', () => {
    const l = new KeyedRateLimiter(3);
    expect([1, 2, 3, 4].map(() => l.take('ip1', 0))).toEqual([true, true, true, false]);
    expect(l.take('ip2', 0)).toBe(true);
    expect(l.take('ip1', 400)).toBe(true);
  });
});
