import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterAll, expect, it } from 'vitest';
import { signClientToken } from '../../src/auth/tokens.js';
import { SPLIT_MAX_RECIPIENTS } from '../../src/bus/interest.js';
import { type ChildServer, startChild } from '../helpers/child-server.js';
import { TestClient } from '../helpers/client.js';
import { dropDatabase, withDatabase } from '../helpers/mysql.js';
import { APPS, tempDir } from '../helpers/server.js';
import { describeWithServices } from '../helpers/services.js';
import { waitUntil } from '../helpers/wait.js';

/**
 * Bus traffic per node, counted (not timed): four nodes, the same fixed workload once with
 * PUSH_BUS_ROUTING=broadcast (every node receives everything, as before routing by interest)
 * and once with interest routing, per bus driver. Each node reports the frames it received
 * from the broker (`push_bus_frames_received_total`); with interest routing every node must
 * receive exactly the frames addressed to its users, topics and apps, and the table is
 * printed for docs/cluster.md.
 */

const NODES = 4;
const USERS_PER_NODE = 8;
const user = (node: number, k: number) => `t${node}-${k}`;
const users = Array.from({ length: NODES * USERS_PER_NODE }, (_, i) =>
  user(i % NODES, Math.floor(i / NODES)),
);
const nodeOf = (u: string) => Number(u.slice(1, u.indexOf('-')));

/** The workload: what each push targets, and through which node it is made. */
type Push = { via: number; to: { users: string[] } | { topic: string } | { all: true } };
const workload: Push[] = [];
for (let i = 0; i < 64; i++)
  workload.push({ via: i % NODES, to: { users: [users[(i * 5) % users.length]!] } });
for (let i = 0; i < 8; i++)
  workload.push({ via: i % NODES, to: { users: [user(0, i), user(1, i), user(2, i)] } });
// Longer than the split limit: one frame to every node.
workload.push({ via: 3, to: { users: users.slice(0, SPLIT_MAX_RECIPIENTS + 4) } });
for (let i = 0; i < 8; i++) workload.push({ via: (i + 1) % NODES, to: { topic: `room:${i % NODES}` } });
for (let i = 0; i < 4; i++) workload.push({ via: i, to: { topic: 'room:shared' } });
for (let i = 0; i < 4; i++) workload.push({ via: i, to: { all: true } });
/** Topic subscribers: room:n on node n (its user k=0), room:shared on nodes 0 and 1 (k=1). */
const subscriptionsOf = (node: number) => [`room:${node}`, ...(node < 2 ? ['room:shared'] : [])];

/** Frames node `n` must receive with interest routing: one per publish to an address it listens to. */
function expectedInterestFrames(n: number): number {
  let frames = 0;
  for (const p of workload) {
    if ('all' in p.to) frames++;
    else if ('topic' in p.to) frames += subscriptionsOf(n).includes(p.to.topic) ? 1 : 0;
    else if (p.to.users.length > SPLIT_MAX_RECIPIENTS) frames++;
    else frames += p.to.users.filter((u) => nodeOf(u) === n).length;
  }
  return frames;
}

const results: Record<string, number[]> = {};

for (const bus of (process.env.CLUSTER_BUS ? [process.env.CLUSTER_BUS] : ['redis', 'nats']) as (
  | 'redis'
  | 'nats'
)[]) {
  await describeWithServices(
    ['mysql', bus],
    `bus traffic per node, four nodes, bus ${bus}`,
    ([mysqlBase, busUrl]) => {
      for (const routing of ['broadcast', 'interest'] as const) {
        it(`${routing} routing: frames received per node for the fixed workload`, async () => {
          const db = withDatabase(
            mysqlBase!,
            `mp_traffic_${bus}_${routing}_${randomBytes(4).toString('hex')}`,
          );
          const dirs = Array.from({ length: NODES }, () => tempDir());
          const nodes: ChildServer[] = [];
          const clients: TestClient[] = [];
          try {
            const env = (i: number) => ({
              PUSH_DB_URL: db,
              PUSH_BUS_URL: busUrl!,
              PUSH_BUS_ROUTING: routing,
              PUSH_NODE_ID: `node-${i}`,
              PUSH_RESEND_MS: '60s',
            });
            nodes.push(await startChild(dirs[0]!, env(0)));
            nodes.push(...(await Promise.all([1, 2, 3].map((i) => startChild(dirs[i]!, env(i))))));
            const byUser = new Map<string, TestClient>();
            for (const u of users) {
              const token = await signClientToken({
                secret: APPS.a,
                userId: u,
                ttlSeconds: 600,
                topics: ['room:*'],
              });
              const c = await TestClient.open(nodes[nodeOf(u)]!.ws, { app: 'a', token });
              clients.push(c);
              byUser.set(u, c);
            }
            for (let n = 0; n < NODES; n++) {
              await byUser.get(user(n, 0))!.request({ op: 'subscribe', topic: `room:${n}` });
              if (n < 2) await byUser.get(user(n, 1))!.request({ op: 'subscribe', topic: 'room:shared' });
            }
            // Every node sees every subscription before the counting starts (recipients are exact).
            await waitUntil(async () => {
              const r = await nodes[3]!.api('GET', '/v1/topics/room%3Ashared/presence');
              return r.body.connections === 2;
            });
            const frames = async () =>
              Promise.all(
                nodes.map(async (n) => {
                  const text = await (await fetch(`${n.http}/metrics`)).text();
                  return Number(/^push_bus_frames_received_total (\d+)/m.exec(text)?.[1] ?? Number.NaN);
                }),
              );
            const before = await frames();

            const expected = new Map<TestClient, number>();
            for (const p of workload) {
              const r = await nodes[p.via]!.push({ to: p.to, data: 'x' });
              expect(r.status).toBe(202);
              const reached =
                'all' in p.to
                  ? users
                  : 'topic' in p.to
                    ? users.filter(
                        (u) =>
                          subscriptionsOf(nodeOf(u)).includes((p.to as { topic: string }).topic) &&
                          ((p.to as { topic: string }).topic === 'room:shared'
                            ? u === user(nodeOf(u), 1)
                            : u === user(nodeOf(u), 0)),
                      )
                    : p.to.users;
              for (const u of reached) expected.set(byUser.get(u)!, (expected.get(byUser.get(u)!) ?? 0) + 1);
            }
            // Every client got every message meant for it: the frames carrying them have arrived.
            for (const [c, n] of expected) await c.messages(n);
            const after = await frames();
            const received = after.map((a, i) => a - before[i]!);
            results[`${bus} ${routing}`] = received;
            if (routing === 'broadcast') {
              for (const r of received) expect(r).toBe(workload.length);
            } else {
              expect(received).toEqual(Array.from({ length: NODES }, (_, n) => expectedInterestFrames(n)));
            }
          } finally {
            for (const c of clients) c.ws.terminate();
            await Promise.all(nodes.map((n) => n.stop()));
            await dropDatabase(db);
            for (const d of dirs) rmSync(d, { recursive: true, force: true });
          }
        }, 120_000);
      }
    },
  );
}

afterAll(() => {
  const rows = Object.entries(results).map(
    ([k, v]) => `| ${k} | ${v.join(' | ')} | ${v.reduce((a, b) => a + b, 0)} |`,
  );
  if (rows.length > 0) {
    console.log(
      [
        `workload: ${workload.length} pushes (${users.length} users, ${NODES} nodes)`,
        `| bus, routing | ${Array.from({ length: NODES }, (_, i) => `node-${i}`).join(' | ')} | total |`,
        ...rows,
      ].join('\n'),
    );
  }
});
