import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, testProtocol } from '../helpers/client.js';

import { startServer, type TestServer } from '../helpers/server.js';

/**
 * Tests of v1's raw JSON text; their v2 counterparts are in test/integration/v2/binary-protocol.test.ts.
 * On the v2 rerun they are not registered at all (a skip would read as a missing service in CI).
 */
const onV1: (name: string, fn: () => Promise<void>) => void =
  testProtocol() === 'v2' ? () => {} : (name, fn) => it(name, fn);

/** A raw HTTP call with full control over the Authorization header and the body text. */
async function raw(
  t: TestServer,
  method: string,
  path: string,
  init: { authorization?: string; body?: string } = {},
): Promise<{ status: number; body: any }> {
  const res = await fetch(t.http + path, {
    method,
    headers: {
      ...(init.authorization !== undefined ? { authorization: init.authorization } : {}),
      ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(init.body !== undefined ? { body: init.body } : {}),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, body };
}

const basic = (user: string, secret: string) =>
  `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`;

/** Opens a client that also records every text frame exactly as it came off the wire. */
async function openRaw(t: TestServer, user: string, app: 'a' | 'b' = 'a') {
  const rawFrames: Buffer[] = [];
  const c = await TestClient.connect(
    `${t.ws}?${new URLSearchParams({ app, token: await t.token(user, { app }) })}`,
  );
  c.ws.on('message', (data: Buffer) => rawFrames.push(Buffer.from(data)));
  await c.next((f) => f.op === 'welcome');
  return { c, rawFrames };
}

function expectError(res: { status: number; body: any }, status: number, code: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body?.error?.code, JSON.stringify(res.body)).toBe(code);
  expect(typeof res.body?.error?.message).toBe('string');
}

/** n nested objects: nest(1) = {}, nest(2) = {"a":{}}, ... */
function nest(n: number): unknown {
  let v: unknown = {};
  for (let i = 1; i < n; i++) v = { a: v };
  return v;
}

/** The server survived: /healthz is 200 and a brand-new connection still gets a push. */
async function expectHealthy(t: TestServer, user: string): Promise<void> {
  const h = await fetch(`${t.http}/healthz`);
  expect(h.status).toBe(200);
  const c = await TestClient.open(t.ws, { app: 'a', token: await t.token(user) });
  const res = await t.push({ to: { users: [user] }, type: 'notification', data: { still: 'alive' } });
  expect(res.status).toBe(202);
  const m = (await c.messages(1))[0]!;
  expect(m).toMatchObject({ op: 'message', id: res.body.id, data: { still: 'alive' } });
  await c.close();
}

describe('bad input on the HTTP push API', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  it('malformed JSON → 400 bad_request', async () => {
    for (const body of ['{"to":', '{to: {users: ["u"]}}', 'nope']) {
      expectError(await raw(t, 'POST', '/v1/push', { authorization: t.auth(), body }), 400, 'bad_request');
    }
  });

  it('body over 1 MiB → 413 payload_too_large', async () => {
    const filler = 'x'.repeat(1024 * 1024);
    const body = JSON.stringify({ to: { users: ['big'] }, data: { filler } });
    expectError(
      await raw(t, 'POST', '/v1/push', { authorization: t.auth(), body }),
      413,
      'payload_too_large',
    );
  });

  it('data over 64 KiB (compact JSON) → 413 payload_too_large; exactly 64 KiB is accepted', async () => {
    // A JSON string of n chars is n + 2 bytes.
    const over = await t.push({ to: { users: ['big'] }, data: 'x'.repeat(64 * 1024 - 1) });
    expectError(over, 413, 'payload_too_large');
    const exact = await t.push({ to: { users: ['big'] }, data: 'x'.repeat(64 * 1024 - 2) });
    expect(exact.status).toBe(202);
  });

  it('`to` must have exactly one known form with 1..10,000 entries → else 400', async () => {
    const bad: unknown[] = [
      { group: ['u1'] },
      { users: ['u1'], topic: 'room:1' },
      { users: ['u1'], all: true },
      { users: [] },
      { devices: [] },
      { users: Array.from({ length: 10_001 }, (_, i) => `u${i}`) },
      { all: false },
      {},
      'u1',
    ];
    for (const to of bad) {
      expectError(await t.push({ to, data: 1 }), 400, 'bad_request');
    }
    expectError(await t.push({ data: 1 }), 400, 'bad_request');
  });

  it('user ids: control char, lone surrogate, 129 code points → 400', async () => {
    const bodies = [
      JSON.stringify({ to: { users: ['a\u0001b'] } }),
      JSON.stringify({ to: { users: ['a\u007fb'] } }),
      JSON.stringify({ to: { users: ['a\u0085b'] } }),
      // A lone surrogate as a JSON escape, exactly as a client would send it.
      '{"to":{"users":["x\\ud800y"]}}',
      '{"to":{"users":["\\udc00"]}}',
      JSON.stringify({ to: { users: ['a'.repeat(129)] } }),
      JSON.stringify({ to: { users: ['😀'.repeat(129)] } }),
      JSON.stringify({ to: { users: [''] } }),
      JSON.stringify({ to: { users: ['ok', 'bad\u0000'] } }),
    ];
    for (const body of bodies) {
      expectError(await raw(t, 'POST', '/v1/push', { authorization: t.auth(), body }), 400, 'bad_request');
    }
  });

  onV1(
    '128 emoji code points and an RTL user id are accepted and round-trip byte-exact over a socket',
    async () => {
      const emoji = Array.from({ length: 128 }, (_, i) => String.fromCodePoint(0x1f600 + (i % 80))).join('');
      expect([...emoji]).toHaveLength(128);
      const rtl = 'مستخدم‏-משתמש ١٢٣';
      for (const user of [emoji, rtl]) {
        const { c, rawFrames } = await openRaw(t, user);
        expect(c.frames[0]).toMatchObject({ op: 'welcome', user_id: user });
        const res = await t.push({ to: { users: [user] }, type: 'text', data: { echo: user } });
        expect(res.status).toBe(202);
        expect(res.body.recipients).toBe(1);
        const m = (await c.messages(1))[0]!;
        expect(m.id).toBe(res.body.id);
        expect(m.data.echo).toBe(user);
        // Byte-exact: the UTF-8 bytes of the id appear unchanged in the frame on the wire.
        const frame = rawFrames.find((b) => b.includes(Buffer.from(res.body.id)))!;
        expect(frame.includes(Buffer.from(JSON.stringify({ echo: user }), 'utf8'))).toBe(true);
        const p = await t.api('GET', `/v1/users/${encodeURIComponent(user)}/presence`);
        expect(p.status).toBe(200);
        expect(p.body).toMatchObject({ user, online: true });
        await c.close();
      }
    },
  );

  it('ttl must be an integer 0..2419200 → else 400', async () => {
    for (const ttl of [-1, 1.5, '5', 2_419_201, null, true]) {
      expectError(await t.push({ to: { users: ['ttl-user'] }, ttl }), 400, 'bad_request');
    }
    const ok = await t.push({ to: { users: ['ttl-user'] }, ttl: 2_419_200 });
    expect(ok.status).toBe(202);
  });

  it('type "bad type" (and other off-grammar types) → 400', async () => {
    for (const type of ['bad type', '', 'x'.repeat(65), 'é', 5]) {
      expectError(await t.push({ to: { users: ['type-user'] }, type }), 400, 'bad_request');
    }
    expect((await t.push({ to: { users: ['type-user'] }, type: 'a.B-9:_' })).status).toBe(202);
  });

  it('data nested 65 levels → 400; 64 levels → 202', async () => {
    expectError(await t.push({ to: { users: ['deep'] }, data: nest(65) }), 400, 'bad_request');
    expect((await t.push({ to: { users: ['deep'] }, data: nest(64) })).status).toBe(202);
    // Arrays count as levels too.
    let arr: unknown = [];
    for (let i = 1; i < 65; i++) arr = [arr];
    expectError(await t.push({ to: { users: ['deep'] }, data: arr }), 400, 'bad_request');
  });

  onV1(
    '__proto__, constructor and prototype keys in data are delivered exactly as sent and pollute nothing (guarantee: such keys never change how the request is read)',
    async () => {
      const user = 'proto-user';
      const { c, rawFrames } = await openRaw(t, user);
      const dataText =
        '{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},' +
        '"prototype":{"polluted":"yes"},"nested":[{"__proto__":{"isAdmin":true}}]}';
      const body = `{"to":{"users":["${user}"]},"type":"notification","data":${dataText}}`;
      const res = await raw(t, 'POST', '/v1/push', { authorization: t.auth(), body });
      expect(res.status).toBe(202);
      const m = (await c.messages(1))[0]!;
      expect(m.id).toBe(res.body.id);
      // Own keys, as plain data.
      expect(Object.hasOwn(m.data, '__proto__')).toBe(true);
      expect(Object.hasOwn(m.data, 'constructor')).toBe(true);
      expect(Object.hasOwn(m.data, 'prototype')).toBe(true);
      expect(Object.hasOwn(m.data.nested[0], '__proto__')).toBe(true);
      // Exactly as sent: the data text on the wire is the text that was pushed.
      const frame = rawFrames.map((b) => b.toString('utf8')).find((s) => s.includes(res.body.id))!;
      expect(frame).toContain(`"data":${dataText}`);
      // The server runs in this process: Object.prototype must be untouched.
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
      expect(Object.prototype).not.toHaveProperty('polluted');
      await c.close();
      await expectHealthy(t, 'proto-health');
    },
  );

  it('a body whose only `to` is hidden under a top-level "__proto__" → 400', async () => {
    const bodies = [
      '{"__proto__":{"to":{"users":["hidden"]}},"data":1}',
      '{"constructor":{"prototype":{"to":{"users":["hidden"]}}},"data":1}',
    ];
    for (const body of bodies) {
      expectError(await raw(t, 'POST', '/v1/push', { authorization: t.auth(), body }), 400, 'bad_request');
    }
    expect(({} as Record<string, unknown>).to).toBeUndefined();
  });

  it('Basic auth: wrong secret, unknown app and no auth → the same 401 unauthorized', async () => {
    const body = JSON.stringify({ id: 'auth-m1', to: { users: ['auth-user'] } });
    const wrong = await raw(t, 'POST', '/v1/push', {
      authorization: basic('a', 'secret-b-0123456789abcdef'),
      body,
    });
    const unknown = await raw(t, 'POST', '/v1/push', {
      authorization: basic('nosuchapp', 'secret-a-0123456789abcdef'),
      body,
    });
    const none = await raw(t, 'POST', '/v1/push', { body });
    const garbled = await raw(t, 'POST', '/v1/push', { authorization: 'Basic !!!', body });
    expectError(wrong, 401, 'unauthorized');
    expectError(unknown, 401, 'unauthorized');
    expect(unknown.body).toEqual(wrong.body);
    expectError(none, 401, 'unauthorized');
    expectError(garbled, 401, 'unauthorized');
    // Nothing was pushed by any of them.
    expectError(await t.api('GET', '/v1/messages/auth-m1'), 404, 'not_found');
  });

  it('GET /v1/push → 405 method_not_allowed; unknown path → 404 not_found; unknown message → 404', async () => {
    expectError(await t.api('GET', '/v1/push'), 405, 'method_not_allowed');
    expectError(await t.api('GET', '/v1/nothing-here'), 404, 'not_found');
    expectError(await t.api('POST', '/v2/push', { to: { all: true } }), 404, 'not_found');
    expectError(await t.api('GET', '/v1/messages/no-such-message'), 404, 'not_found');
  });

  it('batch with 0 or 1001 items (or no array) → 400', async () => {
    const item = { to: { users: ['batch-user'] }, data: 1 };
    for (const body of [
      { messages: [] },
      { messages: Array.from({ length: 1001 }, () => item) },
      { messages: item },
      {},
    ]) {
      expectError(await t.api('POST', '/v1/push/batch', body), 400, 'bad_request');
    }
  });

  it('batch mixing valid and invalid items → 200, results in request order, items fail independently', async () => {
    const user = 'batch-mixed';
    const res = await t.api('POST', '/v1/push/batch', {
      messages: [
        { id: 'bm-1', to: { users: [user] }, data: 1 },
        { id: 'bm-2', to: { users: [] }, data: 2 },
        { id: 'bm-3', to: { users: [user] }, data: 'x'.repeat(64 * 1024) },
        { id: 'bm-4', to: { users: [user] }, ttl: -1 },
        'not an object',
        { id: 'bm-6', to: { users: [user] }, data: 6 },
      ],
    });
    expect(res.status).toBe(200);
    const r = res.body.results;
    expect(r).toHaveLength(6);
    expect(r[0]).toMatchObject({ id: 'bm-1', recipients: 1, duplicate: false });
    expect(r[1]).toEqual({ error: { code: 'bad_request', message: expect.any(String) } });
    expect(r[2]).toEqual({ error: { code: 'payload_too_large', message: expect.any(String) } });
    expect(r[3]).toEqual({ error: { code: 'bad_request', message: expect.any(String) } });
    expect(r[4]).toEqual({ error: { code: 'bad_request', message: expect.any(String) } });
    expect(r[5]).toMatchObject({ id: 'bm-6', recipients: 1, duplicate: false });
    // Only the valid ones exist.
    expect((await t.api('GET', '/v1/messages/bm-1')).status).toBe(200);
    expect((await t.api('GET', '/v1/messages/bm-2')).status).toBe(404);
    expect((await t.api('GET', '/v1/messages/bm-6')).status).toBe(200);
  });

  it('after all of the above the server is healthy: /healthz 200 and a fresh connection receives a push', async () => {
    await expectHealthy(t, 'http-health');
  });
});

