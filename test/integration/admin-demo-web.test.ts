import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';

const ADMIN = 'admin-token-for-tests-0123';

async function call(base: string, method: string, path: string, body?: unknown, token?: string) {
  const res = await fetch(base + path, {
    method,
    redirect: 'manual',
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: any = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed, type: res.headers.get('content-type'), headers: res.headers };
}

describe('admin API and dashboard: off without PUSH_ADMIN_TOKEN, demo off without demo mode', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.stop());

  it('admin routes answer 403 naming the setting; the dashboard page says it is disabled', async () => {
    const r = await call(s.http, 'GET', '/v1/admin/stats', undefined, ADMIN);
    expect(r.status).toBe(403);
    expect(r.body.error.message).toContain('PUSH_ADMIN_TOKEN');
    const page = await call(s.http, 'GET', '/dashboard');
    expect(page.status).toBe(403);
    expect(page.body.error).toMatchObject({
      code: 'forbidden',
      message: expect.stringContaining('PUSH_ADMIN_TOKEN'),
    });
  });

  it('demo endpoints answer 404 with how to mint a token instead', async () => {
    const r = await call(s.http, 'POST', '/v1/demo/token', { user: 'x' });
    expect(r.status).toBe(404);
    expect(r.body.error.message).toContain('PUSH_DEMO_TOKENS');
    expect((await call(s.http, 'POST', '/v1/demo/push', { to: { all: true } })).status).toBe(404);
  });

  it('serves the SDK bundle but no demo page and no way to it outside demo mode', async () => {
    const sdk = await call(s.http, 'GET', '/client.js');
    expect(sdk.status).toBe(200);
    expect(sdk.type).toContain('text/javascript');
    expect(sdk.body).toContain('MessagePush');
    for (const path of ['/demo', '/demo/demo.js', '/']) {
      const r = await call(s.http, 'GET', path);
      expect(r.status).toBe(404);
      expect(r.body).toEqual({ error: { code: 'not_found', message: expect.any(String) } });
    }
  });
});

