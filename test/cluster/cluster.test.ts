import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connect, type PushClient, type WebSocketConstructor } from '../../client/src/node.js';
import { signClientToken } from '../../src/auth/tokens.js';
import { type ChildServer, freePort, startChild } from '../helpers/child-server.js';
import { TestClient } from '../helpers/client.js';
import { type Haproxy, startHaproxy } from '../helpers/haproxy.js';
import { dropDatabase, queryDatabase, withDatabase } from '../helpers/mysql.js';
import { APPS, harness, type TestServer, tempDir } from '../helpers/server.js';
import { describeWithServices } from '../helpers/services.js';
import { waitUntil } from '../helpers/wait.js';

/**
 * Three nodes on one MariaDB and one bus, behind haproxy with the shipped configuration:
 * the "must show" for scale-out, once per bus driver. Clients that must sit on a
 * given node connect to it directly; the failover test goes through haproxy only.
 */

const HEARTBEAT_MS = 2000;
const FAILOVER_USERS = 500;
const FAILOVER_MESSAGES = 2000;

for (const bus of (process.env.CLUSTER_BUS ? [process.env.CLUSTER_BUS] : ['redis', 'nats']) as (
  | 'redis'
  | 'nats'
)[]) {
  await describeWithServices(
    ['mysql', bus],
    `cluster of three nodes behind haproxy, bus ${bus}`,
    ([mysqlBase, busUrl]) => {
      const db = withDatabase(mysqlBase!, `mp_cluster_${bus}_${randomBytes(4).toString('hex')}`);
      const dirs = [tempDir(), tempDir(), tempDir()];
      const nodes: ChildServer[] = [];
      let lb: Haproxy;
      let front: TestServer; // the HTTP API through haproxy
      const sockets: TestClient[] = [];

      const env = (i: number) => ({
        PUSH_DB_URL: db,
        PUSH_BUS_URL: busUrl!,
        PUSH_NODE_ID: `node-${i}`,
        PUSH_HEARTBEAT_MS: String(HEARTBEAT_MS),
        PUSH_MAX_CONNECTIONS_PER_USER: '3',
        PUSH_TRUSTED_PROXIES: '127.0.0.1/32', // as deploy/haproxy.cfg says
      });
      const startNode = async (i: number, port?: number) => {
        nodes[i] = await startChild(dirs[i]!, { ...env(i), ...(port ? { PUSH_PORT: String(port) } : {}) });
      };
      const open = async (node: number, user: string, extra: { topics?: string[] } = {}) => {
        const token = await signClientToken({ secret: APPS.a, userId: user, ttlSeconds: 600, ...extra });
        const c = await TestClient.open(nodes[node]!.ws, { app: 'a', token });
        sockets.push(c);
        return c;
      };
      const onlineOn = async (user: string) => {
        const r = await front.api('GET', `/v1/users/${user}/presence`);
        return (r.body.connections as { node: string }[]).map((c) => c.node).sort();
      };

      beforeAll(async () => {
        await startNode(0); // creates the schema; the others then start side by side
        await Promise.all([startNode(1), startNode(2)]);
        lb = await startHaproxy(
          await freePort(),
          nodes.map((n) => n.port),
        );
        front = harness(null, lb.port, '', async () => {});
      }, 90_000);

      afterAll(async () => {
        for (const c of sockets) c.ws.terminate();
        await lb?.stop();
        await Promise.all(nodes.map((n) => n?.stop()));
        await dropDatabase(db);
        for (const d of dirs) rmSync(d, { recursive: true, force: true });
      }, 60_000);

      it('users on different nodes get pushes made through any node, in order; topics and $all reach every node', async () => {
        const users = ['x0', 'x1', 'x2'];
        const clients = await Promise.all(users.map((u, i) => open(i, u, { topics: ['room:*'] })));
        for (const c of clients) await c.request({ op: 'subscribe', topic: 'room:1' });

        const expected: string[] = [];
        for (let round = 0; round < 4; round++) {
          for (const [n, node] of nodes.entries()) {
            const id = `x-${round}-${n}`;
            expect((await node.push({ id, to: { users }, data: { round, n } })).status).toBe(202);
            expected.push(id);
          }
        }
        for (const c of clients) {
          const got = await c.messages(expected.length);
          expect(got.map((m) => m.id)).toEqual(expected);
          expect(got.map((m) => m.seq)).toEqual(expected.map((_, i) => i + 1));
        }

        const topic = await nodes[1]!.push({ id: 'x-topic', to: { topic: 'room:1' }, data: 't' });
        expect(topic.status).toBe(202);
        const all = await nodes[2]!.push({ id: 'x-all', to: { all: true }, data: 'a' });
        expect(all.status).toBe(202);
        for (const c of clients) {
          expect(await c.next((f) => f.op === 'message' && f.id === 'x-topic')).toMatchObject({
            topic: 'room:1',
            offset: 1,
            data: 't',
          });
          expect(await c.next((f) => f.op === 'message' && f.id === 'x-all')).toMatchObject({
            topic: '$all',
            data: 'a',
          });
        }
      });

      it('presence and kicks answer for the whole cluster; the per-user limit holds across nodes', async () => {
        const a = await open(0, 'p-user');
        const b = await open(2, 'p-user');
        // Through haproxy, whichever node answers sees both connections.
        await waitUntil(async () => (await onlineOn('p-user')).join() === 'node-0,node-2');
        const bulk = await nodes[1]!.api('GET', '/v1/presence?users=p-user,p-nobody');
        expect(bulk.body.users['p-user'].connections).toHaveLength(2);
        expect(bulk.body.users['p-nobody']).toEqual({ online: false, connections: [] });

        await open(1, 'p-user'); // the third is allowed (limit 3) …
        await waitUntil(async () => (await onlineOn('p-user')).length === 3);
        const token = await signClientToken({ secret: APPS.a, userId: 'p-user', ttlSeconds: 600 });
        // … the fourth is refused wherever it lands.
        await expect(TestClient.connect(`${nodes[2]!.ws}?app=a&token=${token}`)).rejects.toMatchObject({
          status: 429,
        });

        // A kick made through node 1 closes the sockets held by nodes 0 and 2 (and its own).
        const kicked = await nodes[1]!.api('DELETE', '/v1/users/p-user/connections');
        expect(kicked.body).toEqual({ closed: 3 });
        expect(await a.closed()).toBe(4003);
        expect(await b.closed()).toBe(4003);
        await waitUntil(async () => (await onlineOn('p-user')).length === 0);
      });

      it(`failover: kill -9 of a node while ${FAILOVER_MESSAGES} messages flow to ${FAILOVER_USERS} users loses nothing`, async () => {
        const users = Array.from({ length: FAILOVER_USERS }, (_, i) => `f${i}`);
        const got = new Map<string, { id: string; seq: number }[]>(users.map((u) => [u, []]));
        const clients: PushClient[] = [];
        try {
          // Every client goes through haproxy and resumes on its own (the SDK: since=last seq,
          // dedupe by id), as an app would.
          await Promise.all(
            users.map(
              (u) =>
                new Promise<void>((resolve, reject) => {
                  const c = connect({
                    url: lb.http,
                    app: 'a',
                    getToken: () => signClientToken({ secret: APPS.a, userId: u, ttlSeconds: 600 }),
                    WebSocket: WebSocket as unknown as WebSocketConstructor,
                    storage: null,
                    transports: ['websocket'],
                    reconnect: { minDelayMs: 100, maxDelayMs: 1000 },
                    ackDelayMs: 50,
                  });
                  clients.push(c);
                  c.on('message', (m) => got.get(u)!.push({ id: m.id, seq: m.seq! }));
                  const off = c.on('connected', () => {
                    off();
                    resolve();
                  });
                  setTimeout(() => reject(new Error(`${u} did not connect`)), 20_000);
                }),
            ),
          );
          // A node records its connections in group commits after the welcome: wait until all
          // are in the table (one CI run read it while a node's batch was still uncommitted).
          let perNode: { node: string; n: number }[] = [];
          await waitUntil(async () => {
            perNode = await queryDatabase<{ node: string; n: number }>(
              db,
              `select node, count(*) n from connections where status = 'online' and user_id like 'f%' group by node`,
            );
            return perNode.reduce((sum, r) => sum + Number(r.n), 0) === FAILOVER_USERS;
          });
          expect(perNode.length).toBe(3); // leastconn spread them over every node
          const victim = perNode.sort((x, y) => y.n - x.n)[0]!.node;
          const victimIndex = Number(victim.split('-')[1]);

          // Pushes through haproxy; one that meets the dying node is retried with the same id
          // (idempotent), as a producer would.
          const expected = new Map<string, string[]>(users.map((u) => [u, []]));
          let next = 0;
          let killed = false;
          const producer = async () => {
            while (next < FAILOVER_MESSAGES) {
              const i = next++;
              const user = users[(i * 7919) % FAILOVER_USERS]!;
              const id = `fo-${i}`;
              if (i === FAILOVER_MESSAGES / 2 && !killed) {
                killed = true;
                nodes[victimIndex]!.child.kill('SIGKILL');
              }
              for (let attempt = 0; ; attempt++) {
                const r = await front.push({ id, to: { users: [user] }, data: { i } }).catch(() => null);
                if (r && (r.status === 202 || r.status === 200)) break;
                if (attempt > 50) throw new Error(`push ${id} kept failing: ${r?.status}`);
                await new Promise((res) => setTimeout(res, 100)); // back off, as a producer would
              }
              expected.get(user)!.push(id);
            }
          };
          await Promise.all(Array.from({ length: 16 }, producer));
          expect(killed).toBe(true);

          // Per user: after the SDK's dedupe, exactly the pushed ids, in push order, seqs increasing.
          await waitUntil(
            () => users.every((u) => got.get(u)!.length >= expected.get(u)!.length),
            30_000,
            100,
          ).catch(() => {});
          for (const u of users) {
            const seen = got.get(u)!;
            expect(
              seen.map((m) => m.id),
              u,
            ).toEqual(expected.get(u));
            for (let i = 1; i < seen.length; i++) expect(seen[i]!.seq).toBeGreaterThan(seen[i - 1]!.seq);
          }

          // The dead node's rows are marked offline by the survivors within the heartbeat window.
          await waitUntil(
            async () =>
              (
                await queryDatabase<{ n: number }>(
                  db,
                  `select count(*) n from connections where node = ? and status = 'online'`,
                  [victim],
                )
              )[0]!.n === 0,
            4 * HEARTBEAT_MS + 2000,
          );
          expect((await onlineOn('f0')).length).toBe(1);
        } finally {
          for (const c of clients) c.close();
        }
      }, 120_000);
    },
    { binaries: ['haproxy'] },
  );
}
