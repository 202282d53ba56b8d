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
  it('pings each session once per interval, spread over slots of a few sessions each', () => {
    const wheel = new HeartbeatWheel(32_000, () => {});
    // A tick every ~20 ms: 1600 slots for a 32 s interval.
    expect(wheel.slotCount).toBe(1600);
    expect(wheel.tickMs).toBe(20);
    const fakes = Array.from({ length: 2 * wheel.slotCount }, () => fakeTransport());
    const t0 = 1_000_000;
    for (const f of fakes) wheel.add(session(f.transport, t0));
    // One tick visits one slot: two of the sessions.
    wheel.tick(t0 + wheel.tickMs);
    expect(fakes.reduce((n, f) => n + f.t.pings, 0)).toBe(2);
    for (let i = 1; i < wheel.slotCount; i++) wheel.tick(t0 + wheel.tickMs * (i + 1));
    expect(fakes.every((f) => f.t.pings === 1)).toBe(true);
  });

  it('keeps at least 32 slots for short intervals', () => {
    const wheel = new HeartbeatWheel(320, () => {});
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