describe('admin API with PUSH_ADMIN_TOKEN, demo endpoints with PUSH_DEMO_TOKENS', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({
      PUSH_ADMIN_TOKEN: ADMIN,
      PUSH_DEMO_TOKENS: 'true',
      PUSH_APPS: 'a:secret-a-0123456789abcdef,b:secret-b-0123456789abcdef,demo:demo-secret-0123456789abcdef',
    });
  });
  afterAll(() => s.stop());

  it('refuses a missing or wrong admin token with 401', async () => {
    expect((await call(s.http, 'GET', '/v1/admin/stats')).status).toBe(401);
    expect((await call(s.http, 'GET', '/v1/admin/stats', undefined, `${ADMIN}x`)).status).toBe(401);
    expect((await call(s.http, 'GET', '/v1/admin/stats', undefined, ADMIN)).status).toBe(200);
    const dashboard = await call(s.http, 'GET', '/dashboard');
    expect(dashboard.status).toBe(200);
    expect(dashboard.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
  });

  it('stats count connections by platform and messages in and out', async () => {
    const c = await TestClient.open(s.ws, {
      app: 'a',
      token: await s.token('stat-user', { platform: 'pc' }),
    });
    await s.push({ to: { users: ['stat-user'] }, data: 1 });
    await c.messages(1);
    const r = await call(s.http, 'GET', '/v1/admin/stats', undefined, ADMIN);
    expect(r.body.connections).toEqual({ total: 1, byPlatform: { pc: 1 } });
    expect(r.body.totals.in).toBeGreaterThanOrEqual(1);
    expect(r.body.totals.out).toBeGreaterThanOrEqual(1);
    expect(Object.keys(r.body.series).sort()).toEqual([
      'acks',
      'connections',
      'failures',
      'in',
      'out',
      'retries',
      't',
    ]);
    await c.close();
  });

  it('looks a user up, kicks them (close 4003), sends as an app and lists recent messages with statuses', async () => {
    const c = await TestClient.open(s.ws, {
      app: 'b',
      token: await s.token('kim', { app: 'b', platform: 'web' }),
    });
    const presence = await call(s.http, 'GET', '/v1/admin/presence?app=b&user=kim', undefined, ADMIN);
    expect(presence.body).toMatchObject({ app: 'b', user: 'kim', online: true });
    expect(presence.body.connections).toHaveLength(1);
    expect(presence.body.connections[0].platform).toBe('web');

    const sent = await call(
      s.http,
      'POST',
      '/v1/admin/push',
      { app: 'b', id: 'adm-1', to: { users: ['kim'] }, data: { hi: 1 } },
      ADMIN,
    );
    expect(sent.status).toBe(202);
    const [m] = await c.messages(1);
    expect(m).toMatchObject({ id: 'adm-1', data: { hi: 1 } });
    expect((await c.request({ op: 'ack', ids: ['adm-1'] })).op).toBe('ok');

    const kicked = await call(s.http, 'DELETE', '/v1/admin/connections?app=b&user=kim', undefined, ADMIN);
    expect(kicked.body).toEqual({ closed: 1 });
    expect(await c.closed()).toBe(4003);

    const recent = await call(s.http, 'GET', '/v1/admin/messages?app=b&limit=5', undefined, ADMIN);
    expect(recent.body.messages[0]).toMatchObject({
      app: 'b',
      id: 'adm-1',
      recipients_total: 1,
      recipients: [{ user: 'kim', seq: 1, status: 'acked' }],
    });
    expect((await call(s.http, 'GET', '/v1/admin/apps', undefined, ADMIN)).body.apps).toEqual([
      'a',
      'b',
      'demo',
    ]);
    expect(
      (await call(s.http, 'POST', '/v1/admin/push', { app: 'nope', to: { all: true } }, ADMIN)).status,
    ).toBe(400);
    expect((await call(s.http, 'GET', '/v1/admin/messages?limit=9999', undefined, ADMIN)).status).toBe(400);
  });

  it('serves the demo page and its assets; nothing outside them', async () => {
    const demo = await call(s.http, 'GET', '/demo');
    expect(demo.status).toBe(200);
    expect(demo.body).toContain('<script src="/client.js">');
    expect(demo.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect((await call(s.http, 'GET', '/demo/demo.js')).status).toBe(200);
    expect((await call(s.http, 'GET', '/demo/..%2F..%2Fpackage.json')).status).toBe(404);
    expect((await call(s.http, 'GET', '/demo/nothing.js')).status).toBe(404);
    const root = await call(s.http, 'GET', '/');
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/demo');
  });

  it('mints a short-lived token for the app demo only, which connects, and pushes only into demo', async () => {
    const minted = await call(s.http, 'POST', '/v1/demo/token', { user: 'dee' });
    expect(minted.status).toBe(200);
    expect(minted.body).toMatchObject({ app: 'demo', user: 'dee' });
    expect(minted.body.exp - Date.now() / 1000).toBeLessThanOrEqual(600);
    const guest = await call(s.http, 'POST', '/v1/demo/token', {});
    expect(guest.body.user).toMatch(/^guest-[0-9a-f]{6}$/);

    const c = await TestClient.open(s.ws, { app: 'demo', token: minted.body.token });
    // The token is for demo only: app a refuses it.
    await expect(TestClient.open(s.ws, { app: 'a', token: minted.body.token })).rejects.toMatchObject({
      status: 401,
    });
    const pushed = await call(s.http, 'POST', '/v1/demo/push', {
      to: { users: ['dee'] },
      data: { text: 'hi' },
    });
    expect(pushed.status).toBe(202);
    const [m] = await c.messages(1);
    expect(m).toMatchObject({ seq: 1, data: { text: 'hi' } });
    const sub = await c.request({ op: 'subscribe', topic: 'demo:news' });
    expect(sub.op).toBe('subscribed');
    expect((await c.request({ op: 'subscribe', topic: 'other' })).code).toBe('forbidden');
    const refused = await call(s.http, 'POST', '/v1/demo/push', {
      to: { devices: [{ user: 'dee', device: 'd' }] },
    });
    expect(refused.status).toBe(400);
    expect((await call(s.http, 'POST', '/v1/demo/token', { user: '' + '\u0001' })).status).toBe(400);
    await c.close();
  });
});

describe('admin token guesses are throttled per address', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({ PUSH_ADMIN_TOKEN: ADMIN });
  });
  afterAll(() => s.stop());

  it('after 10 wrong tokens in a minute the address gets 429 with Retry-After, even with the right token', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++)
      statuses.push(
        (await call(s.http, 'GET', '/v1/admin/stats', undefined, `guess-${i}-xxxxxxxxxxxx`)).status,
      );
    expect(statuses.slice(0, 10).every((x) => x === 401)).toBe(true);
    expect(statuses[10]).toBe(429);
    const right = await call(s.http, 'GET', '/v1/admin/stats', undefined, ADMIN);
    expect(right.status).toBe(429);
    expect(Number(right.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(right.body.error.code).toBe('rate_limited');
  });
});
