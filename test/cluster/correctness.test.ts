import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { signClientToken } from '../../src/auth/tokens.js';
import { type ChildServer, startChild } from '../helpers/child-server.js';
import { TestClient } from '../helpers/client.js';
import { dropDatabase, withDatabase } from '../helpers/mysql.js';
import { APPS, tempDir } from '../helpers/server.js';
import { describeWithServices } from '../helpers/services.js';
import { waitUntil } from '../helpers/wait.js';

/**
 * Cluster correctness, three nodes on one MariaDB and one bus, once per bus driver: what a
 * node decides from "who is connected" must hold for the whole cluster, not for its own
 * sockets (ttl 0, topic and `$all` recipients, topic presence, the dashboard's figures, the
 * per-user limit), and resends are made by the node holding the session, never disarmed by
 * another. Clients connect to chosen nodes directly; pushes and reads go through others.
 */

// Long enough that a node starved of CPU on a shared machine is not swept as dead mid-test.
const HEARTBEAT_MS = 5000;
const RESEND_MS = 300;
const ADMIN = 'cluster-admin-token-0123456789';

for (const bus of (process.env.CLUSTER_BUS ? [process.env.CLUSTER_BUS] : ['redis', 'nats']) as (
  | 'redis'
  | 'nats'
)[]) {
  await describeWithServices(
    ['mysql', bus],
    `cluster correctness, three nodes, bus ${bus}`,
    ([mysqlBase, busUrl]) => {
      const db = withDatabase(mysqlBase!, `mp_correct_${bus}_${randomBytes(4).toString('hex')}`);
      const dirs = [tempDir(), tempDir(), tempDir()];
      const nodes: ChildServer[] = [];
      const sockets: TestClient[] = [];
      const env = (i: number) => ({
        PUSH_DB_URL: db,
        PUSH_BUS_URL: busUrl!,
        PUSH_NODE_ID: `node-${i}`,
        PUSH_HEARTBEAT_MS: String(HEARTBEAT_MS),
        PUSH_RESEND_MS: String(RESEND_MS),
        PUSH_MAX_RETRIES: '5',
        PUSH_MAX_CONNECTIONS_PER_USER: '2',
        PUSH_ADMIN_TOKEN: ADMIN,
      });
      const open = async (node: number, user: string, o: { app?: 'a' | 'b'; topics?: string[] } = {}) => {
        const app = o.app ?? 'a';
        const token = await signClientToken({ secret: APPS[app], userId: user, ttlSeconds: 600, ...o });
        const c = await TestClient.open(nodes[node]!.ws, { app, token });
        sockets.push(c);
        return c;
      };
      /** Connections of a user as node `via` sees them (the whole cluster). */
      const nodesOf = async (via: number, user: string) => {
        const r = await nodes[via]!.api('GET', `/v1/users/${encodeURIComponent(user)}/presence`);
        return (r.body.connections as { node: string }[]).map((c) => c.node).sort();
      };
      const topicPresence = async (via: number, topic: string, app: 'a' | 'b' = 'a') =>
        (await nodes[via]!.api('GET', `/v1/topics/${encodeURIComponent(topic)}/presence`, undefined, app))
          .body as {
          users: string[];
          connections: number;
        };

      beforeAll(async () => {
        nodes[0] = await startChild(dirs[0]!, env(0)); // creates the schema
        [nodes[1], nodes[2]] = await Promise.all([
          startChild(dirs[1]!, env(1)),
          startChild(dirs[2]!, env(2)),
        ]);
      }, 90_000);

      afterAll(async () => {
        for (const c of sockets) c.ws.terminate();
        await Promise.all(nodes.map((n) => n?.stop()));
        await dropDatabase(db);
        for (const d of dirs) rmSync(d, { recursive: true, force: true });
      }, 60_000);

      it('ttl 0 through node B reaches a user connected only to node A; a user online nowhere is expired', async () => {
        const c = await open(0, 'z-on');
        await waitUntil(async () => (await nodesOf(1, 'z-on')).join() === 'node-0');
        const r = await nodes[1]!.push({
          id: 'z-live',
          to: { users: ['z-on', 'z-off'] },
          ttl: 0,
          data: 'now',
        });
        expect(r.status).toBe(202);
        expect((await c.messages(1))[0]).toMatchObject({ id: 'z-live', data: 'now' });
        const st = await nodes[2]!.api('GET', '/v1/messages/z-live');
        const byUser = Object.fromEntries(
          (st.body.recipients as { user: string; status: string }[]).map((x) => [x.user, x.status]),
        );
        expect(byUser['z-off']).toBe('expired');
        expect(['pending', 'sent']).toContain(byUser['z-on']);
        await waitUntil(
          async () =>
            (await nodes[2]!.api('GET', '/v1/messages/z-live')).body.recipients.find(
              (x: { user: string }) => x.user === 'z-on',
            ).status === 'sent',
        );
      });

      it('an unacked message is resent by the node holding the session, and no other node disarms it', async () => {
        const c = await open(2, 'r-user');
        await waitUntil(async () => (await nodesOf(0, 'r-user')).join() === 'node-2');
        const r = await nodes[0]!.push({ id: 'r-msg', to: { users: ['r-user'] }, data: 'again' });
        expect(r.status).toBe(202);
        const first = await c.next((f) => f.op === 'message' && f.id === 'r-msg');
        // Resends (300 ms, then 900 ms later) arrive over the socket node 2 holds; the other
        // two nodes' schedulers look at the same row every tick and must leave it alone.
        const again = await c.next((f) => f.op === 'message' && f.id === 'r-msg', 5000);
        expect(again.seq).toBe(first.seq);
        let last: unknown;
        const status = await waitUntil(async () => {
          const rec = (await nodes[1]!.api('GET', '/v1/messages/r-msg')).body.recipients[0];
          last = rec;
          return rec.retries >= 2 ? rec : null;
        }, 10_000).catch(() => last);
        expect(status).toMatchObject({ user: 'r-user', status: 'sent', retries: expect.any(Number) });
        expect((status as { retries: number }).retries).toBeGreaterThanOrEqual(2);
        c.send({ op: 'ack', seq: first.seq, ref: 'ok' });
        await c.next((f) => f.ref === 'ok');
        await waitUntil(
          async () =>
            (await nodes[1]!.api('GET', '/v1/messages/r-msg')).body.recipients[0].status === 'acked',
        );
      });

      it('topic recipients, topic presence and $all recipients count every node', async () => {
        const topic = `room:${randomBytes(3).toString('hex')}`;
        const c = await open(0, 't-user', { topics: ['room:*'] });
        await c.request({ op: 'subscribe', topic });
        await waitUntil(async () => (await topicPresence(1, topic)).connections === 1);
        expect(await topicPresence(2, topic)).toMatchObject({ users: ['t-user'], connections: 1 });

        const r = await nodes[1]!.push({ to: { topic }, data: 'hi' });
        expect(r.body).toMatchObject({ recipients: 1 });
        expect((await c.messages(1))[0]).toMatchObject({ topic, id: r.body.id });

        // App b: one connection on node 0, one on node 2; a push through node 1 counts both.
        const b0 = await open(0, 'b-user0', { app: 'b' });
        const b2 = await open(2, 'b-user2', { app: 'b' });
        await waitUntil(async () => (await topicPresence(1, '$all', 'b')).connections === 2);
        const all = await nodes[1]!.push({ to: { all: true }, data: 'everyone' }, 'b');
        expect(all.body).toMatchObject({ recipients: 2 });
        for (const x of [b0, b2]) expect((await x.messages(1))[0]).toMatchObject({ id: all.body.id });

        // One opts out of $all: every node stops counting it.
        await b2.request({ op: 'unsubscribe', topic: '$all' });
        await waitUntil(async () => (await topicPresence(1, '$all', 'b')).connections === 1);
        expect((await topicPresence(0, '$all', 'b')).users).toEqual(['b-user0']);
        const fewer = await nodes[1]!.push({ to: { all: true }, data: 'fewer' }, 'b');
        expect(fewer.body).toMatchObject({ recipients: 1 });

        // Unsubscribing and closing count too.
        await c.request({ op: 'unsubscribe', topic });
        await waitUntil(async () => (await topicPresence(2, topic)).connections === 0);
        await b0.close();
        await waitUntil(async () => (await topicPresence(2, '$all', 'b')).connections === 0);
      });

      it('the per-user connection limit holds across nodes', async () => {
        await open(0, 'l-user');
        await open(1, 'l-user');
        await waitUntil(async () => (await nodesOf(2, 'l-user')).length === 2);
        const token = await signClientToken({ secret: APPS.a, userId: 'l-user', ttlSeconds: 600 });
        await expect(TestClient.connect(`${nodes[2]!.ws}?app=a&token=${token}`)).rejects.toMatchObject({
          status: 429,
        });
      });

      it("the dashboard's figures on any node are the whole cluster's", async () => {
        const stats = async (via: number) => {
          const res = await fetch(`${nodes[via]!.http}/v1/admin/stats`, {
            headers: { authorization: `Bearer ${ADMIN}` },
          });
          return (await res.json()) as {
            nodes: number;
            totals: { in: number };
            connections: { total: number };
          };
        };
        const c = await open(1, 's-user');
        const open0 = sockets.filter((s) => s.ws.readyState === s.ws.OPEN).length;
        await nodes[2]!.push({ to: { users: ['s-user'] }, data: 's' });
        await c.messages(1);
        // Figures travel once a second: wait until node 0 sees all three nodes, every open socket
        // and the six pushes accepted so far (only one of them by node 0 itself).
        const seen = await waitUntil(async () => {
          const s = await stats(0);
          return s.nodes === 3 && s.connections.total === open0 && s.totals.in === 6 ? s : null;
        }, 10_000);
        expect(seen).toMatchObject({ nodes: 3, totals: { in: 6 } });
      });
    },
  );
}
