import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  StorageType,
} from '@nats-io/jetstream';
import { connect, type NatsConnection, nanos } from '@nats-io/transport-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEAD_SUBJECT, DURABLE, PUSH_SUBJECTS, STREAM } from '../../src/ingest/nats-jetstream-consumer.js';
import { queueBroker } from '../contract/queue-brokers.js';
import { queueContract } from '../contract/queue-contract.js';
import { type ChildServer, freePort, startChild } from '../helpers/child-server.js';
import { TestClient } from '../helpers/client.js';
import { startServer, type TestServer, tempDir } from '../helpers/server.js';
import { describeWithService, describeWithServices } from '../helpers/services.js';
import { waitUntil } from '../helpers/wait.js';

/**
 * The stream and consumer names are fixed, so each test starts from a deleted stream on the
 * shared NATS (no other file uses MESSAGE_PUSH); the broker-restart tests run their own
 * nats-server on a free port and a fresh store directory.
 */
const NATS_SERVER = '/usr/sbin/nats-server';
const SERVICE_ENV = { PUSH_RESEND_MS: '60000' };

interface Push {
  app: string;
  id: string;
  to: { users: string[] };
  data: { k: number };
}

/** `users` users × `perUser` messages, interleaved the way one queue carries them. */
function pushes(prefix: string, users: number, perUser: number): Push[] {
  const out: Push[] = [];
  for (let k = 0; k < perUser; k++) {
    for (let u = 0; u < users; u++) {
      out.push({ app: 'a', id: `${prefix}-${u}-${k}`, to: { users: [`${prefix}-u${u}`] }, data: { k } });
    }
  }
  return out;
}

function idsFor(user: string, all: readonly Push[]): string[] {
  return all.filter((p) => p.to.users[0] === user).map((p) => p.id);
}

async function withNats<T>(
  url: string,
  fn: (nc: NatsConnection, jsm: JetStreamManager, js: JetStreamClient) => Promise<T>,
) {
  const nc = await connect({ servers: url });
  try {
    return await fn(nc, await jetstreamManager(nc), jetstream(nc));
  } finally {
    await nc.close();
  }
}

/**
 * Deletes the stream (and with it the consumer); optionally pre-creates them the way an
 * operator may, with a short dedupe window or ack wait that the tests can wait out.
 */
async function resetStream(url: string, opts: { duplicateWindowMs?: number; ackWaitMs?: number } = {}) {
  await withNats(url, async (_nc, jsm) => {
    await jsm.streams.delete(STREAM).catch((err: unknown) => {
      if (!(err instanceof JetStreamApiError)) throw err;
    });
    if (opts.duplicateWindowMs === undefined && opts.ackWaitMs === undefined) return;
    await jsm.streams.add({
      name: STREAM,
      subjects: [PUSH_SUBJECTS],
      storage: StorageType.File,
      ...(opts.duplicateWindowMs ? { duplicate_window: nanos(opts.duplicateWindowMs) } : {}),
    });
    if (opts.ackWaitMs) {
      await jsm.consumers.add(STREAM, {
        durable_name: DURABLE,
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(opts.ackWaitMs),
        deliver_policy: DeliverPolicy.All,
        filter_subject: PUSH_SUBJECTS,
        max_deliver: -1,
        // The server default, as on a consumer an operator made: a restarted node could be handed
        // new messages before the dead one's unacked ones come back, which the driver must hold.
        max_ack_pending: 1000,
      });
    }
  });
}

function publishAll(
  js: JetStreamClient,
  bodies: readonly (Push | string | Uint8Array)[],
  subject = 'push.in',
) {
  return Promise.all(
    bodies.map((b) =>
      js.publish(subject, typeof b === 'object' && !(b instanceof Uint8Array) ? JSON.stringify(b) : b),
    ),
  );
}

/** Publishes one at a time, in order, retrying (same Nats-Msg-Id) while the broker is away. */
async function publishInOrder(js: JetStreamClient, all: readonly Push[]) {
  for (let i = 0; i < all.length; i++) {
    for (;;) {
      try {
        await js.publish(`push.u.${all[i]!.to.users[0]}`, JSON.stringify(all[i]), {
          msgID: all[i]!.id,
          timeout: 2000,
        });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100)); // broker down: retry (time-driven)
      }
    }
  }
}

