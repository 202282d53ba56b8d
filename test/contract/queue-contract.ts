import { rmSync } from 'node:fs';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { type ChildServer, startChild } from '../helpers/child-server.js';
import { TestClient } from '../helpers/client.js';
import { dropDatabase, withDatabase } from '../helpers/mysql.js';
import { startServer, type TestServer, tempDir } from '../helpers/server.js';
import { serviceUrl } from '../helpers/services.js';
import { waitUntil } from '../helpers/wait.js';
import type { QueueBroker } from './queue-brokers.js';

/**
 * What every queue driver promises (docs/reference/queues.md), run against a real broker by
 * each broker's suite (test/integration/queue-*.test.ts, inside describeWithServices so a
 * missing broker skips locally and fails in CI). Queue names are fixed by the contract, so a
 * broker's suites run in one file, one test at a time, each from broker.reset().
 * The crash and SIGTERM tests run the built CLI: `npm run build` first (`npm test` does).
 */
export interface QueueContractOptions {
  /** Users × messages each for the kill -9 test; every user's messages are keyed to one partition. */
  readonly crash?: { readonly users: number; readonly perUser: number };
}

type Body = { app: string; id: string; to: { users: string[] }; data: { i: number } };

export function queueContract(broker: QueueBroker, options: QueueContractOptions = {}): void {
  const servers: { stop(): Promise<void> }[] = [];
  const clients: TestClient[] = [];
  const dirs: string[] = [];
  let run = '';
  const env = { PUSH_QUEUE_URL: broker.url, PUSH_RESEND_MS: '60000' };

  beforeEach(async () => {
    run = `${broker.name}-${Date.now().toString(36)}`;
    await broker.reset();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    for (const s of servers.splice(0).reverse()) await s.stop().catch(() => {});
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  // Left empty for whatever uses the broker next (the SIGTERM test leaves messages queued).
  afterAll(async () => {
    await broker.reset();
    await broker.close();
  });

  async function start(extra: Record<string, string> = {}): Promise<TestServer> {
    const s = await startServer({ ...env, ...extra });
    servers.push(s);
    return s;
  }

  async function child(dir: string, extra: Record<string, string> = env): Promise<ChildServer> {
    const c = await startChild(dir, extra);
    servers.push(c);
    return c;
  }

  /** A client that acks every message it gets, as an app would. */
  async function connect(s: TestServer, user: string, since?: number): Promise<TestClient> {
    const query: Record<string, string | number> = { app: 'a', token: await s.token(user) };
    if (since !== undefined) query.since = since;
    const c = await TestClient.open(s.ws, query);
    c.ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const parsed = JSON.parse(data.toString());
      const ids = (Array.isArray(parsed) ? parsed : [parsed])
        .filter((f) => f.op === 'message')
        .map((f) => f.id);
      if (ids.length > 0 && c.ws.readyState === c.ws.OPEN) c.ws.send(JSON.stringify({ op: 'ack', ids }));
    });
    clients.push(c);
    return c;
  }

  /** `users` users × `perUser` messages, interleaved the way one queue would carry them. */
  function bodies(prefix: string, users: number, perUser: number): Body[] {
    const out: Body[] = [];
    for (let i = 0; i < perUser; i++) {
      for (let u = 0; u < users; u++) {
        out.push({ app: 'a', id: `${prefix}-u${u}-${i}`, to: { users: [`${prefix}-u${u}`] }, data: { i } });
      }
    }
    return out;
  }

  /** Keyed by user: on Kafka one user's messages share a partition, so their order is kept. */
  const items = (bs: readonly Body[]) => bs.map((b) => ({ body: JSON.stringify(b), key: b.to.users[0]! }));

  /** Distinct message ids in the order first received, once `n` distinct ones have arrived. */
  async function receive(c: TestClient, n: number, timeoutMs = 60_000): Promise<string[]> {
    const ids: string[] = [];
    const seen = new Set<string>();
    while (seen.size < n) {
      const f = await c.next((f) => f.op === 'message', timeoutMs);
      if (!seen.has(f.id)) ids.push(f.id);
      seen.add(f.id);
    }
    return ids;
  }

  async function history(s: TestServer, user: string): Promise<string[]> {
    const r = await s.api('GET', `/v1/users/${encodeURIComponent(user)}/messages?after_seq=0&limit=1000`);
    expect(r.status).toBe(200);
    return r.body.messages.map((m: { id: string }) => m.id);
  }

  const received = () => clients.reduce((n, c) => n + c.frames.filter((f) => f.op === 'message').length, 0);

  it('keeps each user’s messages in queue order, delivered and stored', async () => {
    const s = await start();
    const users = 10;
    const perUser = 30;
    const all = bodies(`${run}-o`, users, perUser);
    const cs = await Promise.all(Array.from({ length: users }, (_, u) => connect(s, `${run}-o-u${u}`)));
    await broker.publish(items(all));
    for (let u = 0; u < users; u++) {
      const expected = all.filter((b) => b.to.users[0] === `${run}-o-u${u}`).map((b) => b.id);
      expect(await receive(cs[u]!, perUser)).toEqual(expected);
      expect(await history(s, `${run}-o-u${u}`)).toEqual(expected);
    }
  });

  it('dead-letters what HTTP would refuse, with the reason and the original body, and goes on', async () => {
    const s = await start();
    const user = `${run}-d`;
    const c = await connect(s, user);
    const good = (id: string, i: number) =>
      JSON.stringify({ app: 'a', id, to: { users: [user] }, data: { i } });
    const notUtf8 = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
    const refused: [string | Buffer, string, string][] = [
      ['not json {', 'bad_request', 'bad_request'],
      [notUtf8, 'bad_request', 'bad_request'],
      [JSON.stringify({ app: 'nobody', to: { users: [user] }, data: {} }), 'unknown_app', 'unauthorized'],
      [JSON.stringify({ app: 'a', to: { users: [] }, data: {} }), 'bad_request', 'bad_request'],
      [good(`${run}-d1`, 2), 'conflict', 'conflict'], // same id as the first good one, other data
    ];
    await broker.publish(
      [good(`${run}-d1`, 1), ...refused.map(([b]) => b), good(`${run}-d2`, 3)].map((body) => ({
        body,
        key: user,
      })),
    );
    expect(await receive(c, 2)).toEqual([`${run}-d1`, `${run}-d2`]);
    const letters = await waitUntil(async () => {
      const l = await broker.deadLetters();
      return l.length >= refused.length ? l : null;
    }, 20_000);
    expect(letters).toHaveLength(refused.length);
    for (const [body, reason, code] of refused) {
      const original = Buffer.isBuffer(body) ? { body_base64: body.toString('base64') } : { body };
      expect(letters).toContainEqual(
        expect.objectContaining({ reason, error: expect.objectContaining({ code }), ...original }),
      );
    }
    expect(await history(s, user)).toEqual([`${run}-d1`, `${run}-d2`]);
  });

  it('stores a message published several times with one id once', async () => {
    const s = await start();
    const user = `${run}-dup`;
    const c = await connect(s, user);
    const body = JSON.stringify({ app: 'a', id: `${run}-same`, to: { users: [user] }, data: { n: 1 } });
    const last = JSON.stringify({ app: 'a', id: `${run}-after`, to: { users: [user] }, data: { n: 2 } });
    await broker.publish([body, body, body, last].map((b) => ({ body: b, key: user })));
    expect(await receive(c, 2)).toEqual([`${run}-same`, `${run}-after`]);
    expect(await history(s, user)).toEqual([`${run}-same`, `${run}-after`]);
    expect(await broker.deadLetters()).toEqual([]);
  });

  it('dead-letters a message whose push keeps failing after PUSH_QUEUE_MAX_DELIVER deliveries', async () => {
    // A store that fails every write: the server's MySQL database is dropped under it.
    const db = withDatabase(serviceUrl('mysql'), `mp_qc_${run.replace(/\W/g, '_')}`);
    // Every failed write logs a warning: quiet here.
    const s = await start({ PUSH_DB_URL: db, PUSH_QUEUE_MAX_DELIVER: '2', PUSH_LOG_LEVEL: 'error' });
    try {
      const user = `${run}-m`;
      const c = await connect(s, user);
      const first = JSON.stringify({ app: 'a', id: `${run}-m1`, to: { users: [user] }, data: {} });
      await broker.publish([{ body: first, key: user }]);
      expect(await receive(c, 1)).toEqual([`${run}-m1`]);
      await dropDatabase(db);
      const doomed = JSON.stringify({ app: 'a', id: `${run}-m2`, to: { users: [user] }, data: {} });
      await broker.publish([{ body: doomed, key: user }]);
      const letters = await waitUntil(async () => {
        const l = await broker.deadLetters();
        return l.length > 0 ? l : null;
      }, 30_000);
      expect(letters).toEqual([
        expect.objectContaining({
          reason: 'max_deliveries',
          error: expect.objectContaining({ code: 'unavailable' }),
          body: doomed,
        }),
      ]);
    } finally {
      await dropDatabase(db).catch(() => {});
    }
  }, 45_000);

  const crash = options.crash ?? { users: 20, perUser: 50 };
  const total = crash.users * crash.perUser;
  it(`kill -9 of the server while ${total} messages flow to ${crash.users} acking clients: each stored once, all delivered in per-user order`, async () => {
    const dir = tempDir();
    dirs.push(dir);
    let node = await child(dir);
    const prefix = `${run}-k`;
    const all = bodies(prefix, crash.users, crash.perUser);
    for (let u = 0; u < crash.users; u++) await connect(node, `${prefix}-u${u}`);
    await broker.publish(items(all.slice(0, total / 2)));
    // Killed while busy: some pushes durable but not acknowledged to the broker, some not even that.
    await waitUntil(() => received() >= total / 10, 30_000, 5);
    node.child.kill('SIGKILL');
    await node.exited();
    expect(await broker.unacked()).toBeGreaterThan(0); // the crash came mid-flow
    await Promise.all(clients.splice(0).map((c) => c.close()));
    const rest = broker.publish(items(all.slice(total / 2)));
    node = await child(dir);
    const cs: TestClient[] = [];
    for (let u = 0; u < crash.users; u++) cs.push(await connect(node, `${prefix}-u${u}`, 0));
    await rest;
    for (let u = 0; u < crash.users; u++) {
      const user = `${prefix}-u${u}`;
      const expected = all.filter((b) => b.to.users[0] === user).map((b) => b.id);
      const got = await receive(cs[u]!, crash.perUser);
      expect({ received: got, stored: await history(node, user) }).toEqual({
        received: expected,
        stored: expected,
      });
    }
  }, 180_000);

  it('SIGTERM drains: what the server took is stored and acknowledged, the rest stays queued', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const node = await child(dir);
    const users = 20;
    const all = bodies(`${run}-t`, users, 100);
    for (let u = 0; u < users; u++) await connect(node, `${run}-t-u${u}`);
    await broker.publish(items(all));
    await waitUntil(() => received() >= all.length / 10, 30_000, 5);
    node.child.kill('SIGTERM');
    expect(await node.exited()).toBe(0);
    const unacked = await broker.unacked();
    // Read what was stored with the queue off, so nothing more is taken.
    const after = await child(dir, {});
    let stored = 0;
    for (let u = 0; u < users; u++) stored += (await history(after, `${run}-t-u${u}`)).length;
    // Stored and still acknowledged-to-nobody would count twice; lost would count nowhere.
    expect({ stored, unacked, sum: stored + unacked }).toEqual({ stored, unacked, sum: all.length });
    expect(stored).toBeGreaterThan(0);
  }, 120_000);
}
