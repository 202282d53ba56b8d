import { rmSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { DEAD_STREAM, GROUP, PUSH_STREAM } from '../../src/ingest/redis-streams-consumer.js';
import { queueBroker } from '../contract/queue-brokers.js';
import { queueContract } from '../contract/queue-contract.js';
import { type ChildServer, startChild } from '../helpers/child-server.js';
import { TestClient } from '../helpers/client.js';
import { startServer, type TestServer, tempDir } from '../helpers/server.js';
import { describeWithService, describeWithServices } from '../helpers/services.js';
import { waitUntil } from '../helpers/wait.js';

/**
 * The driver's stream names are fixed (docs/reference/queues.md), so runs are kept apart by deleting both
 * streams first; vitest runs this file's tests one after another, and no other file uses them.
 * The kill -9 test runs the built CLI: `npm run build` first (`npm test` does).
 */
await describeWithService('redis', 'Redis Streams queue ingress', (url) => {
  const redis = new Redis(url);
  const servers: TestServer[] = [];
  const children: ChildServer[] = [];
  const clients: TestClient[] = [];
  const dirs: string[] = [];

  type Body = { app: string; id: string; to: { users: string[] }; data: { i: number } };

  /** Appends entries, in order, in one round trip per 1,000. */
  async function publish(bodies: readonly (string | Buffer | object)[]): Promise<void> {
    for (let at = 0; at < bodies.length; at += 1_000) {
      const pipeline = redis.pipeline();
      for (const b of bodies.slice(at, at + 1_000)) {
        pipeline.xadd(
          PUSH_STREAM,
          '*',
          'body',
          Buffer.isBuffer(b) || typeof b === 'string' ? b : JSON.stringify(b),
        );
      }
      for (const [err] of (await pipeline.exec())!) if (err) throw err;
    }
  }

  async function start(env: Record<string, string> = {}): Promise<TestServer> {
    const s = await startServer({ PUSH_QUEUE_URL: url, PUSH_RESEND_MS: '60000', ...env });
    servers.push(s);
    return s;
  }

  async function connect(s: TestServer, user: string, since?: number): Promise<TestClient> {
    const query: Record<string, string | number> = { app: 'a', token: await s.token(user) };
    if (since !== undefined) query.since = since;
    const c = await TestClient.open(s.ws, query);
    clients.push(c);
    return c;
  }

  async function receive(c: TestClient, n: number, timeoutMs = 30_000): Promise<string[]> {
    const ids: string[] = [];
    const seen = new Set<string>();
    while (seen.size < n) {
      const f = await c.next((f) => f.op === 'message', timeoutMs);
      ids.push(f.id);
      seen.add(f.id);
    }
    return ids;
  }

  /** Waits (on socket events) until every id in `ids` has arrived at least once. */
  async function waitForIds(c: TestClient, ids: readonly string[]): Promise<void> {
    const missing = new Set(ids);
    for (const f of c.frames) missing.delete(f.id);
    while (missing.size > 0) {
      const f = await c.next((f) => f.op === 'message' && missing.has(f.id), 30_000);
      missing.delete(f.id);
    }
  }

  function received(...cs: TestClient[]): any[] {
    return cs.flatMap((c) => c.frames.filter((f) => f.op === 'message'));
  }

  /** `users` users, `perUser` messages each, interleaved the way one stream would carry them. */
  function messages(prefix: string, users: number, perUser: number): Body[] {
    const out: Body[] = [];
    for (let i = 0; i < perUser; i++) {
      for (let u = 0; u < users; u++) {
        out.push({ app: 'a', id: `${prefix}-u${u}-${i}`, to: { users: [`${prefix}-u${u}`] }, data: { i } });
      }
    }
    return out;
  }

  function idsOf(user: string, all: readonly Body[]): string[] {
    return all.filter((m) => m.to.users[0] === user).map((m) => m.id);
  }

  async function pendingCount(): Promise<number> {
    const summary = (await redis.xpending(PUSH_STREAM, GROUP)) as [number, ...unknown[]];
    return Number(summary[0]);
  }

  async function deadLetters(n: number): Promise<any[]> {
    await waitUntil(async () => (await redis.xlen(DEAD_STREAM)) >= n);
    const entries = await redis.xrange(DEAD_STREAM, '-', '+');
    return entries.map(([, fields]) => JSON.parse(fields[fields.indexOf('body') + 1]!));
  }

  beforeAll(async () => {
    await redis.del(PUSH_STREAM, DEAD_STREAM);
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    for (const s of servers.splice(0)) await s.stop();
    for (const c of children.splice(0)) await c.stop();
  });

  afterAll(async () => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    redis.disconnect();
  });

  it('messages published while the service is down are all delivered once it starts, in queue order per user', async () => {
    const sent = messages('down', 3, 100);
    await publish(sent);
    const s = await start();
    for (let u = 0; u < 3; u++) {
      const c = await connect(s, `down-u${u}`);
      expect(await receive(c, 100)).toEqual(idsOf(`down-u${u}`, sent));
    }
    const ready = await s.api('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.checks).toMatchObject({ redis: 'ok' });
  });

  it('a kill -9 of the service while 5,000 messages flow loses none: after dedupe by id each is seen once, in queue order per user', async () => {
    const dir = tempDir();
    dirs.push(dir);
    // The same node name after the restart: the new process takes over its own pending entries at once.
    // A small prefetch keeps the consumer busy for seconds, so the kill always lands mid-flow.
    const env = {
      PUSH_QUEUE_URL: url,
      PUSH_RESEND_MS: '60000',
      PUSH_NODE_ID: `k9-${process.pid}`,
      PUSH_QUEUE_PREFETCH: '4',
    };
    const users = 10;
    const sent = messages('k9', users, 500);
    const first = await startChild(dir, env);
    children.push(first);
    const before: TestClient[] = [];
    for (let u = 0; u < users; u++) before.push(await connect(first, `k9-u${u}`));
    await publish(sent.slice(0, 4_000));
    // Killed while it holds entries taken but not acked. The consumer drains fast enough to
    // slip between a poll and the kill, so it is frozen (SIGSTOP) first and the pending
    // count read while nothing moves; if it had just acked its batch, let it take the next.
    for (;;) {
      await waitUntil(async () => (await pendingCount()) > 0, 10_000, 5);
      first.child.kill('SIGSTOP');
      if ((await pendingCount()) > 0) break;
      first.child.kill('SIGCONT');
    }
    first.child.kill('SIGKILL');
    expect(await first.exited()).toBe('SIGKILL');
    expect(await pendingCount()).toBeGreaterThan(0);
    await publish(sent.slice(4_000));

    const second = await startChild(dir, env);
    children.push(second);
    for (let u = 0; u < users; u++) {
      const user = `k9-u${u}`;
      const lastSeq = Math.max(0, ...received(before[u]!).map((f) => f.seq as number));
      const after = await connect(second, user, lastSeq);
      const expected = idsOf(user, sent);
      await waitForIds(
        after,
        expected.filter((id) => !received(before[u]!).some((f) => f.id === id)),
      );
      const seen = received(before[u]!, after).map((f) => f.id as string);
      expect([...new Set(seen)]).toEqual(expected);
    }
    await waitUntil(async () => (await pendingCount()) === 0);
  }, 120_000); // two process starts and 5,000 messages: well past 30 s on a loaded machine

  it('malformed payloads land in message-push:dead with their reason and original body and never block the stream; a duplicate id with the same body is simply acked', async () => {
    await redis.del(DEAD_STREAM);
    const s = await start();
    const c = await connect(s, 'mal-u');
    const valid = { app: 'a', id: 'mal-1', to: { users: ['mal-u'] }, data: { n: 1 } };
    const notUtf8 = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
    const invalid = { app: 'a', id: 'mal-invalid', to: { users: [] }, data: {} };
    const unknownApp = { app: 'nope', id: 'mal-unknown', to: { users: ['mal-u'] }, data: {} };
    const conflicting = { ...valid, data: { n: 2 } };
    await publish(['not json {', notUtf8, invalid, unknownApp, valid, conflicting, valid]);
    await redis.xadd(PUSH_STREAM, '*', 'payload', JSON.stringify(valid)); // no `body` field
    await publish([{ app: 'a', id: 'mal-2', to: { users: ['mal-u'] }, data: { n: 3 } }]);
    // A second mal-1 (the duplicate) would arrive before mal-2: queue order per user.
    expect(await receive(c, 2)).toEqual(['mal-1', 'mal-2']);
    const letters = await deadLetters(6);
    expect(letters).toHaveLength(6);
    const byBody = (b: string) => letters.find((l) => l.body === b);
    expect(byBody('not json {')).toMatchObject({ reason: 'bad_request', error: { code: 'bad_request' } });
    const binary = letters.find((l) => 'body_base64' in l);
    expect(binary).toMatchObject({ reason: 'bad_request', body_base64: notUtf8.toString('base64') });
    expect(binary.body).toBeUndefined();
    expect(byBody(JSON.stringify(invalid))).toMatchObject({ reason: 'bad_request' });
    expect(byBody(JSON.stringify(unknownApp))).toMatchObject({
      reason: 'unknown_app',
      error: { code: 'unauthorized' },
    });
    expect(byBody(JSON.stringify(conflicting))).toMatchObject({
      reason: 'conflict',
      error: { code: 'conflict' },
    });
    expect(byBody('')).toMatchObject({
      reason: 'bad_request',
      error: { message: expect.stringMatching(/body/) },
    });
    const history = await s.api('GET', '/v1/users/mal-u/messages');
    expect(history.body.messages.map((m: any) => m.id)).toEqual(['mal-1', 'mal-2']);
    // Stopping waits for in-flight entries: every one of them was acked.
    await servers.pop()!.stop();
    expect(await pendingCount()).toBe(0);
  });

  it('pending entries of a crashed consumer are claimed at start; one delivered more than PUSH_QUEUE_MAX_DELIVER times goes to the dead letter as max_deliveries', async () => {
    await redis.del(PUSH_STREAM, DEAD_STREAM);
    await redis.xgroup('CREATE', PUSH_STREAM, GROUP, '0', 'MKSTREAM');
    const poison = { app: 'a', id: 'ghost-1', to: { users: ['ghost-u'] }, data: { n: 1 } };
    const orphan = { app: 'a', id: 'ghost-2', to: { users: ['ghost-u'] }, data: { n: 2 } };
    await publish([poison, orphan]);
    const read = (await redis.xreadgroup(
      'GROUP',
      GROUP,
      'ghost',
      'COUNT',
      10,
      'STREAMS',
      PUSH_STREAM,
      '>',
    )) as [string, [string, string[]][]][];
    const [poisonId, orphanId] = read[0]![1].map(([id]) => id);
    // A consumer that died long ago: idle for a minute; the first entry already tried 10 times.
    await redis.xclaim(PUSH_STREAM, GROUP, 'ghost', 0, poisonId!, 'IDLE', 60_000, 'RETRYCOUNT', 10);
    await redis.xclaim(PUSH_STREAM, GROUP, 'ghost', 0, orphanId!, 'IDLE', 60_000);
    const s = await start({ PUSH_QUEUE_MAX_DELIVER: '5' });
    const c = await connect(s, 'ghost-u');
    expect(await receive(c, 1)).toEqual(['ghost-2']);
    const [letter] = await deadLetters(1);
    expect(letter).toMatchObject({
      reason: 'max_deliveries',
      error: { code: 'unavailable' },
      body: JSON.stringify(poison),
    });
    expect((await s.api('GET', '/v1/messages/ghost-1')).status).toBe(404);
    await waitUntil(async () => (await pendingCount()) === 0);
  });

  /** Reads `count` new entries as `consumer` and leaves them pending there, as a node killed mid-push would. */
  async function takeAs(consumer: string, count: number): Promise<string[]> {
    const read = (await redis.xreadgroup(
      'GROUP',
      GROUP,
      consumer,
      'COUNT',
      count,
      'STREAMS',
      PUSH_STREAM,
      '>',
    )) as [string, [string, string[]][]][];
    return read[0]![1].map(([id]) => id);
  }

  async function pendingOf(consumer: string): Promise<number> {
    const rows = (await redis.xpending(PUSH_STREAM, GROUP, '-', '+', 1000, consumer)) as unknown[];
    return rows.length;
  }

  it("a node started under a new name takes over a killed node's pending entries before newer ones: per-user order holds across the crash", async () => {
    await redis.del(PUSH_STREAM, DEAD_STREAM);
    await redis.xgroup('CREATE', PUSH_STREAM, GROUP, '0', 'MKSTREAM');
    const sent = messages('adopt', 2, 10);
    await publish(sent.slice(0, 8));
    // Node "killed-…" took the first 8 and died before storing them: no connection of its name
    // is open and the entries are fresh (XAUTOCLAIM's idle bound would leave them for 30 s).
    expect(await takeAs(`killed-${process.pid}`, 8)).toHaveLength(8);
    await publish(sent.slice(8));
    const s = await start({ PUSH_NODE_ID: `restarted-${process.pid}` });
    for (let u = 0; u < 2; u++) {
      const c = await connect(s, `adopt-u${u}`);
      expect(await receive(c, 10)).toEqual(idsOf(`adopt-u${u}`, sent));
    }
    await waitUntil(async () => (await pendingCount()) === 0);
    expect(await pendingOf(`killed-${process.pid}`)).toBe(0);
  });

  it('the pending entries of a node that is alive (a connection of its name open) stay with it', async () => {
    await redis.del(PUSH_STREAM, DEAD_STREAM);
    await redis.xgroup('CREATE', PUSH_STREAM, GROUP, '0', 'MKSTREAM');
    const alive = `alive-${process.pid}`;
    const other = new Redis(url, { connectionName: `message-push:${alive}:reader` });
    try {
      await other.ping();
      await publish(messages('held', 1, 3));
      expect(await takeAs(alive, 3)).toHaveLength(3);
      const later = messages('free', 1, 2);
      await publish(later);
      const s = await start({ PUSH_NODE_ID: `peer-${process.pid}` });
      const c = await connect(s, 'free-u0');
      // The newer entries flow, so the start-up takeover has run; the live node's stay its own.
      expect(await receive(c, 2)).toEqual(idsOf('free-u0', later));
      expect(await pendingOf(alive)).toBe(3);
    } finally {
      other.disconnect();
    }
  });

  it('while the event loop is overloaded the consumer holds what it took (no ack, no refusal, no more reads) and resumes in order after', async () => {
    await redis.del(PUSH_STREAM, DEAD_STREAM);
    const s = await start({ PUSH_OVERLOAD_DELAY_MS: '200', PUSH_QUEUE_PREFETCH: '8' });
    const c = await connect(s, 'busy-u0');
    await publish([{ app: 'a', id: 'warm', to: { users: ['busy-u0'] }, data: { i: -1 } }]);
    expect(await receive(c, 1)).toEqual(['warm']);
    // A deliberately blocked loop: 300 ms of synchronous work every 50 ms, past the 200 ms bound.
    const blocker = setInterval(() => {
      const until = Date.now() + 300;
      while (Date.now() < until) {}
    }, 50);
    const sent = messages('busy', 1, 20);
    try {
      // The server says so itself: an HTTP push is shed with 503 overloaded.
      await waitUntil(
        async () => (await s.push({ to: { users: ['probe'] }, data: {} })).status === 503,
        30_000,
      );
      await publish(sent);
      // The consumer took a window of entries and holds them unacked: it neither pushes nor
      // refuses them, and reads no more while they wait.
      await waitUntil(async () => (await pendingCount()) > 0, 30_000);
      for (let i = 0; i < 3; i++) {
        expect(await pendingCount()).toBeLessThanOrEqual(8);
        expect(received(c).filter((f) => String(f.id).startsWith('busy-'))).toEqual([]);
      }
      expect(await redis.xlen(DEAD_STREAM)).toBe(0);
    } finally {
      clearInterval(blocker);
    }
    expect(await receive(c, 20)).toEqual(idsOf('busy-u0', sent));
    await waitUntil(async () => (await pendingCount()) === 0);
    expect(await redis.xlen(DEAD_STREAM)).toBe(0);
  });

  it('a dropped Redis connection is re-established and consumption resumes', async () => {
    const node = `drop-${process.pid}`;
    const s = await start({ PUSH_NODE_ID: node });
    const list = (await redis.client('LIST')) as string;
    const ids = list
      .split('\n')
      .filter((line) => line.includes(` name=message-push:${node}:`))
      .map((line) => /\bid=(\d+)/.exec(line)![1]!);
    expect(ids).toHaveLength(2);
    for (const id of ids) await redis.client('KILL', 'ID', id);
    const sent = messages('drop', 1, 50);
    await publish(sent);
    const c = await connect(s, 'drop-u0');
    expect(await receive(c, 50)).toEqual(idsOf('drop-u0', sent));
    // Both connections come back (backoff with jitter) and every entry is acked.
    await waitUntil(async () => (await s.api('GET', '/readyz')).status === 200);
    await waitUntil(async () => (await pendingCount()) === 0);
  });

  it('a body without an id takes its entry id, so a redelivery (e.g. taken over by another node) is stored once', async () => {
    const s = await start();
    const entryId = (await redis.xadd(
      PUSH_STREAM,
      '*',
      'body',
      JSON.stringify({ app: 'a', to: { users: ['eid-u'] }, data: 1 }),
    ))!;
    const c = await connect(s, 'eid-u');
    const [m] = await c.messages(1);
    expect(m!.id).toBe(`redis-${entryId}`);
    // The same entry again, as a takeover after a crash before the ack would hand it over.
    const again = await s.push({ id: `redis-${entryId}`, to: { users: ['eid-u'] }, data: 1 });
    expect(again.body).toMatchObject({ id: `redis-${entryId}`, duplicate: true });
    const status = await s.api('GET', `/v1/messages/redis-${entryId}`);
    expect(status.body.recipients).toHaveLength(1);
  });

  it('a wrong URL makes startup fail fast with an error naming PUSH_QUEUE_URL', async () => {
    const t0 = Date.now();
    await expect(startServer({ PUSH_QUEUE_URL: 'redis://127.0.0.1:1' })).rejects.toThrow(/PUSH_QUEUE_URL/);
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('ingest throughput: 10,000 messages to 100 users, published while the server runs, until all are durable', async () => {
    const s = await start();
    const sent = messages('tp', 100, 100);
    const last = sent.at(-1)!.id;
    const t0 = performance.now();
    await publish(sent);
    // Accept keeps stream order and group commits are ordered: the last message durable means all are.
    await waitUntil(async () => (await s.api('GET', `/v1/messages/${last}`)).status === 200, 30_000, 20);
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `redis ingest: ${Math.round(sent.length / seconds)} msg/s (${sent.length} in ${seconds.toFixed(2)} s)`,
    );
    const metrics = await (await fetch(`${s.http}/metrics`)).text();
    expect(metrics).toMatch(/push_queue_messages_total\{queue="redis",outcome="pushed"\} 10000\b/);
  });
});

// The contract every queue driver keeps; MySQL serves its max-deliveries test (a store that fails).
await describeWithServices(['redis', 'mysql'], 'Redis Streams queue ingress: queue contract', ([url]) => {
  queueContract(queueBroker('redis', url!));
});