/** Message ids in arrival order until `n` distinct ones arrived; duplicates kept for the caller. */
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

const dedupe = (ids: readonly string[]) => [...new Set(ids)];

/** The first `n` dead letters in the stream, parsed. */
async function readDeadLetters(url: string, n: number): Promise<any[]> {
  return withNats(url, async (_nc, jsm, js) => {
    // A consumer of its own (ordered consumers need `filter_subjects`, a NATS 2.10 feature).
    const { name } = await jsm.consumers.add(STREAM, {
      ack_policy: AckPolicy.None,
      filter_subject: DEAD_SUBJECT,
      inactive_threshold: nanos(30_000),
    });
    const c = await js.consumers.get(STREAM, name);
    const out: any[] = [];
    const iter = await c.consume();
    const timer = setTimeout(() => iter.stop(), 15_000);
    for await (const m of iter) {
      out.push(m.json());
      if (out.length === n) break;
    }
    clearTimeout(timer);
    return out;
  });
}

async function consumerInfo(url: string) {
  return withNats(url, (_nc, jsm) => jsm.consumers.info(STREAM, DURABLE));
}

await describeWithService('nats', 'NATS JetStream queue ingress', (url) => {
  const servers: TestServer[] = [];
  const clients: TestClient[] = [];

  async function start(env: Record<string, string> = {}): Promise<TestServer> {
    const s = await startServer({ PUSH_QUEUE_URL: url, ...SERVICE_ENV, ...env });
    servers.push(s);
    return s;
  }

  async function open(s: TestServer, user: string, query: Record<string, string | number> = {}) {
    const c = await TestClient.open(s.ws, { app: 'a', token: await s.token(user), ...query });
    clients.push(c);
    return c;
  }

  beforeEach(() => resetStream(url));
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    for (const s of servers.splice(0)) await s.stop();
  });

  it('messages published while the service is down are all delivered once it starts, in queue order', async () => {
    const first = await start(); // creates the stream and the durable consumer
    await first.stop();
    servers.length = 0;
    const all = pushes('down', 4, 50);
    await withNats(url, (_nc, _jsm, js) => publishAll(js, all));

    const s = await start();
    for (let u = 0; u < 4; u++) {
      const c = await open(s, `down-u${u}`);
      const ids = await receive(c, 50);
      expect(ids).toEqual(idsFor(`down-u${u}`, all));
    }
    // Acks follow durability asynchronously: wait for the broker to have them all.
    await waitUntil(async () => {
      const info = await consumerInfo(url);
      return info.num_pending === 0 && info.num_ack_pending === 0;
    });
  });

  it('a graceful stop while messages flow finishes what it took: nothing is left unacked for the next start', async () => {
    const s = await start();
    const all = pushes('gs', 30, 100);
    await withNats(url, (_nc, _jsm, js) => publishAll(js, all));
    await waitUntil(async () => (await consumerInfo(url)).ack_floor.stream_seq >= 300, 10_000, 5);
    await s.stop();
    servers.length = 0;
    const info = await consumerInfo(url);
    // Every delivery the node got was finished and acked (none stranded until the ack wait).
    expect(info.num_ack_pending).toBe(0);
    expect(info.ack_floor.stream_seq).toBe(info.delivered.stream_seq);
    expect(info.num_pending).toBeGreaterThan(0); // it really stopped mid-flow
  });

  it('Nats-Msg-Id is the message id when the body has none (a republish is a duplicate); a body id wins', async () => {
    // A 300 ms JetStream dedupe window, so the republish below gets past JetStream.
    await resetStream(url, { duplicateWindowMs: 300 });
    const s = await start();
    const c = await open(s, 'hdr');
    const body = JSON.stringify({ app: 'a', to: { users: ['hdr'] }, data: { n: 1 } });
    await withNats(url, async (_nc, _jsm, js) => {
      expect((await js.publish('push.in', body, { msgID: 'nmi-1' })).duplicate).toBe(false);
      // Republish the same Nats-Msg-Id and body once JetStream stores it again (its window passed).
      await waitUntil(
        async () => !(await js.publish('push.in', body, { msgID: 'nmi-1' })).duplicate,
        5000,
        100,
      );
      const withId = JSON.stringify({ app: 'a', id: 'body-1', to: { users: ['hdr'] }, data: {} });
      await js.publish('push.in', withId, { msgID: 'hdr-a' });
      await js.publish('push.in', withId, { msgID: 'hdr-b' }); // another header, same body id
      await js.publish('push.in', JSON.stringify({ app: 'a', id: 'last', to: { users: ['hdr'] }, data: {} }));
    });
    await c.next((f) => f.id === 'last');
    const ids = c.frames.filter((f) => f.op === 'message').map((f) => f.id);
    expect(ids).toEqual(['nmi-1', 'body-1', 'last']);
    const status = await s.api('GET', '/v1/messages/nmi-1');
    expect(status.body).toMatchObject({ id: 'nmi-1', data: { n: 1 } });
    const history = await s.api('GET', '/v1/users/hdr/messages');
    expect(history.body.messages.map((m: any) => m.id)).toEqual(['nmi-1', 'body-1', 'last']);
    const metrics = await fetch(`${s.http}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/push_messages_duplicate_total 2\b/);
  });

  it('malformed payloads land on push.dead with reason and original body, and never block the queue', async () => {
    const s = await start();
    const c = await open(s, 'mal');
    const notUtf8 = Uint8Array.from([0xff, 0xfe, 0x7b, 0x22]);
    const unknownApp = JSON.stringify({ app: 'nope', to: { users: ['mal'] }, data: {} });
    const unknownWithHeader = '{ "app": "nope", "to": {"users": ["mal"]} }';
    const invalid = JSON.stringify({ app: 'a', to: { users: [] }, data: {} });
    const conflicting = JSON.stringify({ app: 'a', id: 'c-1', to: { users: ['mal'] }, data: { v: 2 } });
    await withNats(url, async (_nc, _jsm, js) => {
      await publishAll(js, [
        { app: 'a', id: 'c-1', to: { users: ['mal'] }, data: { k: 1 } } as Push,
        'not json {',
        notUtf8,
        invalid,
        unknownApp,
        conflicting,
      ]);
      await js.publish('push.in', unknownWithHeader, { msgID: 'hdr-dead' });
      await js.publish(
        'push.in',
        JSON.stringify({ app: 'a', id: 'after-bad', to: { users: ['mal'] }, data: {} }),
      );
    });
    expect(await receive(c, 2)).toEqual(['c-1', 'after-bad']);

    const letters = await readDeadLetters(url, 6);
    const byBody = (b: string) => letters.find((l) => l.body === b);
    expect(byBody('not json {')).toMatchObject({ reason: 'bad_request', error: { code: 'bad_request' } });
    expect(letters.find((l) => l.body_base64)).toMatchObject({
      reason: 'bad_request',
      body_base64: Buffer.from(notUtf8).toString('base64'),
    });
    expect(byBody(invalid)).toMatchObject({ reason: 'bad_request', error: { code: 'bad_request' } });
    expect(byBody(unknownApp)).toMatchObject({ reason: 'unknown_app', error: { code: 'unauthorized' } });
    expect(byBody(conflicting)).toMatchObject({ reason: 'conflict', error: { code: 'conflict' } });
    // The header's id was merged for the push, but the dead letter keeps the body as published.
    expect(byBody(unknownWithHeader)).toMatchObject({ reason: 'unknown_app' });
    for (const l of letters) expect(typeof l.error.message).toBe('string');
    // Everything acked, dead letters included: nothing is left to redeliver.
    await waitUntil(async () => {
      const info = await consumerInfo(url);
      return info.num_pending === 0 && info.num_ack_pending === 0;
    });
  });

  it('a message delivered more than PUSH_QUEUE_MAX_DELIVER times is dead-lettered with reason max_deliveries', async () => {
    const s0 = await start();
    await s0.stop();
    servers.length = 0;
    const poison = JSON.stringify({ app: 'a', id: 'too-often', to: { users: ['md'] }, data: {} });
    await withNats(url, async (_nc, _jsm, js) => {
      await js.publish('push.in', poison);
      // Two deliveries to someone else that never acked (a crashing node, say), then one behind it.
      const consumer = await js.consumers.get(STREAM, DURABLE);
      for (let i = 1; i <= 2; i++) {
        const m = await consumer.next({ expires: 2000 });
        expect(m?.info.deliveryCount).toBe(i);
        m!.nak();
      }
      await js.publish(
        'push.in',
        JSON.stringify({ app: 'a', id: 'behind', to: { users: ['md'] }, data: {} }),
      );
    });
    const s = await start({ PUSH_QUEUE_MAX_DELIVER: '2' });
    const c = await open(s, 'md');
    expect(await receive(c, 1)).toEqual(['behind']);
    const [letter] = await readDeadLetters(url, 1);
    expect(letter).toMatchObject({ reason: 'max_deliveries', error: { code: 'unavailable' }, body: poison });
    expect((await s.api('GET', '/v1/messages/too-often')).status).toBe(404);
  });

  it('/readyz names the consumer; a wrong URL makes the start fail naming PUSH_QUEUE_URL', async () => {
    const s = await start();
    const ready = await fetch(`${s.http}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as any).checks).toMatchObject({ store: 'ok', nats: 'ok' });
    await expect(startServer({ PUSH_QUEUE_URL: 'nats://127.0.0.1:1', ...SERVICE_ENV })).rejects.toThrow(
      /PUSH_QUEUE_URL.*nats:\/\/127\.0\.0\.1:1/,
    );
  });

  it('ingest throughput: 10,000 messages to 100 users, until delivered (reported, not asserted)', async () => {
    const s = await start();
    const all = pushes('tp', 100, 100);
    const users = Array.from({ length: 100 }, (_, u) => `tp-u${u}`);
    const cs = await Promise.all(users.map((u) => open(s, u)));
    const t0 = performance.now();
    await withNats(url, async (_nc, _jsm, js) => {
      for (let i = 0; i < all.length; i += 1000) await publishAll(js, all.slice(i, i + 1000));
    });
    const received = await Promise.all(cs.map((c) => receive(c, 100)));
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `nats ingest: ${Math.round(all.length / seconds)} msg/s (${all.length} messages in ${seconds.toFixed(2)} s)`,
    );
    for (const [u, ids] of received.entries()) expect(ids).toEqual(idsFor(users[u]!, all));
  });
});

