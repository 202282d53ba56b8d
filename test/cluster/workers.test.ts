import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterAll, expect, it } from 'vitest';
import { type ChildServer, startChild } from '../helpers/child-server.js';
import { TestClient } from '../helpers/client.js';
import { dropDatabase, withDatabase } from '../helpers/mysql.js';
import { tempDir } from '../helpers/server.js';
import { describeWithServices } from '../helpers/services.js';
import { waitUntil } from '../helpers/wait.js';

await describeWithServices(
  ['mysql', 'redis'],
  'start --workers: several nodes on one port',
  ([mysqlBase, redisUrl]) => {
    const db = withDatabase(mysqlBase!, `mp_workers_${randomBytes(4).toString('hex')}`);
    const dirs: string[] = [];
    let server: ChildServer | undefined;

    afterAll(async () => {
      await server?.stop();
      await dropDatabase(db);
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });

    it('refuses SQLite for more than one process, saying why', async () => {
      const dir = tempDir();
      dirs.push(dir);
      await expect(startChild(dir, { PUSH_WORKERS: '2' })).rejects.toThrow(
        /PUSH_WORKERS=2 needs a shared store: SQLite serves one process only/,
      );
    });

    it('two workers share the port and the bus: both hold clients, a push reaches both, SIGTERM drains both with 1001', async () => {
      const dir = tempDir();
      dirs.push(dir);
      server = await startChild(dir, {
        PUSH_WORKERS: '2',
        PUSH_DB_URL: db,
        PUSH_BUS_URL: redisUrl!,
        PUSH_NODE_ID: 'box',
      });
      const t = server;
      await waitUntil(() => (t.stdout().match(/"message-push listening"/g) ?? []).length === 2, 30_000);

      // node:cluster hands connections to the workers in turn: open until both hold one.
      const clients: TestClient[] = [];
      const nodes = async () =>
        new Set(
          ((await t.api('GET', '/v1/users/w-user/presence')).body.connections as { node: string }[]).map(
            (c) => c.node,
          ),
        );
      for (let i = 0; i < 6 && (await nodes()).size < 2; i++) {
        clients.push(
          await TestClient.open(t.ws, { app: 'a', token: await t.token('w-user'), device: `d${i}` }),
        );
        await waitUntil(
          async () =>
            (await t.api('GET', '/v1/users/w-user/presence')).body.connections.length === clients.length,
        );
      }
      expect([...(await nodes())].sort()).toEqual(['box-1', 'box-2']);

      const r = await t.push({ id: 'w-1', to: { users: ['w-user'] }, data: { hello: 'workers' } });
      expect(r.status).toBe(202);
      for (const c of clients) {
        expect((await c.messages(1))[0]).toMatchObject({ id: 'w-1', seq: 1, data: { hello: 'workers' } });
      }

      t.child.kill('SIGTERM');
      for (const c of clients) expect(await c.closed()).toBe(1001);
      expect(await t.exited()).toBe(0);
    }, 90_000);
  },
);
