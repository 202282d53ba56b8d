import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { TestClient } from '../helpers/client.js';
import { algNoneToken, expiredToken, hsToken, tokenWithoutExp } from '../helpers/raw-tokens.js';
import { APPS, startServer, type TestServer } from '../helpers/server.js';

/** What a refused handshake looked like: the HTTP status and the parsed error body. */
interface Refusal {
  status: number;
  body: { error?: { code?: string; message?: string } };
}

/** Tries a handshake that must be refused before the upgrade; fails the test if it is accepted. */
async function refusal(url: string, options: WebSocket.ClientOptions = {}): Promise<Refusal> {
  let client: TestClient;
  try {
    client = await TestClient.connect(url, options);
  } catch (err) {
    const e = err as Error & { status?: number; body?: string };
    if (e.status === undefined) throw err;
    let body: Refusal['body'] = {};
    try {
      body = JSON.parse(e.body ?? '');
    } catch {}
    return { status: e.status, body };
  }
  client.ws.terminate();
  throw new Error(`handshake to ${url} was accepted, expected a refusal`);
}

function wsUrl(t: TestServer, query: Record<string, string>, path = '/v1/ws'): string {
  return `ws://127.0.0.1:${t.port}${path}?${new URLSearchParams(query)}`;
}

describe('handshake: authentication and parameters', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  it('valid token → welcome with connection_id, user_id, device_id defaulting to the connection id, heartbeat_ms', async () => {
    const c = await TestClient.connect(wsUrl(t, { app: 'a', token: await t.token('hs-alice') }));
    const w = await c.next((f) => f.op === 'welcome');
    expect(typeof w.connection_id).toBe('string');
    expect(w.connection_id.length).toBeGreaterThan(0);
    expect(w.user_id).toBe('hs-alice');
    expect(w.device_id).toBe(w.connection_id);
    expect(Number.isInteger(w.heartbeat_ms)).toBe(true);
    expect(w.heartbeat_ms).toBeGreaterThan(0);
    await c.close();
  });

  it('?device= is echoed as device_id in welcome', async () => {
    const c = await TestClient.open(t.ws, {
      app: 'a',
      token: await t.token('hs-bob'),
      device: 'phone-1.a:b_c',
    });
    const w = c.frames.find((f) => f.op === 'welcome')!;
    expect(w.device_id).toBe('phone-1.a:b_c');
    expect(w.connection_id).not.toBe('phone-1.a:b_c');
    await c.close();
  });

  it('no token → 401 unauthorized', async () => {
    const r = await refusal(wsUrl(t, { app: 'a' }));
    expect(r.status).toBe(401);
    expect(r.body.error?.code).toBe('unauthorized');
    expect(typeof r.body.error?.message).toBe('string');
  });

  it('expired token → 401 unauthorized', async () => {
    const r = await refusal(wsUrl(t, { app: 'a', token: await expiredToken(APPS.a, 'hs-exp') }));
    expect(r.status).toBe(401);
    expect(r.body.error?.code).toBe('unauthorized');
  });

  it('alg:none token → 401 (only the app’s configured algorithm is accepted)', async () => {
    const r = await refusal(wsUrl(t, { app: 'a', token: algNoneToken('hs-none') }));
    expect(r.status).toBe(401);
    expect(r.body.error?.code).toBe('unauthorized');
  });

  it('token signed with a wrong key → 401', async () => {
    const r = await refusal(
      wsUrl(t, { app: 'a', token: await hsToken({ secret: 'not-the-secret', sub: 'hs-wk' }) }),
    );
    expect(r.status).toBe(401);
    expect(r.body.error?.code).toBe('unauthorized');
  });

  it('token of app b presented with app=a → 401 (nothing of one app is visible to another)', async () => {
    const r = await refusal(wsUrl(t, { app: 'a', token: await t.token('hs-cross', { app: 'b' }) }));
    expect(r.status).toBe(401);
    expect(r.body.error?.code).toBe('unauthorized');
    // ...while the same token is good for its own app.
    const c = await TestClient.open(t.ws, { app: 'b', token: await t.token('hs-cross', { app: 'b' }) });
    expect(c.frames[0]).toMatchObject({ op: 'welcome', user_id: 'hs-cross' });
    await c.close();
  });

  it('token without exp → 401 (exp is required)', async () => {
    const r = await refusal(wsUrl(t, { app: 'a', token: await tokenWithoutExp(APPS.a, 'hs-noexp') }));
    expect(r.status).toBe(401);
    expect(r.body.error?.code).toBe('unauthorized');
  });

  it('unknown app → 403 forbidden', async () => {
    const r = await refusal(wsUrl(t, { app: 'nosuchapp', token: await t.token('hs-x') }));
    expect(r.status).toBe(403);
    expect(r.body.error?.code).toBe('forbidden');
  });

  it('no app → 400 bad_request', async () => {
    const r = await refusal(wsUrl(t, { token: await t.token('hs-x') }));
    expect(r.status).toBe(400);
    expect(r.body.error?.code).toBe('bad_request');
  });

  it('invalid device → 400 bad_request', async () => {
    const token = await t.token('hs-x');
    for (const device of ['bad device!', 'x'.repeat(65)]) {
      const r = await refusal(wsUrl(t, { app: 'a', token, device }));
      expect(r.status, device).toBe(400);
      expect(r.body.error?.code).toBe('bad_request');
    }
  });

  it('since=abc → 400 bad_request', async () => {
    const r = await refusal(wsUrl(t, { app: 'a', token: await t.token('hs-x'), since: 'abc' }));
    expect(r.status).toBe(400);
    expect(r.body.error?.code).toBe('bad_request');
  });

  it('Authorization: Bearer header and auth-app-id header work instead of query parameters', async () => {
    const token = await t.token('hs-headers');
    const c = await TestClient.connect(t.ws, {
      headers: { authorization: `Bearer ${token}`, 'auth-app-id': 'a' },
    });
    const w = await c.next((f) => f.op === 'welcome');
    expect(w.user_id).toBe('hs-headers');
    await c.close();
    // A bad bearer in the header is refused like a bad ?token=.
    const r = await refusal(t.ws, { headers: { authorization: 'Bearer not.a.jwt', 'auth-app-id': 'a' } });
    expect(r.status).toBe(401);
  });

  it('seed URL /message-push/v1/message?Authorization=Bearer pc:JWT&auth-app-id=a connects with platform "pc" in presence', async () => {
    const token = await t.token('hs-seed');
    const url = wsUrl(
      t,
      { Authorization: `Bearer pc:${token}`, 'auth-app-id': 'a' },
      '/message-push/v1/message',
    );
    const c = await TestClient.connect(url);
    const w = await c.next((f) => f.op === 'welcome');
    expect(w.user_id).toBe('hs-seed');
    const p = await t.api('GET', '/v1/users/hs-seed/presence');
    expect(p.status).toBe(200);
    expect(p.body.online).toBe(true);
    expect(p.body.connections).toHaveLength(1);
    expect(p.body.connections[0]).toMatchObject({ connection_id: w.connection_id, platform: 'pc' });
    await c.close();
  });

  it('offering only an unsupported subprotocol → 400', async () => {
    const r = await refusal(wsUrl(t, { app: 'a', token: await t.token('hs-proto') }), {
      headers: { 'sec-websocket-protocol': 'push.v9.xml' },
    });
    expect(r.status).toBe(400);
    expect(r.body.error?.code).toBe('bad_request');
  });

  it('offering an unknown subprotocol and push.v1.json → the server picks push.v1.json', async () => {
    // The server takes the first offered subprotocol it speaks (push.v2.bin first would pick v2).
    const ws = new WebSocket(wsUrl(t, { app: 'a', token: await t.token('hs-proto') }), [
      'push.v3.bin',
      'push.v1.json',
    ]);
    const welcome = await new Promise<Record<string, unknown>>((resolve, reject) => {
      ws.once('message', (data) => resolve(JSON.parse(data.toString())));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
    expect(ws.protocol).toBe('push.v1.json');
    expect(welcome).toMatchObject({ op: 'welcome', user_id: 'hs-proto' });
    const closed = new Promise((resolve) => ws.once('close', resolve));
    ws.close(1000);
    await closed;
  });

  it('token expiring during a connection → close 4001', async () => {
    const short = await t.token('hs-expiring', { ttlSeconds: 2 });
    const c = await TestClient.open(t.ws, { app: 'a', token: short });
    expect(c.closeCode).toBeNull();
    expect(await c.closed(6_000)).toBe(4001);
  });

  it('refresh with a newer token → refreshed{exp,ref}; the connection outlives the old token (guarantee: refreshed connections are not closed with 4001)', async () => {
    const user = 'hs-refresh';
    const short = await t.token(user, { ttlSeconds: 2 });
    const a = await TestClient.open(t.ws, { app: 'a', token: short, device: 'dev-a' });
    const b = await TestClient.open(t.ws, { app: 'a', token: short, device: 'dev-b' });

    const long = await t.token(user, { ttlSeconds: 3600 });
    const before = Math.floor(Date.now() / 1000);
    a.send({ op: 'refresh', token: long, ref: 'rf-1' });
    const refreshed = await a.next((f) => f.ref === 'rf-1');
    expect(refreshed.op).toBe('refreshed');
    expect(Number.isInteger(refreshed.exp)).toBe(true);
    expect(refreshed.exp).toBeGreaterThanOrEqual(before + 3500);
    expect(refreshed.exp).toBeLessThanOrEqual(before + 3601);

    // B shares A's original token: its 4001 is the clock saying the old token is past.
    expect(await b.closed(6_000)).toBe(4001);
    const res = await t.push({ to: { users: [user] }, data: { after: 'expiry' } });
    expect(res.status).toBe(202);
    const m = (await a.messages(1))[0]!;
    expect(m).toMatchObject({ id: res.body.id, data: { after: 'expiry' } });
    expect(a.closeCode).toBeNull();
    await a.close();
  });

  it('refresh with another user’s token, another app’s token or garbage → error unauthorized with the ref; connection unchanged', async () => {
    const user = 'hs-refresh-bad';
    const c = await TestClient.open(t.ws, { app: 'a', token: await t.token(user) });
    const attempts: [string, string][] = [
      ['other-user', await t.token('hs-someone-else')],
      ['other-app', await t.token(user, { app: 'b' })],
      ['garbage', 'garbage.not-a.jwt'],
      ['expired', await expiredToken(APPS.a, user)],
    ];
    for (const [ref, token] of attempts) {
      c.send({ op: 'refresh', token, ref });
      const reply = await c.next((f) => f.ref === ref);
      expect(reply, ref).toMatchObject({ op: 'error', code: 'unauthorized', ref });
    }
    expect(await c.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    expect(c.closeCode).toBeNull();
    // Still the same user, still receiving.
    const res = await t.push({ to: { users: [user] }, data: 1 });
    const m = (await c.messages(1))[0]!;
    expect(m.id).toBe(res.body.id);
    await c.close();
  });
});

describe('handshake: per-user connection limit', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ PUSH_MAX_CONNECTIONS_PER_USER: '2' });
  });
  afterAll(() => t.stop());

  it('PUSH_MAX_CONNECTIONS_PER_USER=2 → the third connection of a user gets 429 rate_limited; other users are unaffected', async () => {
    const token = await t.token('lim-user');
    const c1 = await TestClient.open(t.ws, { app: 'a', token });
    const c2 = await TestClient.open(t.ws, { app: 'a', token });
    const r = await refusal(wsUrl(t, { app: 'a', token }));
    expect(r.status).toBe(429);
    expect(r.body.error?.code).toBe('rate_limited');

    const other = await TestClient.open(t.ws, { app: 'a', token: await t.token('lim-other') });
    expect(other.frames[0]?.op).toBe('welcome');

    // Closing one frees a slot.
    await c1.close();
    const c3 = await TestClient.open(t.ws, { app: 'a', token });
    expect(c3.frames[0]?.op).toBe('welcome');
    await Promise.all([c2.close(), c3.close(), other.close()]);
  });
});

