import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { APPS, startServer, type TestServer } from '../helpers/server.js';
import { waitUntil } from '../helpers/wait.js';

const ADMIN = 'admin-token-0123456789abcdef';
const DEMO_SECRET = 'demo-secret-0123456789abcdef';

interface Operation {
  tags?: string[];
  summary?: string;
  security?: Record<string, string[]>[];
  responses: Record<string, { content?: Record<string, { schema: object }> }>;
}
type Spec = { openapi: string; paths: Record<string, Record<string, Operation>> };

interface Call {
  method: string;
  /** The path template as in the document, e.g. /v1/users/{user}/messages. */
  route: string;
  url: string;
  headers?: Record<string, string>;
  body?: unknown;
}

/**
 * Every route of /openapi.json is called, successfully and with an error where one is cheap
 * to provoke, and each real reply (status, content type, body) must validate against the
 * document. A route added without a call here fails the coverage check.
 */
describe('OpenAPI document matches the real replies', () => {
  let srv: TestServer;
  let spec: Spec;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const exercised = new Set<string>();
  let messageId = '';
  let bearer = '';

  beforeAll(async () => {
    srv = await startServer({
      PUSH_APPS: `a:${APPS.a},b:${APPS.b},demo:${DEMO_SECRET}`,
      PUSH_ADMIN_TOKEN: ADMIN,
      PUSH_DEMO_TOKENS: 'true',
      // The webhook below points at loopback, refused otherwise.
      PUSH_WEBHOOK_ALLOW_PRIVATE: 'true',
    });
    const res = await fetch(`${srv.http}/openapi.json`);
    expect(res.status).toBe(200);
    spec = (await res.json()) as Spec;
    bearer = await srv.token('alice');
    const pushed = await srv.push({ to: { users: ['alice'] }, data: { n: 1 }, ttl: 600 });
    expect(pushed.status).toBe(202);
    messageId = pushed.body.id;
    await srv.push({ to: { topic: 'room:1' }, data: { t: 1 } });
  });
  afterAll(() => srv?.stop());

  /** Calls the route and validates the reply against the document's response for its status. */
  async function check(call: Call): Promise<{ status: number; body: unknown }> {
    exercised.add(`${call.method} ${call.route}`);
    const op = spec.paths[call.route]?.[call.method.toLowerCase()];
    expect(op, `${call.method} ${call.route} is not in /openapi.json`).toBeDefined();
    const res = await fetch(srv.http + call.url, {
      method: call.method,
      headers: {
        ...(call.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...call.headers,
      },
      ...(call.body !== undefined ? { body: JSON.stringify(call.body) } : {}),
    });
    const text = await res.text();
    const status = String(res.status);
    const response = op!.responses[status] ?? op!.responses[`${status[0]}XX`] ?? op!.responses.default;
    expect(response, `${call.method} ${call.url}: status ${status} is not documented`).toBeDefined();
    if (res.status === 204) {
      // No content: neither the reply nor the document may carry a body.
      expect(text).toBe('');
      expect(response!.content, `${call.method} ${call.url}: 204 documents a body`).toBeUndefined();
      return { status: res.status, body: undefined };
    }
    const type = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
    const media = response!.content?.[type];
    expect(media, `${call.method} ${call.url}: ${status} ${type} is not documented`).toBeDefined();
    let body: unknown = text;
    if (type === 'application/json') {
      body = JSON.parse(text);
      const validate = ajv.compile(media!.schema);
      const ok = validate(body);
      expect(ok, `${call.method} ${call.url} ${status}: ${ajv.errorsText(validate.errors)}\n${text}`).toBe(
        true,
      );
    }
    return { status: res.status, body };
  }

  async function expectStatus(call: Call, status: number): Promise<{ status: number; body: unknown }> {
    const reply = await check(call);
    expect(reply.status, `${call.method} ${call.url}`).toBe(status);
    return reply;
  }

  const basic = (app: keyof typeof APPS = 'a') => ({ authorization: srv.auth(app) });
  const admin = () => ({ authorization: `Bearer ${ADMIN}` });
  const client = () => ({ authorization: `Bearer ${bearer}` });

  it('the server API', async () => {
    const h = basic();
    const ok = async (call: Call, status = 200) => expect((await check(call)).status).toBe(status);
    await ok(
      { method: 'POST', route: '/v1/push', url: '/v1/push', headers: h, body: { to: { users: ['bob'] } } },
      202,
    );
    await ok({ method: 'POST', route: '/v1/push', url: '/v1/push', headers: h, body: { to: {} } }, 400);
    await ok({ method: 'POST', route: '/v1/push', url: '/v1/push', body: { to: { all: true } } }, 401);
    await ok({
      method: 'POST',
      route: '/v1/push/batch',
      url: '/v1/push/batch',
      headers: h,
      body: { messages: [{ to: { users: ['bob'] } }, { to: { users: [''] } }] },
    });
    await ok({
      method: 'POST',
      route: '/message-push/v1/push',
      url: '/message-push/v1/push',
      headers: h,
      body: {
        push_method: 1,
        platform: 'all',
        audience: { uids: [10001] },
        message: { title: 't', content: 'c' },
      },
    });
    await ok({ method: 'GET', route: '/v1/messages/{id}', url: `/v1/messages/${messageId}`, headers: h });
    await ok({ method: 'GET', route: '/v1/messages/{id}', url: '/v1/messages/nope', headers: h }, 404);
    await ok({
      method: 'GET',
      route: '/v1/users/{user}/messages',
      url: '/v1/users/alice/messages',
      headers: h,
    });
    await ok(
      {
        method: 'GET',
        route: '/v1/users/{user}/messages',
        url: '/v1/users/alice/messages?limit=0',
        headers: h,
      },
      400,
    );
    await ok({ method: 'GET', route: '/v1/users/{user}/unread', url: '/v1/users/alice/unread', headers: h });
    await ok({
      method: 'POST',
      route: '/v1/users/{user}/read',
      url: '/v1/users/alice/read',
      headers: h,
      body: { seq: 1 },
    });
    await ok({
      method: 'GET',
      route: '/v1/users/{user}/presence',
      url: '/v1/users/alice/presence',
      headers: h,
    });
    await ok({ method: 'GET', route: '/v1/presence', url: '/v1/presence?users=alice,bob', headers: h });
    await ok({
      method: 'DELETE',
      route: '/v1/users/{user}/connections',
      url: '/v1/users/carol/connections',
      headers: h,
    });
    await ok({
      method: 'GET',
      route: '/v1/topics/{topic}/messages',
      url: '/v1/topics/room:1/messages',
      headers: h,
    });
    await ok({
      method: 'GET',
      route: '/v1/topics/{topic}/presence',
      url: '/v1/topics/room:1/presence',
      headers: h,
    });
  });

  it('presence with a live connection lists it as documented', async () => {
    const ws = new WebSocket(`${srv.ws}?app=a&token=${bearer}&device=phone`);
    await new Promise((resolve, reject) => {
      ws.once('message', resolve);
      ws.once('error', reject);
    });
    try {
      const { body } = await check({
        method: 'GET',
        route: '/v1/users/{user}/presence',
        url: '/v1/users/alice/presence',
        headers: basic(),
      });
      expect(body).toMatchObject({ online: true, connections: [{ device: 'phone' }] });
      const admin1 = await check({
        method: 'GET',
        route: '/v1/admin/presence',
        url: '/v1/admin/presence?app=a&user=alice',
        headers: admin(),
      });
      expect(admin1.status).toBe(200);
    } finally {
      ws.close();
    }
  });

  it('the client HTTP API and the fallbacks', async () => {
    const h = client();
    const ok = async (call: Call, status = 200) => expect((await check(call)).status).toBe(status);
    await ok({ method: 'GET', route: '/v1/me/messages', url: '/v1/me/messages?app=a', headers: h });
    await ok({ method: 'GET', route: '/v1/me/messages', url: '/v1/me/messages?app=a' }, 401);
    await ok({ method: 'GET', route: '/v1/me/unread', url: '/v1/me/unread?app=a', headers: h });
    await ok({
      method: 'POST',
      route: '/v1/me/read',
      url: '/v1/me/read?app=a',
      headers: h,
      body: { seq: 1 },
    });
    await ok({ method: 'POST', route: '/v1/me/ack', url: '/v1/me/ack?app=a', headers: h, body: { seq: 1 } });
    await ok({ method: 'POST', route: '/v1/me/ack', url: '/v1/me/ack?app=a', headers: h, body: {} }, 400);
    const poll = await check({
      method: 'GET',
      route: '/v1/poll',
      url: '/v1/poll?app=a&since=0&timeout=0',
      headers: h,
    });
    expect(poll.status).toBe(200);
    expect((poll.body as { messages: unknown[] }).messages.length).toBeGreaterThan(0);
    await ok({ method: 'GET', route: '/v1/poll', url: '/v1/poll?app=a&timeout=99', headers: h }, 400);

    // SSE streams forever: check the head and the first event, then hang up.
    exercised.add('GET /v1/sse');
    const abort = new AbortController();
    const res = await fetch(`${srv.http}/v1/sse?app=a&since=0`, { headers: h, signal: abort.signal });
    expect(res.status).toBe(200);
    const type = res.headers.get('content-type')!.split(';')[0]!;
    expect(spec.paths['/v1/sse']!.get!.responses['200']!.content![type]).toBeDefined();
    const reader = res.body!.getReader();
    let text = '';
    await waitUntil(async () => {
      const { value } = await reader.read();
      text += new TextDecoder().decode(value);
      return text.includes('event: message');
    });
    abort.abort();
    await ok({ method: 'GET', route: '/v1/sse', url: '/v1/sse?app=a' }, 401);
  });

  it('operations, admin and demo routes', async () => {
    const ok = async (call: Call, status = 200) => expect((await check(call)).status).toBe(status);
    await ok({ method: 'GET', route: '/healthz', url: '/healthz' });
    await ok({ method: 'GET', route: '/readyz', url: '/readyz' });
    await ok({ method: 'GET', route: '/metrics', url: '/metrics' });
    const a = admin();
    await ok({ method: 'GET', route: '/v1/admin/stats', url: '/v1/admin/stats', headers: a });
    await ok({ method: 'GET', route: '/v1/admin/stats', url: '/v1/admin/stats' }, 401);
    await ok({ method: 'GET', route: '/v1/admin/apps', url: '/v1/admin/apps', headers: a });
    await ok({ method: 'GET', route: '/v1/admin/messages', url: '/v1/admin/messages?app=a', headers: a });
    await ok({
      method: 'DELETE',
      route: '/v1/admin/connections',
      url: '/v1/admin/connections?app=a&user=carol',
      headers: a,
    });
    await ok(
      {
        method: 'POST',
        route: '/v1/admin/push',
        url: '/v1/admin/push',
        headers: a,
        body: { app: 'a', to: { users: ['bob'] } },
      },
      202,
    );
    await ok({
      method: 'GET',
      route: '/v1/admin/presence',
      url: '/v1/admin/presence?app=a&user=alice',
      headers: a,
    });
    await ok({ method: 'POST', route: '/v1/demo/token', url: '/v1/demo/token', body: { user: 'dora' } });
    await ok(
      { method: 'POST', route: '/v1/demo/push', url: '/v1/demo/push', body: { to: { all: true } } },
      202,
    );
  });

  it('groups, live rooms and their admin views', async () => {
    const h = basic();
    const a = admin();
    const ok = async (call: Call, status = 200) => (await expectStatus(call, status)).body;
    const put = (url: string, body: unknown, headers: Record<string, string> = h): Call => ({
      method: 'PUT',
      route: '/v1/groups/{group}/members',
      url,
      headers,
      body,
    });
    expect(await ok(put('/v1/groups/oc-g1/members', { add: ['alice', 'bob'] }))).toEqual({
      group: 'oc-g1',
      count: 2,
    });
    await ok(put('/v1/groups/oc-g1/members', { add: ['x'], remove: ['x'] }), 400);
    await ok(put('/v1/groups/oc-g1/members', { add: ['x'] }, {}), 401);
    expect(
      await ok({
        method: 'GET',
        route: '/v1/groups/{group}/members',
        url: '/v1/groups/oc-g1/members?limit=1',
        headers: h,
      }),
    ).toEqual({ members: ['alice'], next: 'alice' });
    await ok(
      {
        method: 'GET',
        route: '/v1/groups/{group}/members',
        url: '/v1/groups/oc-g1/members?limit=0',
        headers: h,
      },
      400,
    );
    expect(
      await ok({
        method: 'GET',
        route: '/v1/users/{user}/groups',
        url: '/v1/users/alice/groups',
        headers: h,
      }),
    ).toEqual({ groups: ['oc-g1'] });
    await ok({ method: 'GET', route: '/v1/users/{user}/groups', url: '/v1/users/alice/groups' }, 401);

    const groups = await ok({
      method: 'GET',
      route: '/v1/admin/groups',
      url: '/v1/admin/groups?app=a',
      headers: a,
    });
    expect(groups).toEqual({ groups: [{ app: 'a', group: 'oc-g1', members: 2 }] });
    await ok(
      { method: 'GET', route: '/v1/admin/groups', url: '/v1/admin/groups?limit=999', headers: a },
      400,
    );
    await ok({ method: 'GET', route: '/v1/admin/groups', url: '/v1/admin/groups' }, 401);

    await ok({ method: 'DELETE', route: '/v1/groups/{group}', url: '/v1/groups/oc-g1', headers: h }, 204);
    await ok({ method: 'DELETE', route: '/v1/groups/{group}', url: '/v1/groups/oc-g1' }, 401);

    const settings = (url: string, body: unknown): Call => ({
      method: 'PUT',
      route: '/v1/topics/{topic}/settings',
      url,
      headers: h,
      body,
    });
    expect(await ok(settings('/v1/topics/room:1/settings', { merge_ms: 50 }))).toEqual({
      topic: 'room:1',
      merge_ms: 50,
    });
    await ok(settings('/v1/topics/room:1/settings', { merge_ms: 99_999 }), 400);
    const rooms = await ok({
      method: 'GET',
      route: '/v1/admin/rooms',
      url: '/v1/admin/rooms?app=a',
      headers: a,
    });
    expect(rooms).toEqual({ rooms: [{ app: 'a', topic: 'room:1', merge_ms: 50 }] });
    await ok({ method: 'GET', route: '/v1/admin/rooms', url: '/v1/admin/rooms?app=%20', headers: a }, 400);
  });

  it('recall, the offline webhook and token revocation', async () => {
    const h = basic();
    const ok = async (call: Call, status = 200) => (await expectStatus(call, status)).body;
    const pushed = await srv.push({ to: { users: ['frank'] }, data: { n: 2 } });
    expect(pushed.status).toBe(202);
    const recall = (id: string): Call => ({
      method: 'DELETE',
      route: '/v1/messages/{id}',
      url: `/v1/messages/${id}`,
      headers: h,
    });
    expect(await ok(recall(pushed.body.id))).toEqual({ id: pushed.body.id, revoked: 1 });
    await ok(recall('oc-no-such-message'), 404);

    const hook = { url: 'http://127.0.0.1:9/oc-hook', after_ms: 60_000 };
    const set = await ok({ method: 'PUT', route: '/v1/webhook', url: '/v1/webhook', headers: h, body: hook });
    expect(set).toMatchObject(hook);
    await ok(
      { method: 'PUT', route: '/v1/webhook', url: '/v1/webhook', headers: h, body: { url: 'ftp://x' } },
      400,
    );
    expect(await ok({ method: 'GET', route: '/v1/webhook', url: '/v1/webhook', headers: h })).toEqual(set);
    const view = await ok({
      method: 'GET',
      route: '/v1/admin/webhook',
      url: '/v1/admin/webhook?app=a',
      headers: admin(),
    });
    expect(view).toMatchObject({ app: 'a', webhook: hook });
    await ok({ method: 'GET', route: '/v1/admin/webhook', url: '/v1/admin/webhook?app=a' }, 401);
    await ok({ method: 'DELETE', route: '/v1/webhook', url: '/v1/webhook', headers: h }, 204);
    await ok({ method: 'DELETE', route: '/v1/webhook', url: '/v1/webhook' }, 401);
    await ok({ method: 'GET', route: '/v1/webhook', url: '/v1/webhook', headers: h }, 404);

    const revoke = (body: unknown): Call => ({
      method: 'POST',
      route: '/v1/users/{user}/revoke',
      url: '/v1/users/oc-erin/revoke',
      headers: h,
      body,
    });
    expect(await ok(revoke({}))).toEqual({ closed: 0 });
    await ok(revoke({ before: -1 }), 400);
  });

  it('exercises every operation in the document', () => {
    const documented = Object.entries(spec.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(documented.filter((op) => !exercised.has(op))).toEqual([]);
    // Every operation sits in a /docs section, says what it does and names the auth it needs.
    const schemes: Record<string, string | undefined> = {
      server: 'basic',
      client: 'bearer',
      admin: 'adminBearer',
    };
    const untagged = Object.entries(spec.paths).flatMap(([path, ops]) =>
      Object.entries(ops)
        .filter(([, op]) => {
          const tag = op.tags?.[0];
          const scheme = tag === undefined ? undefined : schemes[tag];
          return (
            tag === undefined ||
            !op.summary ||
            (scheme !== undefined && !op.security?.some((s) => scheme in s))
          );
        })
        .map(([m]) => `${m.toUpperCase()} ${path}`),
    );
    expect(untagged).toEqual([]);
    expect(spec.openapi).toBe('3.1.0');
  });
});