describe('bad frames on the socket', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  const open = async (user: string) => TestClient.open(t.ws, { app: 'a', token: await t.token(user) });
  const nextError = (c: TestClient) => c.next((f) => f.op === 'error');

  it('non-JSON text → error bad_request, connection stays open', async () => {
    const c = await open('f-nonjson');
    c.send('this is not json');
    expect(await nextError(c)).toMatchObject({ op: 'error', code: 'bad_request' });
    expect(await c.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    await c.close();
  });

  it('a JSON array, a number, null or a string → error bad_request', async () => {
    const c = await open('f-shapes');
    for (const text of ['[{"op":"ping"}]', '42', 'null', '"ping"']) {
      c.send(text);
      expect(await nextError(c), text).toMatchObject({ code: 'bad_request' });
    }
    expect(await c.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    await c.close();
  });

  onV1('a binary frame on push.v1.json → error bad_request', async () => {
    const c = await open('f-binary');
    c.ws.send(Buffer.from('{"op":"ping","ref":"bin"}'), { binary: true });
    expect(await nextError(c)).toMatchObject({ code: 'bad_request' });
    expect(await c.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    await c.close();
  });

  it('unknown op → error unknown_op echoing ref; missing op → bad_request', async () => {
    const c = await open('f-unknown');
    c.send({ op: 'frobnicate', ref: 'u-1' });
    expect(await nextError(c)).toMatchObject({ code: 'unknown_op', ref: 'u-1' });
    c.send({ ref: 'u-2' });
    expect(await nextError(c)).toMatchObject({ code: 'bad_request', ref: 'u-2' });
    expect(await c.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    await c.close();
  });

  it('ref echo rules: string ≤128 chars and numbers echoed; longer strings and objects left out', async () => {
    const c = await open('f-ref');
    const pong = async (ref: unknown) => {
      c.send({ op: 'ping', ref });
      return c.next((f) => f.op === 'pong');
    };
    const r128 = 'r'.repeat(128);
    expect(await pong(r128)).toEqual({ op: 'pong', ref: r128 });
    const p129 = await pong('r'.repeat(129));
    expect(p129.op).toBe('pong');
    expect(p129).not.toHaveProperty('ref');
    expect(await pong(42)).toEqual({ op: 'pong', ref: 42 });
    expect(await pong(0)).toEqual({ op: 'pong', ref: 0 });
    const pObj = await pong({ a: 1 });
    expect(pObj).not.toHaveProperty('ref');
    const pArr = await pong(['x']);
    expect(pArr).not.toHaveProperty('ref');
    // The same rules on error frames.
    c.send({ op: 'nope', ref: 'r'.repeat(129) });
    const e = await nextError(c);
    expect(e.code).toBe('unknown_op');
    expect(e).not.toHaveProperty('ref');
    await c.close();
  });

  it('ack with a string seq → error bad_request with ref', async () => {
    const c = await open('f-ack-bad');
    c.send({ op: 'ack', seq: '5', ref: 'ab-1' });
    expect(await nextError(c)).toMatchObject({ code: 'bad_request', ref: 'ab-1' });
    c.send({ op: 'ack', seq: -1, ref: 'ab-2' });
    expect(await nextError(c)).toMatchObject({ code: 'bad_request', ref: 'ab-2' });
    c.send({ op: 'ack', ref: 'ab-3' });
    expect(await nextError(c)).toMatchObject({ code: 'bad_request', ref: 'ab-3' });
    expect(await c.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    await c.close();
  });

  it('ack with ref → {"op":"ok","ref"} and the message becomes acked', async () => {
    const user = 'f-ack-ok';
    const c = await open(user);
    const res = await t.push({ to: { users: [user] }, data: 'ack me' });
    const m = (await c.messages(1))[0]!;
    c.send({ op: 'ack', seq: m.seq, ref: 'ok-1' });
    expect(await c.next((f) => f.ref === 'ok-1')).toEqual({ op: 'ok', ref: 'ok-1' });
    const status = await t.api('GET', `/v1/messages/${res.body.id}`);
    expect(status.body.recipients[0]).toMatchObject({ user, status: 'acked' });
    await c.close();
  });

  it('10 consecutive bad frames → close 1008; good frames in between reset the count', async () => {
    const c = await open('f-1008');
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 9; i++) c.send('bad');
      expect(await c.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    }
    expect(c.closeCode).toBeNull();
    for (let i = 0; i < 10; i++) c.send('bad');
    expect(await c.closed()).toBe(1008);
  });

  it('a frame over 64 KiB → close 1009', async () => {
    const c = await open('f-1009');
    c.send(JSON.stringify({ op: 'ping', pad: 'x'.repeat(64 * 1024) }));
    expect(await c.closed()).toBe(1009);
  });

  it('after all of the above the server is healthy: /healthz 200 and a fresh connection receives a push', async () => {
    await expectHealthy(t, 'frames-health');
  });
});

describe('client frame rate', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ PUSH_FRAMES_PER_SECOND: '5' });
  });
  afterAll(() => t.stop());

  it('PUSH_FRAMES_PER_SECOND=5: frames within the rate are answered; 30 pings at once → close 4008', async () => {
    const polite = await TestClient.open(t.ws, { app: 'a', token: await t.token('rate-polite') });
    for (let i = 0; i < 3; i++) expect(await polite.request({ op: 'ping' })).toMatchObject({ op: 'pong' });

    const c = await TestClient.open(t.ws, { app: 'a', token: await t.token('rate-flood') });
    for (let i = 0; i < 30; i++) c.send({ op: 'ping', ref: i });
    expect(await c.closed()).toBe(4008);
    const pongs = c.frames.filter((f) => f.op === 'pong').length;
    expect(pongs).toBeLessThanOrEqual(6);

    // The polite neighbour is unaffected.
    expect(polite.closeCode).toBeNull();
    expect(await polite.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    await polite.close();
  });

  it('after the flood the server is healthy: /healthz 200 and a fresh connection receives a push', async () => {
    await expectHealthy(t, 'rate-health');
  });
});
