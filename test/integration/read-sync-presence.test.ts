import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connect as connectSdk, type ReadEvent, type TopicPresenceEvent } from '../../client/src/node.js';
import { signClientToken } from '../../src/auth/tokens.js';
import { TestClient } from '../helpers/client.js';
import { APPS, startServer, type TestServer } from '../helpers/server.js';

const DEBOUNCE_MS = 300;

/** Read state across a user's devices, and topic join/leave events, on one node. */
describe('read sync and topic presence events', () => {
  let t: TestServer;
  const open: TestClient[] = [];

  beforeAll(async () => {
    t = await startServer({ PUSH_RESEND_MS: '60s', PUSH_PRESENCE_DEBOUNCE_MS: String(DEBOUNCE_MS) });
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
  });
  afterAll(() => t.stop());

  async function connect(user: string, device: string, topics?: string[]) {
    const token = await signClientToken({
      secret: APPS.a,
      userId: user,
      ttlSeconds: 600,
      ...(topics ? { topics } : {}),
    });
    const c = await TestClient.open(t.ws, { app: 'a', token, device });
    open.push(c);
    return c;
  }

  it('a read frame on one device reaches the user’s other devices as {"op":"read","seq"}; unread counts unchanged by it', async () => {
    const phone = await connect('rs1', 'phone');
    const laptop = await connect('rs1', 'laptop');
    const other = await connect('rs1-other', 'x');
    for (let i = 0; i < 3; i++) expect((await t.push({ to: { users: ['rs1'] }, data: i })).status).toBe(202);
    await phone.messages(3);
    await laptop.messages(3);

    expect(await phone.request({ op: 'read', seq: 2 })).toMatchObject({ op: 'ok' });
    expect(await laptop.next((f) => f.op === 'read')).toEqual({ op: 'read', seq: 2 });
    expect((await t.api('GET', '/v1/users/rs1/unread')).body).toEqual({ count: 1, last_read_seq: 2 });

    // The server API and the client HTTP API announce to every device; a cursor never goes back.
    expect((await t.api('POST', '/v1/users/rs1/read', { seq: 3 })).body).toEqual({
      count: 0,
      last_read_seq: 3,
    });
    expect(await phone.next((f) => f.op === 'read')).toEqual({ op: 'read', seq: 3 });
    expect(await laptop.next((f) => f.op === 'read')).toEqual({ op: 'read', seq: 3 });
    await laptop.request({ op: 'read', seq: 1 });
    expect(await phone.next((f) => f.op === 'read')).toEqual({ op: 'read', seq: 3 });
    // Only the reader's own echo is left out, and other users hear nothing.
    expect(laptop.frames.filter((f) => f.op === 'read').map((f) => f.seq)).toEqual([2, 3]);
    await other.request({ op: 'ping' });
    expect(other.frames.some((f) => f.op === 'read')).toBe(false);
  });

  it('SDK: read() moves the cursor and the other device gets a read event', async () => {
    const token = await signClientToken({ secret: APPS.a, userId: 'rs2', ttlSeconds: 600 });
    const laptop = await connect('rs2', 'laptop');
    const sdk = connectSdk({
      url: t.http,
      app: 'a',
      token,
      device: 'phone',
      storage: null,
      WebSocket: WebSocket as never,
    });
    try {
      const reads: ReadEvent[] = [];
      sdk.on('read', (e) => reads.push(e));
      const got = new Promise<string>((r) => sdk.on('message', (m) => r(m.id)));
      if (sdk.state !== 'connected') await new Promise<void>((r) => sdk.on('connected', () => r()));
      const pushed = await t.push({ to: { users: ['rs2'] }, data: 'x' });
      expect(await got).toBe(pushed.body.id);
      expect(sdk.read()).toBe(true);
      expect(await laptop.next((f) => f.op === 'read')).toEqual({ op: 'read', seq: 1 });
      expect((await t.api('GET', '/v1/users/rs2/unread')).body).toEqual({ count: 0, last_read_seq: 1 });
      // And the other way round: the SDK hears the laptop's read.
      const heard = new Promise<ReadEvent>((r) => sdk.on('read', r));
      await t.api('POST', '/v1/users/rs2/read', { seq: 1 });
      expect(await heard).toEqual({ seq: 1 });
    } finally {
      sdk.close();
    }
  });

  it('presence events: subscribers that take part get join and (debounced) leave of each other; a quick rejoin sends neither', async () => {
    const watcher = await connect('p-watch', 'w', ['room:*']);
    expect(await watcher.request({ op: 'subscribe', topic: 'room:7', presence: true })).toMatchObject({
      op: 'subscribed',
    });
    // A plain subscriber is neither announced nor told anything.
    const quiet = await connect('p-quiet', 'q', ['room:*']);
    await quiet.request({ op: 'subscribe', topic: 'room:7' });

    const guest = await connect('p-guest', 'g', ['room:*']);
    await guest.request({ op: 'subscribe', topic: 'room:7', presence: true });
    expect(await watcher.next((f) => f.op === 'join')).toEqual({
      op: 'join',
      topic: 'room:7',
      user: 'p-guest',
      device: 'g',
    });
    const left = Date.now();
    await guest.request({ op: 'unsubscribe', topic: 'room:7' });
    expect(await watcher.next((f) => f.op === 'leave')).toEqual({
      op: 'leave',
      topic: 'room:7',
      user: 'p-guest',
      device: 'g',
    });
    expect(Date.now() - left).toBeGreaterThanOrEqual(DEBOUNCE_MS - 20);

    // A reconnect storm: the guest drops and comes back inside the window, five times.
    await guest.request({ op: 'subscribe', topic: 'room:7', presence: true });
    await watcher.next((f) => f.op === 'join' && f.user === 'p-guest');
    let current = guest;
    for (let i = 0; i < 5; i++) {
      await current.close();
      current = await connect('p-guest', 'g', ['room:*']);
      await current.request({ op: 'subscribe', topic: 'room:7', presence: true });
    }
    // One more, later, event proves the storm produced nothing in between.
    const marker = await connect('p-marker', 'm', ['room:*']);
    await marker.request({ op: 'subscribe', topic: 'room:7', presence: true });
    expect(await current.next((f) => f.op === 'join')).toMatchObject({ user: 'p-marker' });
    // A leave held from the storm would fire before the marker's own (held just as long, later).
    await marker.request({ op: 'unsubscribe', topic: 'room:7' });
    const next = await watcher.next((f) => f.op === 'join' || f.op === 'leave');
    expect(next).toMatchObject({ op: 'join', user: 'p-marker' });
    expect(await watcher.next((f) => f.op === 'join' || f.op === 'leave')).toMatchObject({
      op: 'leave',
      user: 'p-marker',
    });
    expect(quiet.frames.some((f) => f.op === 'join' || f.op === 'leave')).toBe(false);
  });

  it('presence on $all is refused; presence must be a boolean', async () => {
    const c = await connect('p-all', 'd', ['room:*']);
    expect(await c.request({ op: 'subscribe', topic: '$all', presence: true })).toMatchObject({
      op: 'error',
      code: 'forbidden',
    });
    expect(await c.request({ op: 'subscribe', topic: 'room:1', presence: 'yes' })).toMatchObject({
      op: 'error',
      code: 'bad_request',
    });
    // Without a grant for the topic, no subscription and so no events.
    expect(await c.request({ op: 'subscribe', topic: 'secret', presence: true })).toMatchObject({
      op: 'error',
      code: 'forbidden',
    });
  });

  it('SDK: subscribe with presence emits presence events', async () => {
    const token = await signClientToken({
      secret: APPS.a,
      userId: 'p-sdk',
      ttlSeconds: 600,
      topics: ['lobby'],
    });
    const sdk = connectSdk({ url: t.http, app: 'a', token, storage: null, WebSocket: WebSocket as never });
    try {
      const events: TopicPresenceEvent[] = [];
      const first = new Promise<void>((r) =>
        sdk.on('presence', (e) => {
          events.push(e);
          r();
        }),
      );
      // The SDK's subscription is in place once the topic's replay (since 0) reaches it.
      expect((await t.push({ to: { topic: 'lobby' }, data: 'hello' })).status).toBe(202);
      const live = new Promise<void>((r) => sdk.on('message', () => r()));
      sdk.subscribe('lobby', () => {}, { presence: true, since: 0 });
      await live;
      const peer = await connect('p-peer', 'pd', ['lobby']);
      await peer.request({ op: 'subscribe', topic: 'lobby', presence: true });
      await first;
      expect(events[0]).toEqual({ op: 'join', topic: 'lobby', user: 'p-peer', device: 'pd' });
    } finally {
      sdk.close();
    }
  });
});
