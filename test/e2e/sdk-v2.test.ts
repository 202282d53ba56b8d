import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  type ConnectOptions,
  connect,
  type PushClient,
  type PushMessage,
  tcpTransport,
  type WebSocketConstructor,
} from '../../client/src/node.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { freePort } from '../helpers/tcp-client.js';
import { waitUntil } from '../helpers/wait.js';

/** The SDK on protocol v2: WebSocket (`protocol: 'v2'`) and TCP (`tcpTransport`), against a real server. */
let server: TestServer;
let tcpPort: number;
beforeAll(async () => {
  tcpPort = await freePort();
  server = await startServer({ PUSH_TCP_PORT: String(tcpPort) });
});
afterAll(() => server.stop());

function collect(client: PushClient) {
  const got: PushMessage[] = [];
  client.on('message', (m) => got.push(m));
  const until = (check: () => boolean, event: 'message' | 'connected' = 'message') =>
    new Promise<void>((resolve, reject) => {
      if (check()) return resolve();
      const timer = setTimeout(
        () => reject(new Error(`not reached; ${got.length} messages, ${client.state}`)),
        10_000,
      );
      const off = client.on(event, () => {
        if (!check()) return;
        clearTimeout(timer);
        off();
        resolve();
      });
    });
  return { got, until };
}

/** Subprotocols the SDK asked for, to prove it spoke v2. */
const offered: unknown[] = [];
class RecordingWebSocket extends WebSocket {
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols);
    offered.push(protocols);
  }
}

const options = (user: string, extra: Partial<ConnectOptions>): ConnectOptions => ({
  url: server.http,
  app: 'a',
  getToken: () => server.token(user),
  WebSocket: RecordingWebSocket as unknown as WebSocketConstructor,
  storage: null,
  ackDelayMs: 20,
  ...extra,
});

const statusOf = async (id: string) =>
  (await server.api('GET', `/v1/messages/${id}`)).body.recipients?.[0]?.status;

describe.each([
  ['WebSocket', (user: string) => options(user, { protocol: 'v2' })],
  ['TCP', (user: string) => options(user, { transports: ['tcp'], tcp: tcpTransport({ port: tcpPort }) })],
])('SDK on protocol v2 over %s', (name, opts) => {
  it('backlog and live messages once, in order, acked; reconnect resumes after the last seq', async () => {
    const user = `sdk-v2-${name}`;
    const big = { text: 'compressible '.repeat(200) };
    await server.push({ id: `${name}-0`, to: { users: [user] }, data: big });
    const client = connect(opts(user));
    const o = collect(client);
    try {
      await o.until(() => client.state === 'connected', 'connected');
      expect(client.transportName).toBe(name === 'TCP' ? 'tcp' : 'websocket');
      if (name === 'WebSocket') expect(offered.at(-1)).toBe('push.v2.bin');
      for (const i of [1, 2]) await server.push({ id: `${name}-${i}`, to: { users: [user] }, data: i });
      await o.until(() => o.got.length >= 3);
      expect(o.got.map((m) => [m.id, m.seq])).toEqual([
        [`${name}-0`, 1],
        [`${name}-1`, 2],
        [`${name}-2`, 3],
      ]);
      expect(o.got[0]!.data).toEqual(big);
      await waitUntil(async () => (await statusOf(`${name}-2`)) === 'acked');
      client.reconnect();
      await o.until(() => client.state === 'connected', 'connected');
      await server.push({ id: `${name}-3`, to: { users: [user] }, data: 3 });
      await o.until(() => o.got.length >= 4);
      expect(o.got.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    } finally {
      client.close();
    }
  });
});
