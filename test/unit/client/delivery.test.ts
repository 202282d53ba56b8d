import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { connect, DedupeWindow, type PushMessage } from '../../../client/src/index.js';
import { FakeSocket, fakeToken } from './fakes.js';

describe('dedupe window', () => {
  it('remembers the last `capacity` ids and forgets the oldest first', () => {
    const w = new DedupeWindow(3);
    expect(['a', 'b', 'c'].map((id) => w.add(id))).toEqual([true, true, true]);
    expect(w.add('b')).toBe(false);
    w.add('d');
    expect(w.size).toBe(3);
    expect(w.has('a')).toBe(false);
    expect(['b', 'c', 'd'].every((id) => w.has(id))).toBe(true);
    expect(() => new DedupeWindow(0)).toThrow();
  });
});

describe('client delivery: once, in seq order', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.reset();
  });
  afterEach(() => vi.useRealTimers());

  const open = async (options: { dedupeWindow?: number } = {}) => {
    const client = connect({
      url: 'http://push.test',
      app: 'a',
      token: fakeToken(),
      WebSocket: FakeSocket,
      storage: null,
      random: () => 0,
      ...options,
    });
    const got: PushMessage[] = [];
    client.on('message', (m) => got.push(m));
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open();
    return { client, got, seqs: () => got.map((m) => m.seq ?? `${m.topic}@${m.offset}`) };
  };

  it('hands each message over once, whether repeated in a frame, across frames, or resent after a reconnect', async () => {
    const { client, seqs } = await open();
    FakeSocket.last.messages(1, 2, 2, 3);
    FakeSocket.last.messages(3, 4);
    FakeSocket.last.frame({ op: 'message', seq: 4, id: 'm4', type: 't', timestamp: 1, data: null });
    FakeSocket.last.drop(1006);
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.last.since).toBe('4');
    FakeSocket.last.open();
    FakeSocket.last.messages(3, 4, 5);
    expect(seqs()).toEqual([1, 2, 3, 4, 5]);
    client.close();
  });

  it('drops a resend whose id left the window by its seq (at or below the last one handed over)', async () => {
    const { client, seqs } = await open({ dedupeWindow: 2 });
    FakeSocket.last.messages(1, 2, 3, 4);
    FakeSocket.last.messages(1, 2);
    FakeSocket.last.messages(5);
    expect(seqs()).toEqual([1, 2, 3, 4, 5]);
    client.close();
  });

  it('never goes back in seq: a lower seq with a new id after a higher one is not handed over', async () => {
    const { client, seqs } = await open();
    FakeSocket.last.messages(10, { seq: 7, id: 'other' }, 11);
    expect(seqs()).toEqual([10, 11]);
    client.close();
  });

  it('topic messages: once per offset, in offset order, separately from user seqs', async () => {
    const { client, seqs } = await open();
    const room: number[] = [];
    client.subscribe('room:1', (m) => room.push(m.offset!));
    const topic = (offset: number, id = `t${offset}`) => ({
      op: 'message',
      topic: 'room:1',
      offset,
      id,
      type: 't',
      timestamp: 1,
      data: null,
    });
    FakeSocket.last.frame([topic(1), topic(2), topic(2), { ...topic(1), id: 'late' }]);
    FakeSocket.last.messages(1);
    FakeSocket.last.frame(topic(3));
    expect(seqs()).toEqual(['room:1@1', 'room:1@2', 1, 'room:1@3']);
    expect(room).toEqual([1, 2, 3]);
    client.close();
  });

  it('a handler that throws is reported and does not stop delivery to the others', async () => {
    const { client, seqs } = await open();
    const errors: string[] = [];
    client.on('error', (e) => errors.push(e.code));
    client.on('message', (m) => {
      if (m.seq === 2) throw new Error('app bug');
    });
    FakeSocket.last.messages(1, 2, 3);
    expect(seqs()).toEqual([1, 2, 3]);
    expect(errors).toEqual(['handler_failed']);
    client.close();
  });
});
