import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { startChild } from '../helpers/child-server.js';
import { TestClient } from '../helpers/client.js';
import { tempDir } from '../helpers/server.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('durability across process death', () => {
  it('every push answered 202 survives kill -9 and is delivered after restart, in seq order', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const first = await startChild(dir);
    const n = 200;
    const replies = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        first.push({ id: `k9-${i}`, to: { users: ['dora'] }, data: { i } }),
      ),
    );
    expect(replies.every((r) => r.status === 202)).toBe(true);
    first.child.kill('SIGKILL');
    expect(await first.exited()).toBe('SIGKILL');

    const second = await startChild(dir);
    try {
      const client = await TestClient.open(second.ws, { app: 'a', token: await second.token('dora') });
      const got = await client.messages(n);
      expect(got.map((m) => m.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      expect(new Set(got.map((m) => m.id))).toEqual(new Set(replies.map((r) => r.body.id)));
      await client.close();
    } finally {
      await second.stop();
    }
  });

  it('an idempotent retry after a crash is answered as a duplicate, not stored twice', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const first = await startChild(dir);
    const body = { id: 'retry-1', to: { users: ['eve'] }, data: { x: 1 } };
    expect((await first.push(body)).status).toBe(202);
    first.child.kill('SIGKILL');
    await first.exited();

    const second = await startChild(dir);
    try {
      const again = await second.push(body);
      expect(again.status).toBe(202);
      expect(again.body).toMatchObject({ id: 'retry-1', duplicate: true, recipients: 1 });
      const status = await second.api('GET', '/v1/messages/retry-1');
      expect(status.body.recipients).toHaveLength(1);
      expect(status.body.recipients[0]).toMatchObject({ user: 'eve', seq: 1, status: 'pending' });
    } finally {
      await second.stop();
    }
  });
});

describe('graceful shutdown', () => {
  it('SIGTERM closes every client with 1001, exits 0, and loses no accepted message', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const server = await startChild(dir);
    const users = ['g1', 'g2', 'g3'];
    const clients = await Promise.all(
      users.map(async (u) => TestClient.open(server.ws, { app: 'a', token: await server.token(u) })),
    );
    // Pushes to offline users too, so the restart has something to prove.
    const accepted = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        server.push({ to: { users: [users[i % 3]!, 'offline-g'] }, data: { i } }),
      ),
    );
    expect(accepted.every((r) => r.status === 202)).toBe(true);
    for (const c of clients) await c.messages(10);

    server.child.kill('SIGTERM');
    const codes = await Promise.all(clients.map((c) => c.closed()));
    expect(codes).toEqual([1001, 1001, 1001]);
    expect(await server.exited()).toBe(0);
    expect(server.stdout()).toContain('"stopped"');

    const again = await startChild(dir);
    try {
      const late = await TestClient.open(again.ws, { app: 'a', token: await again.token('offline-g') });
      const got = await late.messages(30);
      expect(got.map((m) => m.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      // Concurrent pushes take seqs in the order the server received them, which need not be
      // the order they were sent (on the uws engine each is forwarded on its own connection).
      expect(got.map((m) => m.data.i).sort((a: number, b: number) => a - b)).toEqual(
        Array.from({ length: 30 }, (_, i) => i),
      );
      // The online users' messages were delivered before shutdown and stay delivered (sent, not pending).
      const status = await again.api('GET', `/v1/messages/${accepted[0]!.body.id}`);
      const g1 = status.body.recipients.find((r: { user: string }) => r.user === 'g1');
      expect(g1.status).toBe('sent');
      await late.close();
    } finally {
      await again.stop();
    }
  });
});
