import { rmSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { signClientToken } from '../../src/auth/tokens.js';
import { startChild } from '../helpers/child-server.js';
import { type Frame, TestClient } from '../helpers/client.js';
import { APPS, startServer, type TestServer, tempDir } from '../helpers/server.js';

/** A subscriber that also keeps every raw text frame, to count and compare what the server wrote. */
interface RoomClient {
  readonly c: TestClient;
  /** Raw frames carrying topic messages, parsed. */
  readonly raw: string[];
}

async function join(server: TestServer, user: string, topic: string, platform?: string): Promise<RoomClient> {
  const token = await signClientToken({
    secret: APPS.a,
    userId: user,
    ttlSeconds: 600,
    topics: [topic],
    ...(platform ? { platform } : {}),
  });
  const c = await TestClient.open(server.ws, { app: 'a', token });
  const raw: string[] = [];
  c.ws.on('message', (data) => {
    const text = data.toString();
    if (text.includes('"op":"message"') && text.includes('"topic"')) raw.push(text);
  });
  const sub = await c.request({ op: 'subscribe', topic });
  expect(sub.op).not.toBe('error');
  return { c, raw };
}

const offsets = (frames: Frame[]) => frames.map((f) => f.offset);

async function batch(
  server: TestServer,
  topic: string,
  n: number,
  extra: (i: number) => object = () => ({}),
) {
  const res = await server.api('POST', '/v1/push/batch', {
    messages: Array.from({ length: n }, (_, i) => ({ to: { topic }, data: { i }, ...extra(i) })),
  });
  expect(res.status).toBe(200);
  return res.body.results as { id: string }[];
}

describe('live rooms', () => {
  let t: TestServer;
  const open: RoomClient[] = [];

  beforeAll(async () => {
    t = await startServer({ PUSH_RESEND_MS: '60s' });
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((r) => r.c.close()));
  });
  afterAll(() => t.stop());

  const settings = (topic: string, body: unknown) => t.api('PUT', `/v1/topics/${topic}/settings`, body);
  const joinRoom = async (user: string, topic: string, platform?: string) => {
    const r = await join(t, user, topic, platform);
    open.push(r);
    return r;
  };

  it('merges a window into one array frame, in offset order, the same bytes for every subscriber', async () => {
    expect(await settings('room-a', { merge_ms: 1000 })).toEqual({
      status: 200,
      body: { topic: 'room-a', merge_ms: 1000 },
    });
    const [x, y] = [await joinRoom('ra-x', 'room-a'), await joinRoom('ra-y', 'room-a')];
    const first = await batch(t, 'room-a', 20);
    const got = await Promise.all([x.c.messages(20), y.c.messages(20)]);
    for (const frames of got) {
      expect(offsets(frames)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(frames.map((f) => f.id)).toEqual(first.map((r) => r.id));
    }
    // One window, one frame: an array of all twenty, byte for byte the same on both sockets.
    expect(x.raw).toHaveLength(1);
    expect(x.raw).toEqual(y.raw);
    expect(JSON.parse(x.raw[0]!)).toHaveLength(20);

    // The next window is the next frame, even for a single message.
    await batch(t, 'room-a', 1);
    const [next] = await x.c.messages(1);
    expect(next!.offset).toBe(21);
    expect(x.raw).toHaveLength(2);
    expect(JSON.parse(x.raw[1]!)).toEqual([expect.objectContaining({ offset: 21, topic: 'room-a' })]);
  });

  it('replay by offset is unchanged: a late subscriber reads the merged messages from the store', async () => {
    await settings('room-b', { merge_ms: 200 });
    const early = await joinRoom('rb-early', 'room-b');
    await batch(t, 'room-b', 10);
    await early.c.messages(10);
    const late = await joinRoom('rb-late', 'room-b');
    const replayed = await late.c.request({ op: 'subscribe', topic: 'room-b', since: 4 });
    expect(replayed.op).not.toBe('error');
    expect(offsets(await late.c.messages(6))).toEqual([5, 6, 7, 8, 9, 10]);
    // Live again after the replay: the next window joins without gap or repeat.
    await batch(t, 'room-b', 3);
    expect(offsets(await late.c.messages(3))).toEqual([11, 12, 13]);
    expect(offsets(await early.c.messages(3))).toEqual([11, 12, 13]);
  });

  it('a subscriber filtered out of some messages by platform gets the rest, in order', async () => {
    await settings('room-c', { merge_ms: 500 });
    const ios = await joinRoom('rc-ios', 'room-c', 'ios');
    const android = await joinRoom('rc-android', 'room-c', 'android');
    await batch(t, 'room-c', 4, (i) => (i === 1 ? { platforms: ['ios'] } : {}));
    expect(offsets(await ios.c.messages(4))).toEqual([1, 2, 3, 4]);
    expect(offsets(await android.c.messages(3))).toEqual([1, 3, 4]);
    expect(ios.raw).toHaveLength(1);
    expect(android.raw).toHaveLength(1);
  });

  it('merge_ms 0 turns merging off: one frame per message again', async () => {
    await settings('room-d', { merge_ms: 300 });
    const r = await joinRoom('rd', 'room-d');
    expect((await settings('room-d', { merge_ms: 0 })).body).toEqual({ topic: 'room-d', merge_ms: 0 });
    await t.push({ to: { topic: 'room-d' }, data: 1 });
    const [m] = await r.c.messages(1);
    expect(m!.offset).toBe(1);
    expect(JSON.parse(r.raw[0]!)).toMatchObject({ op: 'message', offset: 1 });
  });

  it('rejects bad settings with 400', async () => {
    for (const [topic, body] of [
      ['room-e', { merge_ms: 5001 }],
      ['room-e', { merge_ms: -1 }],
      ['room-e', { merge_ms: 1.5 }],
      ['room-e', { merge_ms: '100' }],
      ['room-e', {}],
      ['room-e', { merge_ms: 100, other: 1 }],
      ['bad topic', { merge_ms: 100 }],
    ] as const) {
      const res = await settings(topic, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe('bad_request');
    }
  });
});

describe('live room settings across a restart', () => {
  const dir = tempDir();
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('are stored: a restarted server merges the room without being told again', async () => {
    const first = await startChild(dir);
    try {
      expect((await first.api('PUT', '/v1/topics/kept/settings', { merge_ms: 2000 })).status).toBe(200);
    } finally {
      first.child.kill('SIGKILL');
      await first.exited();
    }
    const second = await startChild(dir);
    try {
      const r = await join(second, 'kept-user', 'kept');
      await batch(second, 'kept', 5);
      expect(offsets(await r.c.messages(5))).toEqual([1, 2, 3, 4, 5]);
      expect(r.raw).toHaveLength(1);
      await r.c.close();
    } finally {
      await second.stop();
    }
  });
});
