import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  type ConnectOptions,
  connect,
  type PushClient,
  type PushClientError,
  type PushMessage,
  type WebSocketConstructor,
} from '../../client/src/node.js';
import { signClientToken } from '../../src/auth/tokens.js';
import { APPS, startServer, type TestServer } from '../helpers/server.js';
import { waitUntil } from '../helpers/wait.js';

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(() => server.stop());

/** Collects what a client hands over; `until` resolves on the event that makes `check` true. */
function observe(client: PushClient) {
  const got: PushMessage[] = [];
  const errors: PushClientError[] = [];
  client.on('message', (m) => got.push(m));
  client.on('error', (e) => errors.push(e));
  const until = (check: () => boolean, event: 'message' | 'connected' | 'state' = 'message') =>
    new Promise<void>((resolve, reject) => {
      if (check()) return resolve();
      const timer = setTimeout(
        () => reject(new Error(`not reached (${check}); got ${got.length} messages, state ${client.state}`)),
        10_000,
      );
      const off = client.on(event, () => {
        if (check()) {
          clearTimeout(timer);
          off();
          resolve();
        }
      });
    });
  return { got, errors, until };
}

const options = (user: string, extra: Partial<ConnectOptions> = {}): ConnectOptions => ({
  url: server.http,
  app: 'a',
  getToken: () => server.token(user),
  WebSocket: WebSocket as unknown as WebSocketConstructor,
  storage: null,
  ackDelayMs: 20,
  ...extra,
});

const statusOf = async (id: string) =>
  (await server.api('GET', `/v1/messages/${id}`)).body.recipients?.[0]?.status;

/** A WebSocket that cannot be opened (a proxy that drops upgrades). */
class BlockedWebSocket {
  constructor() {
    throw new Error('WebSocket blocked');
  }
}

describe('SDK fallbacks when the WebSocket cannot be opened', () => {
  it('falls back to SSE: backlog and live messages once, in order, acked over HTTP', async () => {
    await server.push({ id: 'sse-0', to: { users: ['fb-sse'] }, data: 0 });
    const client = connect(
      options('fb-sse', { WebSocket: BlockedWebSocket as unknown as WebSocketConstructor }),
    );
    const o = observe(client);
    try {
      await o.until(() => client.state === 'connected', 'connected');
      expect(client.transportName).toBe('sse');
      for (const i of [1, 2, 3]) await server.push({ id: `sse-${i}`, to: { users: ['fb-sse'] }, data: i });
      await o.until(() => o.got.length >= 4);
      expect(o.got.map((m) => [m.id, m.seq])).toEqual([
        ['sse-0', 1],
        ['sse-1', 2],
        ['sse-2', 3],
        ['sse-3', 4],
      ]);
      await waitUntil(async () => (await statusOf('sse-3')) === 'acked');
      expect(o.errors).toEqual([]);
    } finally {
      client.close();
    }
  });

  it('long-poll alone: backlog, then messages pushed between and during polls, acked', async () => {
    await server.push({ id: 'lp-0', to: { users: ['fb-lp'] }, data: 0 });
    const client = connect(options('fb-lp', { transports: ['long-poll'], pollTimeoutSeconds: 5 }));
    const o = observe(client);
    try {
      await o.until(() => o.got.length >= 1);
      expect(client.transportName).toBe('long-poll');
      for (const i of [1, 2, 3]) await server.push({ id: `lp-${i}`, to: { users: ['fb-lp'] }, data: i });
      await o.until(() => o.got.length >= 4);
      expect(o.got.map((m) => m.id)).toEqual(['lp-0', 'lp-1', 'lp-2', 'lp-3']);
      await waitUntil(async () => (await statusOf('lp-3')) === 'acked');
    } finally {
      client.close();
    }
  });
});

describe('SDK topics and kicks over a real server', () => {
  it('a kick (4003) stops the client until the app reconnects; topics resume from the last offset', async () => {
    const token = () =>
      signClientToken({ secret: APPS.a, userId: 'topic-user', ttlSeconds: 600, topics: ['room:*'] });
    const client = connect(options('topic-user', { getToken: token }));
    const o = observe(client);
    const room: number[] = [];
    // since 0: offsets pushed before the subscription is in place are replayed, so no race.
    client.subscribe('room:7', (m) => room.push(m.offset!), { since: 0 });
    try {
      for (const i of [1, 2]) await server.push({ to: { topic: 'room:7' }, data: i });
      await o.until(() => room.length >= 2);

      expect((await server.api('DELETE', '/v1/users/topic-user/connections')).body).toEqual({ closed: 1 });
      await o.until(() => client.state === 'closed', 'state');
      expect(o.errors.map((e) => [e.code, e.fatal])).toEqual([['kicked', true]]);
      for (const i of [3, 4]) await server.push({ to: { topic: 'room:7' }, data: i });

      client.reconnect();
      await o.until(() => room.length >= 4);
      await server.push({ to: { topic: 'room:7' }, data: 5 });
      await o.until(() => room.length >= 5);
      expect(room).toEqual([1, 2, 3, 4, 5]);
    } finally {
      client.close();
    }
  });
});
