import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  connect,
  FileStorage,
  type PushClient,
  type PushMessage,
  type WebSocketConstructor,
} from '../../client/src/node.js';
import { type ChildServer, startChild } from '../helpers/child-server.js';
import { tempDir } from '../helpers/server.js';
import { waitUntil } from '../helpers/wait.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Resolves once `check` holds after some event of the client (never by sleeping). */
function when<T>(
  client: PushClient,
  event: 'message' | 'connected',
  check: () => T,
  timeoutMs = 20_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const done = check();
    if (done) return resolve(done);
    const timer = setTimeout(() => {
      off();
      reject(new Error(`${event}: condition not met within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = client.on(event, () => {
      const v = check();
      if (v) {
        clearTimeout(timer);
        off();
        resolve(v);
      }
    });
  });
}

/** A producer that retries a push (same id) until the server accepts it: the server may be down. */
async function pushUntilAccepted(server: () => ChildServer, body: { id: string }): Promise<void> {
  await waitUntil(
    async () => {
      try {
        return (await server().push(body)).status === 202;
      } catch {
        return false; // refused or cut: the server is down
      }
    },
    30_000,
    50,
  );
}

describe('SDK across a server crash (kill -9) and restart', () => {
  it('receives every message pushed before, during and after the outage exactly once, in order', async () => {
    const dir = tempDir();
    dirs.push(dir);
    let server = await startChild(dir);
    const port = server.port;
    const statePath = join(dir, 'sdk-state.json');
    const client = connect({
      url: server.http,
      app: 'a',
      getToken: () => server.token('sam'),
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      storage: new FileStorage(statePath),
      reconnect: { minDelayMs: 100, maxDelayMs: 1000 },
      ackDelayMs: 50,
    });
    const got: PushMessage[] = [];
    const connects: (number | null)[] = [];
    client.on('message', (m) => got.push(m));
    client.on('connected', (e) => connects.push(e.since));
    try {
      await when(client, 'connected', () => client.state === 'connected');
      const body = (id: string) => ({ id, to: { users: ['sam'] }, data: { id } });
      const before = Array.from({ length: 30 }, (_, i) => `before-${i}`);
      const during = Array.from({ length: 30 }, (_, i) => `during-${i}`);
      const after = Array.from({ length: 30 }, (_, i) => `after-${i}`);

      for (const id of before) expect((await server.push(body(id))).status).toBe(202);
      // The producer keeps going through the crash: its pushes are in flight when the server dies.
      const producing = (async () => {
        for (const id of during) await pushUntilAccepted(() => server, body(id));
      })();
      await when(client, 'message', () => got.length >= 40);
      server.child.kill('SIGKILL');
      expect(await server.exited()).toBe('SIGKILL');

      server = await startChild(dir, { PUSH_PORT: String(port) });
      await producing;
      await when(client, 'connected', () => connects.length >= 2 && client.state === 'connected');
      for (const id of after) expect((await server.push(body(id))).status).toBe(202);

      const expected = [...before, ...during, ...after];
      await when(client, 'message', () => got.length >= expected.length);
      expect(got.map((m) => m.id)).toEqual(expected);
      expect(got.map((m) => m.seq)).toEqual(expected.map((_, i) => i + 1));
      // The reconnect resumed from the last seq seen, not from the unacked backlog.
      expect(connects[0]).toBeNull();
      expect(connects[1]).toBeGreaterThanOrEqual(40);
      // Acks reached the restarted server (batched: a time-driven wait).
      await waitUntil(
        async () =>
          (await server.api('GET', '/v1/messages/after-29')).body.recipients?.[0]?.status === 'acked',
      );
      expect((await server.api('GET', '/v1/messages/before-0')).body.recipients[0].status).toBe('acked');
      client.close();
      expect(JSON.parse(JSON.parse(readFileSync(statePath, 'utf8'))['message-push:a:sam']).seq).toBe(90);
    } finally {
      client.close();
      await server.stop();
    }
  });
});
