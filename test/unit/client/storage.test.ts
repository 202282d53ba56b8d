import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { connect, FileStorage, MemoryStorage, type PushStorage } from '../../../client/src/node.js';
import { decodeResumeState, encodeResumeState } from '../../../client/src/storage.js';
import { FakeSocket, fakeToken } from './fakes.js';

describe('storage of the last seq', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.reset();
  });
  afterEach(() => vi.useRealTimers());

  const start = (storage: PushStorage, token = fakeToken('u1'), device?: string) =>
    connect({
      url: 'http://push.test',
      app: 'a',
      token,
      storage,
      WebSocket: FakeSocket,
      ...(device ? { device } : {}),
    });

  it('a new client resumes with since = the last seq the previous one handed over, per user and device', async () => {
    const storage = new MemoryStorage();
    const first = start(storage);
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.last.since).toBeNull(); // nothing stored: the server's unacked backlog
    FakeSocket.last.open();
    FakeSocket.last.messages(1, 2, 3);
    first.close();
    expect(decodeResumeState(storage.get('message-push:a:u1'))).toEqual({ seq: 3, topics: {} });

    const second = start(storage);
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.last.since).toBe('3');
    second.close();

    const otherUser = start(storage, fakeToken('u2'));
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.last.since).toBeNull();
    otherUser.close();

    const otherDevice = start(storage, fakeToken('u1'), 'phone');
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.last.since).toBeNull();
    expect(FakeSocket.last.url.searchParams.get('device')).toBe('phone');
    otherDevice.close();
  });

  it('stores after each received frame, not only at close (a crash loses nothing handed over)', async () => {
    const storage = new MemoryStorage();
    const client = start(storage);
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open();
    FakeSocket.last.messages(1);
    expect(decodeResumeState(storage.get('message-push:a:u1')).seq).toBe(1);
    FakeSocket.last.messages(2, 3);
    expect(decodeResumeState(storage.get('message-push:a:u1')).seq).toBe(3);
    client.close();
  });

  it('async storage works; unreadable state counts as none', async () => {
    const map = new Map<string, string>([['message-push:a:u1', '{"seq":"x"']]);
    const storage: PushStorage = {
      get: async (k) => map.get(k),
      set: async (k, v) => {
        map.set(k, v);
      },
    };
    const client = start(storage);
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.last.since).toBeNull();
    FakeSocket.last.open();
    FakeSocket.last.messages(7);
    await vi.advanceTimersByTimeAsync(0);
    expect(JSON.parse(map.get('message-push:a:u1')!)).toEqual({ seq: 7, topics: {} });
    client.close();
  });

  it('resume state survives odd input', () => {
    expect(decodeResumeState(null)).toEqual({ seq: null, topics: {} });
    expect(decodeResumeState('{"seq":-1,"topics":{"a":2,"b":"x"}}')).toEqual({ seq: null, topics: { a: 2 } });
    expect(decodeResumeState(encodeResumeState({ seq: 5, topics: { t: 1 } }))).toEqual({
      seq: 5,
      topics: { t: 1 },
    });
  });
});

describe('FileStorage', () => {
  it('keeps keys in one JSON file, written atomically, readable by a new instance', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mp-sdk-'));
    try {
      const path = join(dir, 'nested', 'state.json');
      const a = new FileStorage(path);
      expect(a.get('k')).toBeNull();
      a.set('k', '{"seq":4}');
      a.set('other', 'x');
      expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ k: '{"seq":4}', other: 'x' });
      expect(new FileStorage(path).get('k')).toBe('{"seq":4}');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