describe('handshake: per-IP handshake rate', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ PUSH_HANDSHAKES_PER_SECOND: '3' });
  });
  afterAll(() => t.stop());

  // Each test dials from its own loopback address, so each has its own per-IP bucket.
  it('PUSH_HANDSHAKES_PER_SECOND=3 → the 4th handshake within the same second gets 429 rate_limited', async () => {
    const localAddress = '127.0.0.2';
    const token = await t.token('rate-user');
    const url = wsUrl(t, { app: 'a', token });
    const clients = await Promise.all([1, 2, 3].map(() => TestClient.connect(url, { localAddress })));
    const r = await refusal(url, { localAddress });
    expect(r.status).toBe(429);
    expect(r.body.error?.code).toBe('rate_limited');
    // The limit is per IP: another address is still welcome.
    const elsewhere = await TestClient.connect(url, { localAddress: '127.0.0.4' });
    expect((await elsewhere.next((f) => f.op === 'welcome')).user_id).toBe('rate-user');
    await Promise.all([...clients, elsewhere].map((c) => c.close()));
  });

  it('refused handshakes count against the per-IP rate: 3 bad-token attempts, then a good token → 429', async () => {
    const localAddress = '127.0.0.3';
    const bad = wsUrl(t, { app: 'a', token: 'bad.token.here' });
    const refusals = await Promise.all([1, 2, 3].map(() => refusal(bad, { localAddress })));
    expect(refusals.map((r) => r.status)).toEqual([401, 401, 401]);
    const r = await refusal(wsUrl(t, { app: 'a', token: await t.token('rate-user2') }), { localAddress });
    expect(r.status).toBe(429);
    expect(r.body.error?.code).toBe('rate_limited');
  });
});
