import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Backoff, connect, MemoryStorage, reconnectDelay } from '../../../client/src/index.js';
import { FakeSocket, fakeToken } from './fakes.js';

describe('reconnect schedule: exponential, full jitter, capped', () => {
  it('draws each delay uniformly below min · 2^attempt, never above the cap', () => {
    const top = (attempt: number) => reconnectDelay(attempt, 500, 30_000, () => 0.999_999);
    expect([0, 1, 2, 3, 4, 5, 6, 7, 20, 100].map(top)).toEqual([
      499, 999, 1999, 3999, 7999, 15_999, 29_999, 29_999, 29_999, 29_999,
    ]);
    expect(reconnectDelay(5, 500, 30_000, () => 0)).toBe(0);
    expect(reconnectDelay(3, 500, 30_000, () => 0.5)).toBe(2000);
  });

  it('Backoff counts attempts and starts over after a reset', () => {
    const b = new Backoff({ minDelayMs: 100, maxDelayMs: 1000, random: () => 0.5 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([50, 100, 200, 400, 500]);
    expect(b.attempts).toBe(5);
    b.reset();
    expect(b.next()).toBe(50);
  });

  it('jitter spreads clients: delays for one attempt differ with the random source', () => {
    const delays = new Set(Array.from({ length: 50 }, () => reconnectDelay(4, 500, 30_000, Math.random)));
    expect(delays.size).toBeGreaterThan(25);
    for (const d of delays) expect(d).toBeLessThan(8000);
  });
});

describe('client reconnects on that schedule', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.reset();
  });
  afterEach(() => vi.useRealTimers());

  it('waits the drawn delay before each attempt, and starts over once connected', async () => {
    const client = connect({
      url: 'http://push.test',
      app: 'a',
      token: fakeToken(),
      WebSocket: FakeSocket,
      transports: ['websocket'],
      storage: null,
      reconnect: { minDelayMs: 1000, maxDelayMs: 4000 },
      random: () => 0.5,
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.all).toHaveLength(1);
    const waits: number[] = [];
    client.on('disconnected', (e) => waits.push(e.delayMs!));
    FakeSocket.last.open();
    FakeSocket.last.drop(1006);
    // Attempts that fail to open: 500, 1000, 2000, 2000 (capped at 4000 · 0.5).
    const schedule = [500, 1000, 2000, 2000];
    for (const [i, expected] of schedule.entries()) {
      const before = FakeSocket.all.length;
      await vi.advanceTimersByTimeAsync(expected - 1);
      expect(FakeSocket.all.length).toBe(before);
      await vi.advanceTimersByTimeAsync(1);
      expect(FakeSocket.all.length).toBe(before + 1);
      if (i < schedule.length - 1) FakeSocket.last.drop(1006);
    }
    FakeSocket.last.open();
    expect(client.state).toBe('connected');
    FakeSocket.last.drop(1001, 'server shutting down');
    await vi.advanceTimersByTimeAsync(500);
    expect(FakeSocket.all).toHaveLength(6);
    expect(waits).toEqual([500, 500]);
    client.close();
  });

  it('reconnect: false stops after the first close', async () => {
    const client = connect({
      url: 'http://push.test',
      app: 'a',
      token: fakeToken(),
      WebSocket: FakeSocket,
      transports: ['websocket'],
      storage: new MemoryStorage(),
      reconnect: false,
    });
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open();
    FakeSocket.last.drop(1006);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.all).toHaveLength(1);
    expect(client.state).toBe('closed');
  });
});
