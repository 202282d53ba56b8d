import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Hub } from '../../../src/gateway/hub.js';
import { LifecycleSignals } from '../../../src/gateway/lifecycle-signals.js';
import { Session, type Transport } from '../../../src/gateway/session.js';
import { noEvents } from './fixtures.js';

/** A transport that records what the hub writes (the frames this unit produces). */
function recorder() {
  const sent: unknown[] = [];
  const transport: Transport = {
    send: (data) => {
      const parsed = JSON.parse(String(data));
      sent.push(...(Array.isArray(parsed) ? parsed : [parsed]));
    },
    bufferedAmount: 0,
    ping: () => {},
    close: () => {},
    terminate: () => {},
  };
  return { sent, transport };
}

describe('lifecycle signals', () => {
  let hub: Hub;
  let signals: LifecycleSignals;
  const session = (id: string, user: string, device: string) => {
    const r = recorder();
    const s = new Session(id, 'a', user, device, 'web', r.transport, Date.now() + 60_000, null, 0, 100);
    hub.register(s);
    return { s, sent: r.sent };
  };
  const flush = () => vi.advanceTimersByTimeAsync(0);
  const presence = (op: 'join' | 'leave', user: string, device: string, connection = 'cX') =>
    signals.deliver({ kind: 'topic_presence', appId: 'a', topic: 't', op, user, device, connection });

  beforeEach(() => {
    vi.useFakeTimers();
    hub = new Hub('n1', { coalesceMs: 0, maxSendBufferBytes: 1 << 20 }, noEvents);
    signals = new LifecycleSignals(hub, 1000);
  });
  afterEach(() => {
    signals.close();
    vi.useRealTimers();
  });

  it('revoke goes to every session of each recipient with its seq; read skips the reader', async () => {
    const a = session('c1', 'u1', 'd1');
    const b = session('c2', 'u1', 'd2');
    const c = session('c3', 'u2', 'd1');
    signals.deliver({ kind: 'revoke', appId: 'a', id: 'm', recipients: [{ user: 'u1', seq: 4 }] });
    signals.deliver({ kind: 'read', appId: 'a', userId: 'u1', seq: 4, except: 'c1' });
    await flush();
    expect(a.sent).toEqual([{ op: 'revoke', id: 'm', seq: 4 }]);
    expect(b.sent).toEqual([
      { op: 'revoke', id: 'm', seq: 4 },
      { op: 'read', seq: 4 },
    ]);
    expect(c.sent).toEqual([]);
  });

  it('join at once; leave after the window; a rejoin within it cancels both; only presence subscribers hear', async () => {
    const watcher = session('c1', 'w', 'dw');
    hub.subscribe(watcher.s, 't').presence = true;
    hub.endTopicReplay(watcher.s, 't');
    const plain = session('c2', 'p', 'dp');
    hub.subscribe(plain.s, 't');
    hub.endTopicReplay(plain.s, 't');

    presence('join', 'g', 'dg');
    await flush();
    expect(watcher.sent).toEqual([{ op: 'join', topic: 't', user: 'g', device: 'dg' }]);

    presence('leave', 'g', 'dg');
    await vi.advanceTimersByTimeAsync(999);
    presence('join', 'g', 'dg');
    await vi.advanceTimersByTimeAsync(5000);
    expect(watcher.sent).toHaveLength(1);

    presence('leave', 'g', 'dg');
    await vi.advanceTimersByTimeAsync(999);
    expect(watcher.sent).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(watcher.sent.at(-1)).toEqual({ op: 'leave', topic: 't', user: 'g', device: 'dg' });
    // Its own events never reach the connection that caused them.
    presence('join', 'w', 'dw', 'c1');
    await flush();
    expect(watcher.sent).toHaveLength(2);
    expect(plain.sent).toEqual([]);
  });
});
