import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { signClientToken } from '../../src/auth/tokens.js';
import { TestClient } from '../helpers/client.js';
import { dropDatabase, withDatabase } from '../helpers/mysql.js';
import { APPS, startServer, type TestServer } from '../helpers/server.js';
import { describeWithServices } from '../helpers/services.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

/**
 * Message lifecycle across two nodes sharing MariaDB and a Redis bus (both in this process,
 * each a whole server): recall, read sync and topic join/leave reach sockets held by the
 * other node, and each hand-off is POSTed by exactly one node.
 */
await describeWithServices(['mysql', 'redis'], 'message lifecycle on two nodes', ([mysqlBase, redisUrl]) => {
  const suffix = randomBytes(4).toString('hex');
  const db = withDatabase(mysqlBase!, `mp_lifecycle_${suffix}`);
  const nodes: TestServer[] = [];
  const sockets: TestClient[] = [];
  let rx: WebhookReceiver;
  // Other suites share the Redis bus channel: users here carry this run's suffix.
  const u = (name: string) => `${name}-${suffix}`;

  beforeAll(async () => {
    rx = await WebhookReceiver.start();
    const env = (i: number) => ({
      PUSH_DB_URL: db,
      PUSH_BUS_URL: redisUrl!,
      PUSH_NODE_ID: `lc-${suffix}-${i}`,
      PUSH_RESEND_MS: '60s',
      PUSH_PRESENCE_DEBOUNCE_MS: '200',
      PUSH_WEBHOOK_ALLOW_PRIVATE: 'true',
      PUSH_WEBHOOK_POLL_MS: '20',
    });
    nodes.push(await startServer(env(0)));
    nodes.push(await startServer(env(1)));
  }, 60_000);

  afterAll(async () => {
    for (const c of sockets) c.ws.terminate();
    await Promise.all(nodes.map((n) => n.stop()));
    await rx?.stop();
    await dropDatabase(db);
  }, 60_000);

  const open = async (node: number, user: string, device: string, topics?: string[]) => {
    const token = await signClientToken({
      secret: APPS.a,
      userId: user,
      ttlSeconds: 600,
      ...(topics ? { topics } : {}),
    });
    const c = await TestClient.open(nodes[node]!.ws, { app: 'a', token, device });
    sockets.push(c);
    return c;
  };

  it('recall through one node reaches devices on both; statuses, topic subscribers too', async () => {
    const user = u('rc');
    const a = await open(0, user, 'a');
    const b = await open(1, user, 'b');
    const acker = await open(1, u('rc-acker'), 'x');
    const pushed = await nodes[0]!.push({ to: { users: [user, u('rc-acker'), u('rc-offline')] }, data: 1 });
    const id = pushed.body.id as string;
    const [m] = await a.messages(1);
    await b.messages(1);
    const [am] = await acker.messages(1);
    await acker.request({ op: 'ack', seq: am!.seq });

    expect((await nodes[1]!.api('DELETE', `/v1/messages/${id}`)).body).toEqual({ id, revoked: 2 });
    expect((await nodes[0]!.api('DELETE', `/v1/messages/${id}`)).body).toEqual({ id, revoked: 0 });
    for (const c of [a, b])
      expect(await c.next((f) => f.op === 'revoke')).toEqual({ op: 'revoke', id, seq: m!.seq });
    const status = await nodes[0]!.api('GET', `/v1/messages/${id}`);
    expect(
      Object.fromEntries(
        status.body.recipients.map((r: { user: string; status: string }) => [r.user, r.status]),
      ),
    ).toEqual({
      [user]: 'revoked',
      [u('rc-acker')]: 'acked',
      [u('rc-offline')]: 'revoked',
    });

    const topic = `room-${suffix}`;
    const s0 = await open(0, u('rt0'), 'd', [topic]);
    const s1 = await open(1, u('rt1'), 'd', [topic]);
    for (const s of [s0, s1]) await s.request({ op: 'subscribe', topic });
    const tp = await nodes[1]!.push({ to: { topic }, data: 't' });
    for (const s of [s0, s1]) await s.next((f) => f.op === 'message' && f.id === tp.body.id);
    expect((await nodes[0]!.api('DELETE', `/v1/messages/${tp.body.id}`)).status).toBe(200);
    for (const s of [s0, s1]) {
      expect(await s.next((f) => f.op === 'revoke')).toEqual({
        op: 'revoke',
        id: tp.body.id,
        topic,
        offset: 1,
      });
    }
  });

  it('read sync: a read on node 0 reaches the device on node 1', async () => {
    const user = u('rd');
    const a = await open(0, user, 'phone');
    const b = await open(1, user, 'laptop');
    await nodes[1]!.push({ to: { users: [user] }, data: 1 });
    await nodes[1]!.push({ to: { users: [user] }, data: 2 });
    await a.messages(2);
    await b.messages(2);
    await a.request({ op: 'read', seq: 2 });
    expect(await b.next((f) => f.op === 'read')).toEqual({ op: 'read', seq: 2 });
    expect((await nodes[1]!.api('GET', `/v1/users/${user}/unread`)).body).toEqual({
      count: 0,
      last_read_seq: 2,
    });
  });

  it('topic join/leave reach a subscriber on the other node; a move between nodes within the window is silent', async () => {
    const topic = `lobby-${suffix}`;
    const watcher = await open(0, u('pw'), 'w', [topic]);
    await watcher.request({ op: 'subscribe', topic, presence: true });
    let guest = await open(1, u('pg'), 'g', [topic]);
    await guest.request({ op: 'subscribe', topic, presence: true });
    expect(await watcher.next((f) => f.op === 'join')).toEqual({
      op: 'join',
      topic,
      user: u('pg'),
      device: 'g',
    });
    // The guest moves to node 0 (a node restart, a load balancer): leave then join, cancelled.
    await guest.close();
    guest = await open(0, u('pg'), 'g', [topic]);
    await guest.request({ op: 'subscribe', topic, presence: true });
    await guest.close();
    expect(await watcher.next((f) => f.op === 'join' || f.op === 'leave')).toEqual({
      op: 'leave',
      topic,
      user: u('pg'),
      device: 'g',
    });
  });

  it('hand-offs: each is POSTed by exactly one node while both poll the schedule', async () => {
    const put = await nodes[0]!.api('PUT', '/v1/webhook', { url: rx.url, after_ms: 0 });
    expect(put.status).toBe(200);
    const users = Array.from({ length: 40 }, (_, i) => u(`wh${i}`));
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await nodes[i % 2]!.api('POST', '/v1/push/batch', {
        messages: users.map((user) => ({ to: { users: [user] }, data: { i } })),
      });
      ids.push(...r.body.results.map((x: { id: string }) => x.id));
    }
    await rx.until((r) => new Set(r.flatMap((h) => h.body.messages.map((m) => m.id))).size >= ids.length);
    const received = rx.ids();
    expect(received.length).toBe(ids.length); // no message twice
    expect(new Set(received)).toEqual(new Set(ids));
    expect(rx.received.length).toBeLessThanOrEqual(users.length * 3);
    // Every POST was made by one of the two nodes, none by both.
    const sent = await Promise.all(
      nodes.map(async (n) => {
        const text = await (await fetch(`${n.http}/metrics`)).text();
        return Number(/^push_webhook_sent_total (\d+)/m.exec(text)?.[1] ?? 0);
      }),
    );
    expect(sent[0]! + sent[1]!).toBe(rx.received.length);
  });
});
