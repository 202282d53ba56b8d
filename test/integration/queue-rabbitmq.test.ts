import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { DEAD_QUEUE, PUSH_QUEUE } from '../../src/ingest/rabbitmq-consumer.js';
import { createLogger } from '../../src/observability/logger.js';
import { createServer } from '../../src/server.js';
import { queueBroker } from '../contract/queue-brokers.js';
import { queueContract } from '../contract/queue-contract.js';
import { type ChildServer, startChild } from '../helpers/child-server.js';
import { TestClient } from '../helpers/client.js';
import { harness, startServer, type TestServer, tempDir, testEnv } from '../helpers/server.js';
import { describeWithService, describeWithServices } from '../helpers/services.js';
import { makeCertificate, startTlsProxy } from '../helpers/tls-backends.js';
import { waitUntil } from '../helpers/wait.js';

const run = promisify(execFile);

/**
 * The driver's queue names are fixed (docs/reference/queues.md), so runs are kept apart by deleting both queues
 * first; vitest runs this file's tests one after another, and no other file uses these queues.
 * The kill -9 test runs the built CLI: `npm run build` first (`npm test` does).
 */
await describeWithService('rabbitmq', 'RabbitMQ queue ingress', (url) => {
  const servers: TestServer[] = [];
  const children: ChildServer[] = [];
  const clients: TestClient[] = [];
  const dirs: string[] = [];

  async function withChannel<T>(fn: (ch: amqp.ConfirmChannel) => Promise<T>): Promise<T> {
    const connection = await amqp.connect(url);
    connection.on('error', () => {});
    try {
      const channel = await connection.createConfirmChannel();
      channel.on('error', () => {}); // a refused operation rejects its promise too
      await channel.assertQueue(PUSH_QUEUE, { durable: true });
      await channel.assertQueue(DEAD_QUEUE, { durable: true });
      return await fn(channel);
    } finally {
      await connection.close().catch(() => {});
    }
  }

  /** Publishes persistent messages, in order, and waits for the broker's confirms. */
  function publish(bodies: readonly (string | Buffer | object)[]): Promise<void> {
    return withChannel(async (ch) => {
      for (const b of bodies) {
        const content = Buffer.isBuffer(b) ? b : Buffer.from(typeof b === 'string' ? b : JSON.stringify(b));
        ch.sendToQueue(PUSH_QUEUE, content, { persistent: true });
      }
      await ch.waitForConfirms();
    });
  }

  async function start(env: Record<string, string> = {}): Promise<TestServer> {
    const s = await startServer({ PUSH_QUEUE_URL: url, PUSH_RESEND_MS: '60000', ...env });
    servers.push(s);
    return s;
  }

  /** An in-process server whose log lines are kept, to check what the consumer reports. */
  async function startLogged(env: Record<string, string>): Promise<{ s: TestServer; logs: any[] }> {
    const dataDir = tempDir();
    const config = loadConfig({
      env: testEnv(dataDir, { PUSH_QUEUE_URL: url, PUSH_RESEND_MS: '60000', PUSH_LOG_LEVEL: 'info', ...env }),
    });
    const logs: any[] = [];
    const log = createLogger(config.logLevel, { write: (line: string) => void logs.push(JSON.parse(line)) });
    const server = await createServer(config, { log });
    const s = harness(server, await server.start(), dataDir, async () => {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    });
    servers.push(s);
    return { s, logs };
  }

  async function connect(s: TestServer, user: string, since?: number): Promise<TestClient> {
    const query: Record<string, string | number> = { app: 'a', token: await s.token(user) };
    if (since !== undefined) query.since = since;
    const c = await TestClient.open(s.ws, query);
    clients.push(c);
    return c;
  }

  /** Fails naming the step when it outlasts `ms`: a hang then says where, not just the test timeout. */
  async function step<T>(name: string, work: Promise<T>, ms = 10_000): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${name}: not done within ${ms} ms`)), ms);
    });
    try {
      return await Promise.race([work, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  function received(c: TestClient): any[] {
    return c.frames.filter((f) => f.op === 'message');
  }

  /** Message ids in arrival order until `n` distinct ones arrived (duplicates kept, to be checked). */
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

  /** `users` users, `perUser` messages each, interleaved the way one queue would carry them. */
  function messages(prefix: string, users: number, perUser: number) {
    const out: { app: string; id: string; to: { users: string[] }; data: { i: number } }[] = [];
    for (let i = 0; i < perUser; i++) {
      for (let u = 0; u < users; u++) {
        out.push({ app: 'a', id: `${prefix}-u${u}-${i}`, to: { users: [`${prefix}-u${u}`] }, data: { i } });
      }
    }
    return out;
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

  function idsOf(user: string, all: ReturnType<typeof messages>): string[] {
    return all.filter((m) => m.to.users[0] === user).map((m) => m.id);
  }

  beforeEach(async () => {
    // Deleted, not purged, before every test: the max-deliveries test makes message-push.push a
    // quorum queue, and one that timed out (or a run stopped half-way) must not leave it to
    // the next test, whose classic declaration would be refused.
    const connection = await amqp.connect(url);
    const ch = await connection.createChannel();
    await ch.deleteQueue(PUSH_QUEUE);
    await ch.deleteQueue(DEAD_QUEUE);
    await connection.close();
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    for (const s of servers.splice(0)) await s.stop();
    for (const c of children.splice(0)) await c.stop();
  });

  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
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
    expect(ready.body.checks).toMatchObject({ rabbitmq: 'ok' });
  });

  it('a broker connection loss (rabbitmqctl close_all_connections) while 5,000 messages flow loses none: after dedupe by id each is seen once, in queue order per user', async () => {
    // A smaller window keeps the first 4,000 flowing for longer than the CLI takes to close every
    // connection; the last 1,000 are held back until the loss, so the flow spans it in any case.
    const { s, logs } = await startLogged({ PUSH_QUEUE_PREFETCH: '4' });
    const users = 10;
    const sent = messages('loss', users, 500);
    const cs: TestClient[] = [];
    for (let u = 0; u < users; u++) cs.push(await connect(s, `loss-u${u}`));
    await publish(sent.slice(0, 4_000));
    await cs[0]!.next((f) => f.op === 'message');
    await run('rabbitmqctl', ['close_all_connections', 'test']);
    // Mid-flow: messages were still queued, and the unacked window went back to the queue (the
    // server reconnects only after a backoff, so nothing was taken since).
    const queuedAtLoss = (await withChannel((ch) => ch.checkQueue(PUSH_QUEUE))).messageCount;
    expect(queuedAtLoss).toBeGreaterThan(0);
    await publish(sent.slice(4_000)); // consumed only through a new connection
    for (let u = 0; u < users; u++) {
      const user = `loss-u${u}`;
      const expected = idsOf(user, sent);
      await waitForIds(cs[u]!, expected);
      const seen = received(cs[u]!).map((f) => f.id as string);
      expect([...new Set(seen)]).toEqual(expected);
    }
    const lost = logs.find((l) => l.msg.startsWith('rabbitmq: connection lost'));
    expect(lost).toMatchObject({ level: 40, reason: expect.stringMatching(/CONNECTION_FORCED/) });
    expect(logs.find((l) => l.msg === 'rabbitmq: reconnected, consuming again')).toMatchObject({ level: 30 });
    console.log(`rabbitmq connection loss: ${queuedAtLoss} of the first 4000 messages were still queued`);
    expect((await s.api('GET', '/readyz')).status).toBe(200);
  });

  it('a kill -9 of the service while 5,000 messages flow loses none: after dedupe by id each is seen once, in queue order per user', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const env = { PUSH_QUEUE_URL: url, PUSH_RESEND_MS: '60000' };
    const users = 10;
    const sent = messages('k9', users, 500);
    const first = await startChild(dir, env);
    children.push(first);
    const before: TestClient[] = [];
    for (let u = 0; u < users; u++) before.push(await connect(first, `k9-u${u}`));
    await publish(sent.slice(0, 4_000));
    await before[0]!.next((f) => f.op === 'message');
    first.child.kill('SIGKILL');
    expect(await first.exited()).toBe('SIGKILL');
    // Killed mid-flow: a backlog was still queued, so its whole prefetch window was unacked.
    expect((await withChannel((ch) => ch.checkQueue(PUSH_QUEUE))).messageCount).toBeGreaterThan(0);
    await publish(sent.slice(4_000));

    const second = await startChild(dir, env);
    children.push(second);
    for (let u = 0; u < users; u++) {
      const user = `k9-u${u}`;
      const earlier = received(before[u]!);
      const lastSeq = Math.max(0, ...earlier.map((f) => f.seq as number));
      const after = await connect(second, user, lastSeq);
      const expected = idsOf(user, sent);
      await waitForIds(
        after,
        expected.filter((id) => !earlier.some((f) => f.id === id)),
      );
      const seen = [...earlier, ...received(after)].map((f) => f.id as string);
      expect([...new Set(seen)]).toEqual(expected);
    }
  });

  it('malformed payloads land in message-push.dead with their reason and original body and never block the queue; a duplicate id with the same body is simply acked', async () => {
    await withChannel((ch) => ch.purgeQueue(DEAD_QUEUE));
    const s = await start();
    const c = await connect(s, 'mal-u');
    const valid = { app: 'a', id: 'mal-1', to: { users: ['mal-u'] }, data: { n: 1 } };
    const notUtf8 = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
    const invalid = { app: 'a', id: 'mal-invalid', to: { users: [] }, data: {} };
    const unknownApp = { app: 'nope', id: 'mal-unknown', to: { users: ['mal-u'] }, data: {} };
    const conflicting = { ...valid, data: { n: 2 } };
    await publish([
      'not json {',
      notUtf8,
      invalid,
      unknownApp,
      valid,
      conflicting,
      valid,
      { app: 'a', id: 'mal-2', to: { users: ['mal-u'] }, data: { n: 3 } },
    ]);
    // A second mal-1 (the duplicate) would arrive before mal-2: queue order per user.
    expect(await receive(c, 2)).toEqual(['mal-1', 'mal-2']);
    const letters = await withChannel(async (ch) => {
      await waitUntil(async () => (await ch.checkQueue(DEAD_QUEUE)).messageCount >= 5);
      const out: any[] = [];
      for (
        let m = await ch.get(DEAD_QUEUE, { noAck: true });
        m;
        m = await ch.get(DEAD_QUEUE, { noAck: true })
      ) {
        expect(m.properties.deliveryMode).toBe(2);
        out.push(JSON.parse(m.content.toString()));
      }
      return out;
    });
    const byBody = (b: string) => letters.find((l) => l.body === b);
    expect(letters).toHaveLength(5);
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
    const history = await s.api('GET', '/v1/users/mal-u/messages');
    expect(history.body.messages.map((m: any) => m.id)).toEqual(['mal-1', 'mal-2']);
    expect(history.body.messages[0].data).toEqual({ n: 1 });
    // Stopping waits for in-flight messages; anything not acked would be back in the queue.
    await servers.pop()!.stop();
    expect((await withChannel((ch) => ch.checkQueue(PUSH_QUEUE))).messageCount).toBe(0);
  });

  it('amqps:// reaches the driver: through a TLS endpoint (self-signed certificate made here) in front of the broker, messages are consumed', async () => {
    const dir = tempDir('mp-amqps-');
    dirs.push(dir);
    const cert = makeCertificate(dir);
    const broker = new URL(url);
    const proxy = await startTlsProxy(cert, { host: broker.hostname, port: Number(broker.port) || 5672 });
    try {
      const tlsUrl = `amqps://${broker.username}:${broker.password}@127.0.0.1:${proxy.port}${broker.pathname}`;
      // The child trusts the certificate as an operator's private CA: NODE_EXTRA_CA_CERTS.
      const s = await startChild(dir, { PUSH_QUEUE_URL: tlsUrl, NODE_EXTRA_CA_CERTS: cert.cert });
      children.push(s);
      expect((await s.api('GET', '/readyz')).status).toBe(200);
      const c = await connect(s, 'amqps-u');
      const sent = [{ app: 'a', id: 'amqps-1', to: { users: ['amqps-u'] }, data: { via: 'amqps' } }];
      await publish(sent);
      expect(await receive(c, 1)).toEqual(['amqps-1']);
      await c.close();
      await children.pop()!.stop();
    } finally {
      await proxy.stop();
    }
  });

  it('a wrong URL makes startup fail fast with an error naming PUSH_QUEUE_URL', async () => {
    const t0 = Date.now();
    await expect(startServer({ PUSH_QUEUE_URL: 'amqp://127.0.0.1:1' })).rejects.toThrow(/PUSH_QUEUE_URL/);
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('a message delivered more than PUSH_QUEUE_MAX_DELIVER times (x-delivery-count of a quorum queue) goes to the dead letter as max_deliveries', async () => {
    const poison = { app: 'a', id: 'qq-1', to: { users: ['qq-u'] }, data: { n: 1 } };
    const fine = { app: 'a', id: 'qq-2', to: { users: ['qq-u'] }, data: { n: 2 } };
    const connection = await amqp.connect(url);
    try {
      const ch = await connection.createChannel();
      // An operator's quorum queue: the driver uses it as it is, and it counts deliveries.
      await ch.assertQueue(PUSH_QUEUE, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
      ch.sendToQueue(PUSH_QUEUE, Buffer.from(JSON.stringify(poison)), { persistent: true });
      // A consumer that fails it six times: each delivery goes back to the queue.
      await step(
        'six returns by the test consumer',
        new Promise<void>((resolve) => {
          let deliveries = 0;
          void ch.consume(PUSH_QUEUE, (m) => {
            ch.nack(m!, false, true);
            if (++deliveries === 6) void ch.cancel(m!.fields.consumerTag).then(() => resolve());
          });
        }),
      );
      ch.sendToQueue(PUSH_QUEUE, Buffer.from(JSON.stringify(fine)), { persistent: true });
      await ch.close();

      const s = await step('server start on the quorum queue', start({ PUSH_QUEUE_MAX_DELIVER: '5' }));
      const c = await connect(s, 'qq-u');
      expect(await step('qq-2 delivered', receive(c, 1))).toEqual(['qq-2']);
      const check = await connection.createChannel();
      await step(
        'qq-1 dead-lettered',
        waitUntil(async () => (await check.checkQueue(DEAD_QUEUE)).messageCount >= 1, 20_000),
      );
      const got = await check.get(DEAD_QUEUE, { noAck: true });
      const letter = got ? JSON.parse(got.content.toString()) : null;
      expect(letter).toMatchObject({
        reason: 'max_deliveries',
        error: { code: 'unavailable', message: expect.stringMatching(/^not durable after \d+ deliveries/) },
        body: JSON.stringify(poison),
      });
      // Six or more returns (one may slip in before the cancel): dead-lettered on delivery 7 or later.
      expect(Number(/after (\d+)/.exec(letter.error.message)![1])).toBeGreaterThan(6);
      expect((await s.api('GET', '/v1/messages/qq-1')).status).toBe(404);
    } finally {
      // The queues are deleted before the next test (beforeEach), not here: a test that timed
      // out runs this late, and would delete the next test's queue under it.
      await connection.close();
    }
  });

  it('ingest throughput: 10,000 messages to 100 users, published while the server runs, until all are durable', async () => {
    const s = await start();
    const sent = messages('tp', 100, 100);
    const last = sent.at(-1)!.id;
    const t0 = performance.now();
    await publish(sent);
    // Accept keeps queue order and group commits are ordered: the last message durable means all are.
    await waitUntil(async () => (await s.api('GET', `/v1/messages/${last}`)).status === 200, 30_000, 20);
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `rabbitmq ingest: ${Math.round(sent.length / seconds)} msg/s (${sent.length} in ${seconds.toFixed(2)} s)`,
    );
    const metrics = await (await fetch(`${s.http}/metrics`)).text();
    expect(metrics).toMatch(/push_queue_messages_total\{queue="rabbitmq",outcome="pushed"\} 10000\b/);
  });
});

// The contract every queue driver keeps; MySQL serves its max-deliveries test (a store that fails).
await describeWithServices(['rabbitmq', 'mysql'], 'RabbitMQ queue ingress: queue contract', ([url]) => {
  queueContract(queueBroker('rabbitmq', url!));
});
