import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { signClientToken } from '../../src/auth/tokens.js';
import { type ChildServer, startChild } from '../helpers/child-server.js';
import { TestClient } from '../helpers/client.js';
import { dropDatabase, withDatabase } from '../helpers/mysql.js';
import { APPS, tempDir } from '../helpers/server.js';
import { describeWithServices } from '../helpers/services.js';

/** Groups and live rooms on two nodes sharing MariaDB and a Redis bus. */
await describeWithServices(['mysql', 'redis'], 'groups and rooms on two nodes', ([mysqlBase, busUrl]) => {
  const suffix = randomBytes(4).toString('hex');
  const db = withDatabase(mysqlBase!, `mp_groups_${suffix}`);
  const dirs = [tempDir(), tempDir()];
  const nodes: ChildServer[] = [];
  const sockets: TestClient[] = [];
  // The bus channel is shared with other suites on this machine: ids of our own.
  const id = (name: string) => `${name}-${suffix}`;

  const open = async (node: number, user: string) => {
    const token = await signClientToken({ secret: APPS.a, userId: user, ttlSeconds: 600 });
    const c = await TestClient.open(nodes[node]!.ws, { app: 'a', token });
    sockets.push(c);
    return c;
  };

  beforeAll(async () => {
    const env = (i: number) => ({
      PUSH_DB_URL: db,
      PUSH_BUS_URL: busUrl!,
      PUSH_NODE_ID: `groups-node-${i}-${suffix}`,
      PUSH_GROUP_BATCH: '2',
    });
    nodes[0] = await startChild(dirs[0]!, env(0));
    nodes[1] = await startChild(dirs[1]!, env(1));
  }, 60_000);

  afterAll(async () => {
    for (const c of sockets) c.ws.terminate();
    await Promise.all(nodes.map((n) => n?.stop()));
    await dropDatabase(db);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }, 60_000);

  it('a group push through one node reaches members on both nodes once', async () => {
    const group = id('team');
    const users = ['a', 'b', 'c', 'd', 'e'].map(id);
    // Membership edited through node 1 is what node 0 expands.
    expect((await nodes[1]!.api('PUT', `/v1/groups/${group}/members`, { add: users })).body.count).toBe(5);
    const clients = await Promise.all(users.map((u, i) => open(i % 2, u)));
    const sent = await nodes[0]!.push({ to: { groups: [group, group] }, data: { x: 1 } });
    expect(sent.status).toBe(202);
    expect(sent.body.recipients).toBe(5);
    for (const c of clients) {
      const [m] = await c.messages(1);
      expect([m!.id, m!.seq]).toEqual([sent.body.id, 1]);
    }
    const marker = await nodes[1]!.push({ to: { users } });
    for (const c of clients) expect((await c.messages(1))[0]!.id).toBe(marker.body.id);
  });

  it('room settings made on one node hold on the other: one merged frame per window on each', async () => {
    const topic = id('room');
    const subscribers = [];
    for (const node of [0, 1]) {
      const token = await signClientToken({
        secret: APPS.a,
        userId: id(`room-user-${node}`),
        ttlSeconds: 600,
        topics: [topic],
      });
      const c = await TestClient.open(nodes[node]!.ws, { app: 'a', token });
      sockets.push(c);
      const raw: string[] = [];
      c.ws.on('message', (d) => {
        const text = d.toString();
        if (text.includes('"op":"message"')) raw.push(text);
      });
      expect((await c.request({ op: 'subscribe', topic })).op).toBe('subscribed');
      subscribers.push({ c, raw });
    }
    const set = await nodes[1]!.api('PUT', `/v1/topics/${topic}/settings`, { merge_ms: 1500 });
    expect(set.body).toEqual({ topic, merge_ms: 1500 });
    // The notice travels on the bus. Until node 0 has it, a probe reaches node 0's
    // subscriber as a plain frame; once it has, as a window (an array).
    const onNode0 = subscribers[0]!;
    let probes = 0;
    for (;;) {
      expect((await nodes[1]!.push({ to: { topic }, type: 'probe' })).status).toBe(202);
      probes++;
      await onNode0.c.messages(1);
      if (onNode0.raw.at(-1)!.startsWith('[')) break;
    }
    await Promise.all(subscribers.slice(1).map(({ c }) => c.messages(probes)));
    const before = subscribers.map(({ raw }) => raw.length);
    const res = await nodes[0]!.api('POST', '/v1/push/batch', {
      messages: Array.from({ length: 8 }, (_, i) => ({ to: { topic }, data: { i } })),
    });
    expect(res.status).toBe(200);
    for (const [i, { c, raw }] of subscribers.entries()) {
      const frames = await c.messages(8);
      expect(frames.map((f) => f.offset)).toEqual(Array.from({ length: 8 }, (_, k) => probes + k + 1));
      // Both nodes merged the eight into one frame for their subscriber.
      expect(raw.length - before[i]!).toBe(1);
    }
  });
});