/** A nats-server of our own, to kill and restart on the same port and store directory. */
interface OwnNats {
  readonly url: string;
  start(): Promise<void>;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

async function startOwnNats(): Promise<OwnNats> {
  const port = await freePort();
  const dir = tempDir('mp-nats-');
  let child: ChildProcess | null = null;
  const start = () =>
    new Promise<void>((resolve, reject) => {
      const c = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child = c;
      let out = '';
      const onData = (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('Server is ready')) resolve();
      };
      c.stdout!.on('data', onData);
      c.stderr!.on('data', onData);
      c.once('exit', (code, signal) => reject(new Error(`nats-server exited (${code ?? signal}):\n${out}`)));
    });
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    start,
    kill,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const USERS = 50;
const PER_USER = 100;
const ACK_WAIT_MS = 2000;

describe.skipIf(!existsSync(NATS_SERVER))(
  'NATS JetStream queue ingress across crashes [own nats-server]',
  () => {
    let nats: OwnNats;
    let pub: NatsConnection;
    const clients: TestClient[] = [];
    beforeEach(async () => {
      nats = await startOwnNats();
      // Pre-created with a 2 s ack wait (the driver keeps an existing consumer): unacked
      // deliveries of a dead node come back in 2 s instead of 30.
      await resetStream(nats.url, { ackWaitMs: ACK_WAIT_MS });
      pub = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
    });
    afterEach(async () => {
      await Promise.all(clients.splice(0).map((c) => c.close()));
      await pub.close();
      await nats.stop();
    });

    async function openAll(s: TestServer, prefix: string, query: Record<string, string | number> = {}) {
      const cs: TestClient[] = [];
      for (let u = 0; u < USERS; u++) {
        cs.push(await TestClient.open(s.ws, { app: 'a', token: await s.token(`${prefix}-u${u}`), ...query }));
      }
      clients.push(...cs);
      return cs;
    }

    /**
     * Each user sees every message once after dedupe by id, in publish order; the store holds
     * no copies. Both are compared at once, so a failure tells whether the store's order (the
     * consumer) or only the delivered order (the gateway) went wrong.
     */
    async function expectExactlyOnceInOrder(s: TestServer, cs: TestClient[], prefix: string, all: Push[]) {
      for (let u = 0; u < USERS; u++) {
        const user = `${prefix}-u${u}`;
        const received = dedupe(await receive(cs[u]!, PER_USER));
        const history = await s.api('GET', `/v1/users/${user}/messages?after_seq=0&limit=1000`);
        const expected = idsFor(user, all);
        expect({ received, stored: history.body.messages.map((m: any) => m.id) }).toEqual({
          received: expected,
          stored: expected,
        });
      }
    }

    /** The first half is published at once, so the crash finds a backlog being worked through. */
    const HALF = (USERS * PER_USER) / 2;
    const ackFloor = async () => (await consumerInfo(nats.url)).ack_floor.stream_seq;

    it('a NATS server restart (kill -9) while 5,000 messages flow loses none; /readyz shows the outage', async () => {
      const s = await startServer({ PUSH_QUEUE_URL: nats.url, ...SERVICE_ENV });
      try {
        const cs = await openAll(s, 'nr');
        const all = pushes('nr', USERS, PER_USER);
        const js = jetstream(pub);
        await publishAll(js, all.slice(0, HALF));
        await waitUntil(async () => (await ackFloor()) >= 300, 10_000, 5);
        const floorBeforeKill = await ackFloor();
        await nats.kill();
        // The rest is published in order while the broker is away, retrying until it is back.
        const rest = publishInOrder(js, all.slice(HALF));
        const outage = await waitUntil(async () => {
          const r = await fetch(`${s.http}/readyz`);
          return r.status === 503 ? ((await r.json()) as any) : null;
        });
        // The part is named without the driver's error text (that goes to the log).
        expect(outage.checks.nats).toBe('unreachable');
        await nats.start();
        await rest;
        expect(floorBeforeKill).toBeLessThan(HALF); // the crash really came mid-flow
        await expectExactlyOnceInOrder(s, cs, 'nr', all);
        await waitUntil(async () => (await fetch(`${s.http}/readyz`)).status === 200);
      } finally {
        await Promise.all(clients.splice(0).map((c) => c.close()));
        await s.stop();
      }
    }, 45_000);

    it('a kill -9 of the service while 5,000 messages flow loses none; each user sees each once, in order', async () => {
      const dir = tempDir();
      const env = { PUSH_QUEUE_URL: nats.url, ...SERVICE_ENV };
      let node: ChildServer = await startChild(dir, env);
      try {
        const all = pushes('kn', USERS, PER_USER);
        const js = jetstream(pub);
        await publishAll(js, all.slice(0, HALF));
        // Kill while the node is busy: some of what it holds is durable but unacked, some not even that.
        await waitUntil(async () => (await ackFloor()) >= 300, 10_000, 5);
        node.child.kill('SIGKILL');
        await node.exited();
        const info = await consumerInfo(nats.url);
        expect(info.num_ack_pending + info.num_pending).toBeGreaterThan(0); // the crash really came mid-flow
        const rest = publishInOrder(js, all.slice(HALF));
        node = await startChild(dir, env);
        await rest;
        const cs = await openAll(node, 'kn', { since: 0 });
        await expectExactlyOnceInOrder(node, cs, 'kn', all);
      } finally {
        await Promise.all(clients.splice(0).map((c) => c.close()));
        await node.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    }, 45_000);
  },
);

// The contract every queue driver keeps; MySQL serves its max-deliveries test (a store that fails).
await describeWithServices(['nats', 'mysql'], 'NATS JetStream queue ingress: queue contract', ([url]) => {
  queueContract(queueBroker('nats', url!));
});
