import { rmSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startChild } from '../helpers/child-server.js';
import { TestClient } from '../helpers/client.js';
import { startServer, type TestServer, tempDir } from '../helpers/server.js';
import { waitUntil } from '../helpers/wait.js';
import { verifySignature, WebhookReceiver } from '../helpers/webhook-receiver.js';

const FAST = {
  PUSH_WEBHOOK_ALLOW_PRIVATE: 'true',
  PUSH_WEBHOOK_POLL_MS: '50',
  PUSH_WEBHOOK_TIMEOUT_MS: '600',
  PUSH_RESEND_MS: '60s',
};

const metric = async (t: TestServer, name: string) => {
  const text = await (await fetch(`${t.http}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
};

/** Offline hand-off webhook against a real local HTTP receiver. */
describe('offline hand-off webhook', () => {
  let t: TestServer;
  let rx: WebhookReceiver;

  beforeAll(async () => {
    rx = await WebhookReceiver.start();
    t = await startServer(FAST);
  });
  afterEach(() => {
    rx.behaviour = () => 200;
  });
  afterAll(async () => {
    await t.stop();
    await rx.stop();
  });

  const setHook = async (after_ms: number, app: 'a' | 'b' = 'a') => {
    const r = await t.api('PUT', '/v1/webhook', { url: rx.url, after_ms }, app);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body as { url: string; after_ms: number; secret: string };
  };
  const statusOf = async (id: string) =>
    (await t.api('GET', `/v1/messages/${id}`)).body.recipients as { user: string; webhook?: string }[];

  it('config: PUT generates a ≥256-bit secret, keeps it on update, rotates on request; GET; DELETE → 204', async () => {
    const first = await setHook(1000, 'b');
    expect(first).toMatchObject({ url: rx.url, after_ms: 1000 });
    expect(Buffer.from(first.secret.replace(/^whsec_/, ''), 'base64url').length).toBeGreaterThanOrEqual(32);
    expect((await t.api('GET', '/v1/webhook', undefined, 'b')).body).toEqual(first);
    const updated = await setHook(5, 'b');
    expect(updated.secret).toBe(first.secret);
    const rotated = await t.api('PUT', '/v1/webhook', { url: rx.url, rotate_secret: true }, 'b');
    expect(rotated.body.after_ms).toBe(30000);
    expect(rotated.body.secret).not.toBe(first.secret);
    expect((await t.api('DELETE', '/v1/webhook', undefined, 'b')).status).toBe(204);
    expect((await t.api('GET', '/v1/webhook', undefined, 'b')).status).toBe(404);
    expect((await t.api('DELETE', '/v1/webhook', undefined, 'b')).status).toBe(204);
    for (const bad of [
      { url: 'ftp://example.com/x' },
      { url: 'not a url' },
      { url: rx.url, after_ms: -1 },
      {},
    ]) {
      const r = await t.api('PUT', '/v1/webhook', bad, 'b');
      expect(r.status, JSON.stringify(bad)).toBe(400);
      expect(r.body.error.code).toBe('bad_request');
    }
  });

  it('signed POST per user with every due message batched; acked messages left out; status field and metrics', async () => {
    const hook = await setHook(0);
    const sentBefore = await metric(t, 'push_webhook_sent_total');
    const batch = await t.api('POST', '/v1/push/batch', {
      messages: [
        { id: 'wb-1', to: { users: ['wb-user'] }, data: { n: 1 } },
        { id: 'wb-2', to: { users: ['wb-user'] }, data: { n: 2 } },
        { id: 'wb-3', to: { users: ['wb-user', 'wb-other'] }, data: { n: 3 } },
      ],
    });
    expect(batch.status).toBe(200);
    await rx.until((r) => r.filter((h) => h.body.user.startsWith('wb-')).length >= 2);
    const mine = rx.received.filter((h) => h.body.user.startsWith('wb-'));
    const forUser = mine.find((h) => h.body.user === 'wb-user')!;
    expect(forUser.body).toEqual({
      app: 'a',
      user: 'wb-user',
      messages: [
        expect.objectContaining({ seq: 1, id: 'wb-1', type: 'message', data: { n: 1 } }),
        expect.objectContaining({ seq: 2, id: 'wb-2', data: { n: 2 } }),
        expect.objectContaining({ seq: 3, id: 'wb-3', data: { n: 3 } }),
      ],
    });
    expect(mine.find((h) => h.body.user === 'wb-other')!.body.messages.map((m) => m.id)).toEqual(['wb-3']);
    for (const h of mine) {
      expect(verifySignature(h.raw, h.headers['x-push-signature'], hook.secret)).toBe(true);
      expect(verifySignature(h.raw, h.headers['x-push-signature'], `${hook.secret}x`)).toBe(false);
      expect(h.headers['x-push-delivery']).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect(new Set(mine.map((h) => h.headers['x-push-delivery'])).size).toBe(mine.length);
    expect(await statusOf('wb-3')).toEqual([
      expect.objectContaining({ user: 'wb-other', webhook: 'delivered' }),
      expect.objectContaining({ user: 'wb-user', webhook: 'delivered' }),
    ]);
    expect(await metric(t, 'push_webhook_sent_total')).toBe(sentBefore + 2);
    expect(await metric(t, 'push_webhook_seconds_count')).toBeGreaterThanOrEqual(2);

    // after_ms 0 hands off only while no device is online; the online user gets it by socket.
    const token = await t.token('wb-online');
    const c = await TestClient.open(t.ws, { app: 'a', token });
    await t.push({ id: 'wb-online-1', to: { users: ['wb-online'] }, data: 1 });
    await c.messages(1);
    await t.push({ id: 'wb-marker', to: { users: ['wb-marker'] }, data: 1 });
    await rx.until((r) => r.some((h) => h.body.user === 'wb-marker'));
    expect(rx.ids()).not.toContain('wb-online-1');
    expect(await statusOf('wb-online-1')).toEqual([
      expect.not.objectContaining({ webhook: expect.anything() }),
    ]);
    await c.close();

    // A message acked before its turn is left out of the hand-off.
    await setHook(800);
    const d = await TestClient.open(t.ws, { app: 'a', token: await t.token('wb-acker') });
    await t.push({ id: 'wb-acked', to: { users: ['wb-acker'] }, data: 1 });
    await t.push({ id: 'wb-unacked', to: { users: ['wb-acker'] }, data: 2 });
    await d.messages(2);
    await d.request({ op: 'ack', ids: ['wb-acked'] });
    await d.close();
    await rx.until((r) => r.some((h) => h.body.user === 'wb-acker'));
    const acker = rx.received.filter((h) => h.body.user === 'wb-acker');
    expect(acker.flatMap((h) => h.body.messages.map((m) => m.id))).toEqual(['wb-unacked']);
    expect(await statusOf('wb-acked')).toEqual([expect.not.objectContaining({ webhook: expect.anything() })]);
  });

  it('retries after a 5xx and after a timeout (the receiver hangs), with backoff, until delivered', async () => {
    await setHook(0);
    const failedBefore = await metric(t, 'push_webhook_failed_total');
    const seen = new Map<string, number>();
    rx.behaviour = (h) => {
      const n = (seen.get(h.body.user) ?? 0) + 1;
      seen.set(h.body.user, n);
      if (h.body.user === 'wr-5xx' && n === 1) return 503;
      if (h.body.user === 'wr-hang' && n === 1) return 'hang';
      return 200;
    };
    await t.push({ id: 'wr-a', to: { users: ['wr-5xx'] }, data: 1 });
    await t.push({ id: 'wr-b', to: { users: ['wr-hang'] }, data: 1 });
    await rx.until((r) => ['wr-5xx', 'wr-hang'].every((u) => r.filter((h) => h.body.user === u).length >= 2));
    for (const u of ['wr-5xx', 'wr-hang']) {
      const tries = rx.received.filter((h) => h.body.user === u);
      expect(tries.map((h) => h.body.messages.map((m) => m.id))).toEqual([
        [`wr-${u === 'wr-5xx' ? 'a' : 'b'}`],
        [`wr-${u === 'wr-5xx' ? 'a' : 'b'}`],
      ]);
      // First retry: between half and all of 1 s after the failure (jittered exponential backoff).
      expect(tries[1]!.at - tries[0]!.at).toBeGreaterThanOrEqual(450);
    }
    const hang = rx.received.filter((h) => h.body.user === 'wr-hang');
    expect(hang[1]!.at - hang[0]!.at).toBeGreaterThanOrEqual(600 + 450); // the timeout, then the backoff
    // Recording the outcome follows the answer; the status shows it within a poll.
    await waitUntil(
      async () =>
        (await statusOf('wr-a'))[0]!.webhook === 'delivered' &&
        (await statusOf('wr-b'))[0]!.webhook === 'delivered',
    );
    expect(await metric(t, 'push_webhook_failed_total')).toBe(failedBefore + 2);
  });

  it('a message past its ttl is failed, not retried forever', async () => {
    await setHook(0);
    rx.behaviour = (h) => (h.body.user === 'wt-user' ? 500 : 200);
    await t.push({ id: 'wt-1', to: { users: ['wt-user'] }, data: 1, ttl: 2 });
    // The ttl is time on the server: poll the status until the hand-off gives up.
    await waitUntil(async () => (await statusOf('wt-1'))[0]!.webhook === 'failed', 10_000, 100);
    const tries = rx.received.filter((h) => h.body.user === 'wt-user').length;
    expect(tries).toBeGreaterThanOrEqual(1);
    expect(tries).toBeLessThanOrEqual(3); // 1 s, 2 s backoff inside a 2 s ttl
  });

  it('recalled messages are not handed off', async () => {
    await setHook(600);
    await t.push({ id: 'wv-gone', to: { users: ['wv-user'] }, data: 1 });
    await t.push({ id: 'wv-kept', to: { users: ['wv-user'] }, data: 2 });
    expect((await t.api('DELETE', '/v1/messages/wv-gone')).body).toEqual({ id: 'wv-gone', revoked: 1 });
    await rx.until((r) => r.some((h) => h.body.user === 'wv-user'));
    expect(
      rx.received.filter((h) => h.body.user === 'wv-user').flatMap((h) => h.body.messages.map((m) => m.id)),
    ).toEqual(['wv-kept']);
  });
});

describe('webhook URL checks without PUSH_WEBHOOK_ALLOW_PRIVATE', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  it('refuses loopback, private, link-local and names resolving to them (400)', async () => {
    for (const url of [
      'http://127.0.0.1:9/x',
      'http://localhost/x',
      'http://10.1.2.3/x',
      'http://192.168.0.10/x',
      'http://169.254.169.254/latest/meta-data',
      'http://[::1]/x',
      'http://[::ffff:127.0.0.1]/x',
      'http://0.0.0.0/x',
    ]) {
      const r = await t.api('PUT', '/v1/webhook', { url, after_ms: 0 });
      expect(r.status, url).toBe(400);
      expect(r.body.error.code).toBe('bad_request');
    }
    expect((await t.api('GET', '/v1/webhook')).status).toBe(404);
  });
});

describe('webhook schedule survives kill -9 (child process)', () => {
  let rx: WebhookReceiver;
  const dir = tempDir();
  beforeAll(async () => {
    rx = await WebhookReceiver.start();
  });
  afterAll(async () => {
    await rx.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a hand-off due while the server is down, and one cut mid-POST, are sent after the restart', async () => {
    const env = { ...FAST, PUSH_WEBHOOK_TIMEOUT_MS: '500' };
    let node = await startChild(dir, env);
    await node.api('PUT', '/v1/webhook', { url: rx.url, after_ms: 0 });
    // The first POST hangs: the node dies while it is in flight.
    rx.behaviour = (_h, i) => (i === 0 ? 'hang' : 200);
    await node.push({ id: 'k-1', to: { users: ['k-user'] }, data: 1 });
    await rx.until((r) => r.length === 1);
    node.child.kill('SIGKILL');
    await node.exited();
    // Due later, while nothing runs: only the durable schedule knows about it.
    node = await startChild(dir, { ...env, PUSH_WEBHOOK_POLL_MS: '60000' });
    await node.api('PUT', '/v1/webhook', { url: rx.url, after_ms: 300 });
    await node.push({ id: 'k-2', to: { users: ['k-later'] }, data: 2 });
    node.child.kill('SIGKILL');
    await node.exited();
    node = await startChild(dir, env);
    try {
      await rx.until((r) =>
        ['k-1', 'k-2'].every((id) => r.slice(1).some((h) => h.body.messages.some((m) => m.id === id))),
      );
      const status = await node.api('GET', '/v1/messages/k-1');
      expect(status.body.recipients[0].webhook).toBe('delivered');
    } finally {
      await node.stop();
    }
  });
});
