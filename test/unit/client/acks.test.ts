import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AckBatcher, connect } from '../../../client/src/index.js';
import { FakeSocket, fakeToken } from './fakes.js';

describe('ack batching', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.reset();
  });
  afterEach(() => vi.useRealTimers());

  it('sends one batch after the delay, or at once when the batch is full', async () => {
    const sent: string[][] = [];
    const acks = new AckBatcher({ delayMs: 100, maxBatch: 3 });
    acks.attach((ids) => sent.push(ids));
    acks.add('a');
    acks.add('b');
    await vi.advanceTimersByTimeAsync(99);
    expect(sent).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(sent).toEqual([['a', 'b']]);
    acks.add('c');
    acks.add('d');
    acks.add('e');
    expect(sent).toEqual([
      ['a', 'b'],
      ['c', 'd', 'e'],
    ]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(sent).toHaveLength(2);
  });

  it('keeps ids while detached and sends them on the next connection', async () => {
    const sent: string[][] = [];
    const acks = new AckBatcher({ delayMs: 50 });
    acks.add('x');
    await vi.advanceTimersByTimeAsync(500);
    expect(acks.waiting).toBe(1);
    acks.attach((ids) => sent.push(ids));
    await vi.advanceTimersByTimeAsync(50);
    expect(sent).toEqual([['x']]);
  });

  it('the client acks received user messages by id in one frame per batch, duplicates included', async () => {
    const client = connect({
      url: 'http://push.test',
      app: 'a',
      token: fakeToken(),
      WebSocket: FakeSocket,
      storage: null,
      ackDelayMs: 100,
      ackBatchSize: 50,
    });
    await vi.advanceTimersByTimeAsync(0);
    const s = FakeSocket.last;
    s.open();
    s.messages(1, 2);
    s.messages(3);
    s.frame({ op: 'message', topic: '$all', offset: 1, id: 'b1', type: 't', timestamp: 1, data: null });
    expect(s.sentOps('ack')).toEqual([]);
    await vi.advanceTimersByTimeAsync(100);
    expect(s.sentOps('ack')).toEqual([{ op: 'ack', ids: ['m1', 'm2', 'm3'] }]);
    // A resend of an acked message is acked again (the server stops resending only on an ack).
    s.messages(2);
    await vi.advanceTimersByTimeAsync(100);
    expect(s.sentOps('ack')).toEqual([
      { op: 'ack', ids: ['m1', 'm2', 'm3'] },
      { op: 'ack', ids: ['m2'] },
    ]);
    client.close();
  });

  it('acks not yet sent when the connection drops go out on the next one', async () => {
    const client = connect({
      url: 'http://push.test',
      app: 'a',
      token: fakeToken(),
      WebSocket: FakeSocket,
      storage: null,
      ackDelayMs: 100,
      random: () => 0,
    });
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open();
    FakeSocket.last.messages(1, 2);
    FakeSocket.last.drop(1006);
    await vi.advanceTimersByTimeAsync(0);
    const next = FakeSocket.last;
    expect(FakeSocket.all).toHaveLength(2);
    next.open();
    await vi.advanceTimersByTimeAsync(100);
    expect(next.sentOps('ack')).toEqual([{ op: 'ack', ids: ['m1', 'm2'] }]);
    client.close();
  });
});
