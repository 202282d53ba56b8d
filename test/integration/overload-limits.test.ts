import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { signClientToken } from '../../src/auth/tokens.js';
import { TestClient } from '../helpers/client.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { APPS, startServer, type TestServer } from '../helpers/server.js';
import { waitUntil } from '../helpers/wait.js';

/** Opens a socket; resolves with the client, or with the HTTP status it was refused with. */
async function tryOpen(t: TestServer, token: string): Promise<TestClient | number> {
  try {
    return await TestClient.connect(`${t.ws}?app=a&token=${token}`);
  } catch (err) {
    const status = (err as { status?: number }).status;
    if (status === undefined) throw err;
    return status;
  }
}

describe('PUSH_MAX_CONNECTIONS: connections per process', () => {
  let t: TestServer;
  const clients: TestClient[] = [];
  beforeAll(async () => {
    t = await startServer({ PUSH_MAX_CONNECTIONS: '3' });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
  });
  afterAll(() => t.stop());

  it('past the cap a handshake gets 503 overloaded with Retry-After; concurrent ones never pass it', async () => {
    const first = await tryOpen(t, await t.token('cap-0'));
    expect(first).toBeInstanceOf(TestClient);
    clients.push(first as TestClient);
    // Eight handshakes at once for the two slots left: the rest are 503 before the upgrade,
    // or (having raced past the first check) closed 1013 right after it.
    const tokens = await Promise.all(Array.from({ length: 8 }, (_, i) => t.token(`cap-${i + 1}`)));
    const results = await Promise.all(tokens.map((tk) => tryOpen(t, tk)));
    const opened = results.filter((r): r is TestClient => r instanceof TestClient);
    clients.push(...opened);
    const refusals = results.filter((r) => typeof r === 'number');
    for (const r of refusals) expect(r).toBe(503);
    const closed1013 = await Promise.all(
      opened.map(async (c) => {
        const got = await Promise.race([c.next((f) => f.op === 'welcome').then(() => 0), c.closed()]);
        return got === 1013;
      }),
    );
    expect(opened.length - closed1013.filter(Boolean).length).toBe(2);
    const s = await RawSocket.open(t.port);
    await expect(s.upgrade(`/v1/ws?app=a&token=${tokens[0]}`)).rejects.toThrow(/503/);
    expect(s.received.toString()).toMatch(/retry-after: \d+/i);
    expect(s.received.toString()).toContain('"code":"overloaded"');
    s.destroy();
  });
});

describe('PUSH_APP_PUSH_RATE: messages per second per app', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ PUSH_APP_PUSH_RATE: '5' });
  });
  afterAll(() => t.stop());

  it('past the rate a push gets 429 rate_limited with Retry-After; another app is not affected', async () => {
    const started = Date.now();
    const responses = await Promise.all(
      Array.from({ length: 15 }, (_, i) =>
        fetch(`${t.http}/v1/push`, {
          method: 'POST',
          headers: { authorization: t.auth('a'), 'content-type': 'application/json' },
          body: JSON.stringify({ to: { users: ['r1'] }, data: { i } }),
        }),
      ),
    );
    const elapsed = (Date.now() - started) / 1000;
    const statuses = responses.map((r) => r.status);
    const limited = responses.find((r) => r.status === 429) ?? null;
    // The bucket holds one second (5), refilled at 5/s while the burst was being answered.
    expect(statuses.filter((s) => s === 202).length).toBeGreaterThanOrEqual(5);
    expect(statuses.filter((s) => s === 202).length).toBeLessThanOrEqual(5 + Math.ceil(elapsed * 5));
    expect(statuses.every((s) => s === 202 || s === 429)).toBe(true);
    expect(limited).not.toBeNull();
    expect(Number(limited!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await limited!.json()).toEqual({ error: { code: 'rate_limited', message: expect.any(String) } });
    expect((await t.push({ to: { users: ['r1'] }, data: {} }, 'b')).status).toBe(202);
  });
});

describe('load shedding when the event loop is stalled', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ PUSH_OVERLOAD_DELAY_MS: '200' });
  });
  afterAll(() => t.stop());

  const pushBytes = (auth: string) => {
    const body = JSON.stringify({ to: { users: ['shed'] }, data: {} });
    return `POST /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  };

  it('a push and a handshake that arrive during a stall get 503 overloaded with Retry-After, and the server recovers', async () => {
    // Without a stall the same request is accepted.
    expect(
      await waitUntil(async () => (await t.push({ to: { users: ['shed'] }, data: {} })).status === 202),
    ).toBe(true);

    const push = await RawSocket.open(t.port);
    const ws = await RawSocket.open(t.port);
    const token = await t.token('shed');
    push.write(pushBytes(t.auth()));
    ws.write(
      `GET /v1/ws?app=a&token=${token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    // The bytes are in the kernel; now the loop is blocked, as a long synchronous job would.
    const until = Date.now() + 700;
    while (Date.now() < until) {}

    const pushed = await push.until('\r\n\r\n');
    expect(pushed.startsWith('HTTP/1.1 503')).toBe(true);
    expect(pushed).toMatch(/retry-after: \d+/i);
    expect(pushed).toContain('"code":"overloaded"');
    const upgraded = await ws.until('\r\n\r\n');
    expect(upgraded.startsWith('HTTP/1.1 503')).toBe(true);
    push.destroy();
    ws.destroy();

    const recovered = await waitUntil(
      async () => (await t.push({ to: { users: ['shed'] }, data: {} })).status === 202,
    );
    expect(recovered).toBe(true);
  });
});

describe('per-user connection limit and topic cap', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ PUSH_MAX_CONNECTIONS_PER_USER: '3', PUSH_MAX_TOPICS_PER_CONNECTION: '2' });
  });
  afterAll(() => t.stop());

  it('concurrent handshakes of one user cannot pass the per-user limit on one node', async () => {
    const token = await t.token('crowd');
    const results = await Promise.all(Array.from({ length: 12 }, () => tryOpen(t, token)));
    const opened = results.filter((r): r is TestClient => r instanceof TestClient);
    expect(opened).toHaveLength(3);
    expect(results.filter((r) => r === 429)).toHaveLength(9);
    for (const c of opened) await c.close();
  });

  it('a subscribe past the topic cap gets error rate_limited; refresh drops topics the new token no longer allows', async () => {
    const token = await signClientToken({
      secret: APPS.a,
      userId: 'topics',
      ttlSeconds: 600,
      topics: ['t*'],
    });
    const c = await TestClient.open(t.ws, { app: 'a', token });
    expect((await c.request({ op: 'subscribe', topic: 't1' })).op).toBe('subscribed');
    expect((await c.request({ op: 'subscribe', topic: 't2' })).op).toBe('subscribed');
    const third = await c.request({ op: 'subscribe', topic: 't3' });
    expect(third).toMatchObject({ op: 'error', code: 'rate_limited' });
    // Subscribing again to a topic it holds is not a new one.
    expect((await c.request({ op: 'subscribe', topic: 't1' })).op).toBe('subscribed');

    const narrower = await signClientToken({
      secret: APPS.a,
      userId: 'topics',
      ttlSeconds: 900,
      topics: ['t1'],
    });
    c.send({ op: 'refresh', token: narrower, ref: 'rf' });
    const dropped = await c.next((f) => f.op === 'unsubscribed');
    expect(dropped.topic).toBe('t2');
    expect((await c.next((f) => f.ref === 'rf')).op).toBe('refreshed');
    // The freed slot may be used again, within what the new token allows.
    expect((await c.request({ op: 'subscribe', topic: 't3' })).op).toBe('error');
    await c.close();
  });
});
