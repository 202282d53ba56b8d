import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Frame, TestClient } from '../helpers/client.js';
import { type APPS, startServer, type TestServer } from '../helpers/server.js';
import { type PollResult, poll, SseClient, type SseEvent } from '../helpers/sse.js';
import { waitUntil } from '../helpers/wait.js';

type App = keyof typeof APPS;

/**
 * Black-box tests of the fallback transports and the client HTTP API (docs/reference/client-api.md "Client HTTP API",
 * "Fallbacks", "History and counters"): SSE, long-poll, /v1/me/*.
 */

function harness(getServer: () => TestServer) {
  const sockets: TestClient[] = [];
  const streams: SseClient[] = [];

  async function socket(user: string, app: App = 'a'): Promise<TestClient> {
    const t = getServer();
    const c = await TestClient.open(t.ws, { app, token: await t.token(user, { app }) });
    sockets.push(c);
    return c;
  }

  async function sse(
    user: string,
    query: Record<string, string | number> = {},
    headers: Record<string, string> = {},
  ): Promise<SseClient> {
    const t = getServer();
    const c = await SseClient.open(t.http, { app: 'a', token: await t.token(user), ...query }, headers);
    streams.push(c);
    return c;
  }

  async function pollAs(user: string, query: Record<string, string | number> = {}): Promise<PollResult> {
    const t = getServer();
    return poll(t.http, { app: 'a', token: await t.token(user), ...query });
  }

  async function pushTo(users: string | string[], extra: Record<string, unknown> = {}, app: App = 'a') {
    const res = await getServer().push(
      { to: { users: Array.isArray(users) ? users : [users] }, data: { n: Math.random() }, ...extra },
      app,
    );
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return res.body as { id: string; recipients: number; duplicate: boolean };
  }

  /** A client HTTP API call with a bearer token; the app named by `?app=`. */
  async function me(
    method: string,
    path: string,
    token: string | null,
    body?: unknown,
    app = 'a',
  ): Promise<{ status: number; body: any }> {
    const t = getServer();
    const sep = path.includes('?') ? '&' : '?';
    const res = await fetch(`${t.http}${path}${sep}app=${encodeURIComponent(app)}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {}
    return { status: res.status, body: parsed };
  }

  /** Proves an SSE client got no other message: a sentinel push must be the very next message event. */
  async function expectSseNextIsSentinel(c: SseClient, user: string, seq: number) {
    const s = await pushTo(user, { type: 'sentinel' });
    const [e] = await c.messages(1);
    expect(e!.id).toBe(String(seq));
    expect(e!.json).toMatchObject({ op: 'message', seq, id: s.id, type: 'sentinel' });
  }

  /**
   * Ends an SSE stream from the server side (kick of its device, which ends the response) and
   * waits for the client to see the end. Aborting the fetch instead would leave Node's fetch
   * holding a spare connection that delays the server's stop by seconds.
   */
  async function endSse(c: SseClient): Promise<void> {
    if (c.ended) return;
    const { user_id: user, device_id: device } = c.welcome;
    const r = await getServer().api(
      'DELETE',
      `/v1/users/${encodeURIComponent(user)}/connections?device=${encodeURIComponent(device)}`,
    );
    expect(r.status).toBe(200);
    await c.whenEnded();
  }

  async function closeAll() {
    await Promise.all([...sockets.splice(0).map((c) => c.close()), ...streams.splice(0).map(endSse)]);
  }

  return { socket, sse, pollAs, pushTo, me, expectSseNextIsSentinel, endSse, closeAll };
}

const sseSeqs = (es: SseEvent[]) => es.map((e) => e.json.seq);
const frameSeqs = (fs: Frame[]) => fs.map((f) => f.seq);

describe('fallbacks: SSE', () => {
  let t: TestServer;
  const h = harness(() => t);
  beforeAll(async () => {
    t = await startServer({ PUSH_RESEND_MS: '60s' });
  });
  afterEach(() => h.closeAll());
  afterAll(() => t.stop());

  it('GET /v1/sse: a welcome event, then each message as event: message, id: <seq>, one-line data equal to the socket frame', async () => {
    const user = 'fs-same';
    const s = await h.sse(user);
    expect(s.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(s.events[0]!.event).toBe('welcome');
    expect(s.events[0]!.json).toMatchObject({ op: 'welcome', user_id: user, heartbeat_ms: 15000 });
    expect(typeof s.events[0]!.json.connection_id).toBe('string');

    const ws = await h.socket(user);
    const pushed = [
      await h.pushTo(user, { type: 'notification', data: { title: 't1', content: 'two\nlines' } }),
      await h.pushTo(user, { data: [1, 'x', null] }),
      await h.pushTo(user, { type: 'text', data: 'plain string' }),
    ];
    const events = await s.messages(3);
    const frames = await ws.messages(3);
    expect(frameSeqs(frames)).toEqual([1, 2, 3]);
    expect(frames.map((f) => f.id)).toEqual(pushed.map((p) => p.id));
    for (let i = 0; i < 3; i++) {
      expect(events[i]!.event).toBe('message');
      expect(events[i]!.id).toBe(String(frames[i]!.seq));
      expect(events[i]!.dataLines).toBe(1);
      expect(events[i]!.json).toEqual(frames[i]);
    }
    expect(events[0]!.json.data).toEqual({ title: 't1', content: 'two\nlines' });
  });

  it('SSE: the offline backlog is sent on connect in seq order, then live messages follow', async () => {
    const user = 'fs-backlog';
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await h.pushTo(user, { data: { i } })).id);
    const s = await h.sse(user);
    const es = await s.messages(3);
    expect(sseSeqs(es)).toEqual([1, 2, 3]);
    expect(es.map((e) => e.id)).toEqual(['1', '2', '3']);
    expect(es.map((e) => e.json.id)).toEqual(ids);
    expect(es.map((e) => e.json.data)).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }]);
    await h.expectSseNextIsSentinel(s, user, 4);
  });

  it('SSE: since=2 resumes exactly at 3 (acked messages included), then live', async () => {
    const user = 'fs-since';
    for (let i = 0; i < 5; i++) await h.pushTo(user);
    const ack = await h.me('POST', '/v1/me/ack', await t.token(user), { seq: 5 });
    expect(ack.status).toBe(200);
    const s = await h.sse(user, { since: 2 });
    expect(sseSeqs(await s.messages(3))).toEqual([3, 4, 5]);
    await h.expectSseNextIsSentinel(s, user, 6);
  });

  it('SSE: a Last-Event-ID header works as since', async () => {
    const user = 'fs-lei';
    for (let i = 0; i < 5; i++) await h.pushTo(user);
    const s = await h.sse(user, {}, { 'last-event-id': '3' });
    const es = await s.messages(2);
    expect(sseSeqs(es)).toEqual([4, 5]);
    expect(es.map((e) => e.id)).toEqual(['4', '5']);
    await h.expectSseNextIsSentinel(s, user, 6);
  });

  it('SSE: after the stream ends, a reconnect with the last id seen resumes without gap or repeat', async () => {
    const user = 'fs-resume';
    for (let i = 0; i < 3; i++) await h.pushTo(user, { data: { i } });
    const s1 = await h.sse(user);
    const first = await s1.messages(3);
    await h.endSse(s1);
    for (let i = 3; i < 6; i++) await h.pushTo(user, { data: { i } });
    const s2 = await h.sse(user, {}, { 'last-event-id': first[2]!.id! });
    const rest = await s2.messages(3);
    expect(sseSeqs([...first, ...rest])).toEqual([1, 2, 3, 4, 5, 6]);
    expect(rest.map((e) => e.json.data)).toEqual([{ i: 3 }, { i: 4 }, { i: 5 }]);
    await h.expectSseNextIsSentinel(s2, user, 7);
  });

  it('POST /v1/me/ack {"seq":2} → 200 {"acked":2}; GET /v1/messages/{id} then shows acked; the next SSE backlog starts at 3', async () => {
    const user = 'fs-ack';
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await h.pushTo(user)).id);
    const s = await h.sse(user);
    expect(sseSeqs(await s.messages(3))).toEqual([1, 2, 3]);

    const token = await t.token(user);
    const ack = await h.me('POST', '/v1/me/ack', token, { seq: 2 });
    expect(ack.status).toBe(200);
    expect(ack.body).toEqual({ acked: 2 });

    const status = await Promise.all(ids.map((id) => t.api('GET', `/v1/messages/${encodeURIComponent(id)}`)));
    expect(status.map((r) => r.body.recipients[0].status)).toEqual(['acked', 'acked', 'sent']);
    expect(typeof status[0]!.body.recipients[0].acked_at).toBe('number');
    await h.endSse(s);

    const s2 = await h.sse(user);
    const [e] = await s2.messages(1);
    expect(e!.json).toMatchObject({ seq: 3, id: ids[2] });
    await h.expectSseNextIsSentinel(s2, user, 4);
  });

  // Regression: HTTP acks without a device used to skip device-targeted messages, so an
  // SSE/poll client could never ack them (they were resent and replayed forever).
  it('POST /v1/me/ack {"seq":n} acks a device-targeted message received over SSE by that device', async () => {
    const user = 'fs-devack';
    const r = await t.push({ to: { devices: [{ user, device: 'd1' }] }, data: { only: 'd1' } });
    expect(r.status).toBe(202);
    const s = await h.sse(user, { device: 'd1' });
    const [e] = await s.messages(1);
    expect(e!.json).toMatchObject({ seq: 1, id: r.body.id });
    const ack = await h.me('POST', '/v1/me/ack', await t.token(user), { seq: 1 });
    expect(ack.status).toBe(200);
    expect(ack.body).toEqual({ acked: 1 });
    const st = await t.api('GET', `/v1/messages/${encodeURIComponent(r.body.id)}`);
    expect(st.body.recipients[0].status).toBe('acked');
  });

  it('POST /v1/me/ack with neither seq nor ids, or a string seq → 400 bad_request', async () => {
    const token = await t.token('fs-ack-bad');
    for (const body of [{}, { seq: '1' }, { seq: -1 }, { seq: 1, ids: ['x'] }]) {
      const r = await h.me('POST', '/v1/me/ack', token, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.code).toBe('bad_request');
    }
  });

  it('an SSE connection appears in the user presence while open', async () => {
    const user = 'fs-pres';
    const s = await h.sse(user, { device: 'sse-dev' });
    const pres = await t.api('GET', `/v1/users/${user}/presence`);
    expect(pres.status).toBe(200);
    expect(pres.body.online).toBe(true);
    expect(pres.body.connections).toHaveLength(1);
    expect(pres.body.connections[0]).toMatchObject({
      connection_id: s.events[0]!.json.connection_id,
      device: 'sse-dev',
    });
  });

  it('SSE: bad handshakes are refused with an HTTP status (no token 401, unknown app 401, bad since 400)', async () => {
    const token = await t.token('fs-refused');
    const refused = async (query: Record<string, string>) => {
      try {
        const c = await SseClient.connect(t.http, query);
        await c.close();
        return 200;
      } catch (err) {
        return (err as { status: number }).status;
      }
    };
    expect(await refused({ app: 'a' })).toBe(401);
    expect(await refused({ app: 'nope', token })).toBe(401);
    expect(await refused({ app: 'a', token, since: 'abc' })).toBe(400);
  });
});

describe('fallbacks: long-poll', () => {
  let t: TestServer;
  const h = harness(() => t);
  beforeAll(async () => {
    t = await startServer({ PUSH_RESEND_MS: '60s' });
  });
  afterEach(() => h.closeAll());
  afterAll(() => t.stop());

  /** Resolves once the user has `n` connections (a held poll sends nothing that marks it registered). */
  const connectionsOf = (user: string, n: number) =>
    waitUntil(
      async () => (await t.api('GET', `/v1/users/${user}/presence`)).body.connections.length === n,
      5000,
    );

  it('without since it returns the backlog at once as {"messages":[…]} (the socket\'s message objects)', async () => {
    const user = 'fp-backlog';
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await h.pushTo(user, { type: 'text', data: { i } })).id);
    const r = await h.pollAs(user, { timeout: 20 });
    expect(r.status).toBe(200);
    expect(r.ms).toBeLessThan(5000);
    expect(Object.keys(r.body)).toContain('messages');
    expect(r.body.messages.map((m: any) => m.seq)).toEqual([1, 2, 3]);
    expect(r.body.messages.map((m: any) => m.id)).toEqual(ids);
    expect(r.body.messages[0]).toEqual({
      op: 'message',
      seq: 1,
      id: ids[0],
      type: 'text',
      timestamp: r.body.messages[0].timestamp,
      data: { i: 0 },
    });

    // Polled but unacked: still the backlog. After an ack up to 2, only 3 is left.
    const again = await h.pollAs(user, { timeout: 20 });
    expect(again.body.messages.map((m: any) => m.seq)).toEqual([1, 2, 3]);
    const ack = await h.me('POST', '/v1/me/ack', await t.token(user), { seq: 2 });
    expect(ack.body).toEqual({ acked: 2 });
    const rest = await h.pollAs(user, { timeout: 20 });
    expect(rest.body.messages.map((m: any) => m.seq)).toEqual([3]);
  });

  it('with since it returns only seq > since; since at the newest seq and timeout=0 → {"messages":[]}', async () => {
    const user = 'fp-since';
    for (let i = 0; i < 4; i++) await h.pushTo(user);
    const ack = await h.me('POST', '/v1/me/ack', await t.token(user), { seq: 4 });
    expect(ack.status).toBe(200);
    const r = await h.pollAs(user, { since: 1, timeout: 20 });
    expect(r.status).toBe(200);
    expect(r.body.messages.map((m: any) => m.seq)).toEqual([2, 3, 4]);
    const none = await h.pollAs(user, { since: 4, timeout: 0 });
    expect(none.status).toBe(200);
    expect(none.body).toEqual({ messages: [] });
  });

  it('with nothing pending it waits and returns as soon as a push arrives, well before the timeout', async () => {
    const user = 'fp-wait';
    let answered = false;
    const pending = h.pollAs(user, { timeout: 20 }).then((r) => {
      answered = true;
      return { ...r, at: performance.now() };
    });
    await connectionsOf(user, 1);
    expect(answered).toBe(false);
    const pushedAt = performance.now();
    const p = await h.pushTo(user, { data: { live: true } });
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.body.messages).toEqual([
      expect.objectContaining({ op: 'message', seq: 1, id: p.id, data: { live: true } }),
    ]);
    expect(r.at - pushedAt).toBeLessThan(2000);
    expect(r.ms).toBeLessThan(10_000);
  });

  it('with nothing arriving it returns {"messages":[]} after timeout=0.5', async () => {
    const r = await h.pollAs('fp-timeout', { timeout: 0.5 });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ messages: [] });
    expect(r.ms).toBeGreaterThanOrEqual(450);
    expect(r.ms).toBeLessThan(3000);
  });

  it('timeout -1, 61 or "abc" → 400 bad_request', async () => {
    for (const timeout of ['-1', '61', 'abc']) {
      const r = await h.pollAs('fp-badtimeout', { timeout });
      expect(r.status, timeout).toBe(400);
      expect(r.body.error.code).toBe('bad_request');
    }
  });

  it('a long-poll connection appears in the user presence while it is held', async () => {
    const user = 'fp-pres';
    const s = await h.sse(user);
    const pending = h.pollAs(user, { timeout: 20, device: 'poll-dev' });
    await connectionsOf(user, 2);
    const pres = await t.api('GET', `/v1/users/${user}/presence`);
    expect(pres.body.online).toBe(true);
    expect(pres.body.connections.map((c: any) => c.device).sort()).toEqual(
      ['poll-dev', s.events[0]!.json.device_id].sort(),
    );
    // Release the poll with a push; both transports get it.
    const p = await h.pushTo(user);
    const r = await pending;
    expect(r.body.messages.map((m: any) => m.id)).toEqual([p.id]);
    const [e] = await s.messages(1);
    expect(e!.json.id).toBe(p.id);
  });

  it('bearer auth: unknown app → 401 and no token → 401 on /v1/poll, /v1/sse and /v1/me/*', async () => {
    const token = await t.token('fp-auth');
    const paths: [string, string, unknown?][] = [
      ['GET', '/v1/poll?timeout=0'],
      ['GET', '/v1/me/messages'],
      ['GET', '/v1/me/unread'],
      ['POST', '/v1/me/read', { seq: 1 }],
      ['POST', '/v1/me/ack', { seq: 1 }],
    ];
    for (const [method, path, body] of paths) {
      const unknownApp = await h.me(method, path, token, body, 'no-such-app');
      expect(unknownApp.status, `${method} ${path} unknown app`).toBe(401);
      expect(unknownApp.body.error.code).toBe('unauthorized');
      const noToken = await h.me(method, path, null, body);
      expect(noToken.status, `${method} ${path} no token`).toBe(401);
      expect(noToken.body.error.code).toBe('unauthorized');
      const otherApp = await h.me(method, path, await t.token('fp-auth', { app: 'b' }), body, 'a');
      expect(otherApp.status, `${method} ${path} token of app b`).toBe(401);
    }
    const sseUnknown = await fetch(`${t.http}/v1/sse?app=no-such-app&token=${token}`);
    expect(sseUnknown.status).toBe(401);
    await sseUnknown.body?.cancel();
  });
});

describe('fallbacks: client HTTP API (/v1/me/*) and all three transports', () => {
  let t: TestServer;
  const h = harness(() => t);
  beforeAll(async () => {
    t = await startServer({ PUSH_RESEND_MS: '60s' });
  });
  afterEach(() => h.closeAll());
  afterAll(() => t.stop());

  it("/v1/me/messages, /v1/me/unread and POST /v1/me/read behave like the server API for the token's user", async () => {
    const user = 'fm-same';
    for (let i = 0; i < 5; i++) await h.pushTo(user, { data: { i } });
    await h.pushTo('fm-other');
    const token = await t.token(user);

    for (const qs of ['', '?after_seq=1&limit=2', '?limit=3', '?after_seq=5']) {
      const mine = await h.me('GET', `/v1/me/messages${qs}`, token);
      const server = await t.api('GET', `/v1/users/${user}/messages${qs}`);
      expect(mine.status, qs).toBe(200);
      expect(mine.body, qs).toEqual(server.body);
    }
    const page = await h.me('GET', '/v1/me/messages?after_seq=1&limit=2', token);
    expect(page.body.messages.map((m: any) => m.seq)).toEqual([2, 3]);
    expect(page.body.has_more).toBe(true);

    const unread = await h.me('GET', '/v1/me/unread', token);
    expect(unread.status).toBe(200);
    expect(unread.body).toEqual({ count: 5, last_read_seq: 0 });
    expect((await t.api('GET', `/v1/users/${user}/unread`)).body).toEqual(unread.body);

    const read = await h.me('POST', '/v1/me/read', token, { seq: 3 });
    expect(read.status).toBe(200);
    expect(read.body).toEqual({ count: 2, last_read_seq: 3 });
    expect((await t.api('GET', `/v1/users/${user}/unread`)).body).toEqual({ count: 2, last_read_seq: 3 });
    // Never backwards; clamped to the newest seq.
    expect((await h.me('POST', '/v1/me/read', token, { seq: 1 })).body).toEqual({
      count: 2,
      last_read_seq: 3,
    });
    expect((await h.me('POST', '/v1/me/read', token, { seq: 99 })).body).toEqual({
      count: 0,
      last_read_seq: 5,
    });
    expect((await h.me('POST', '/v1/me/read', token, { seq: 'x' })).status).toBe(400);

    // The token's user only: another user and the same id in app b see their own.
    const other = await h.me('GET', '/v1/me/messages', await t.token('fm-other'));
    expect(other.body.messages).toHaveLength(1);
    const inB = await h.me('GET', '/v1/me/messages', await t.token(user, { app: 'b' }), undefined, 'b');
    expect(inB.status).toBe(200);
    expect(inB.body).toEqual({ messages: [], has_more: false });
  });

  it('the app may be named by the auth-app-id header instead of ?app=', async () => {
    const user = 'fm-header';
    await h.pushTo(user);
    const res = await fetch(`${t.http}/v1/me/unread`, {
      headers: { authorization: `Bearer ${await t.token(user)}`, 'auth-app-id': 'a' },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ count: 1, last_read_seq: 0 });
  });

  it('a socket, an SSE and a long-poll client (three users) get the same pushes with the same data in the same order', async () => {
    const users = ['fm-3-ws', 'fm-3-sse', 'fm-3-poll'];
    const ws = await h.socket(users[0]!);
    const sse = await h.sse(users[1]!);
    const n = 6;
    const pushed: { id: string; data: unknown }[] = [];
    for (let i = 0; i < n; i++) {
      const data = { i, text: `m${i}` };
      const r = await h.pushTo(users, { data });
      expect(r.recipients).toBe(3);
      pushed.push({ id: r.id, data });
    }

    const viaWs = await ws.messages(n);
    const viaSse = (await sse.messages(n)).map((e) => e.json);
    const viaPoll: any[] = [];
    while (viaPoll.length < n) {
      const since = viaPoll.length > 0 ? viaPoll[viaPoll.length - 1].seq : 0;
      const r = await h.pollAs(users[2]!, { since, timeout: 5 });
      expect(r.status).toBe(200);
      expect(r.body.messages.length).toBeGreaterThan(0);
      viaPoll.push(...r.body.messages);
    }

    const expected = pushed.map((p, i) => ({ seq: i + 1, id: p.id, data: p.data }));
    for (const got of [viaWs, viaSse, viaPoll]) {
      expect(got.map((m) => ({ seq: m.seq, id: m.id, data: m.data }))).toEqual(expected);
    }
    // Same message objects everywhere (timestamps included).
    expect(viaSse).toEqual(viaWs);
    expect(viaPoll).toEqual(viaWs);
  });
});

describe('fallbacks: $all and heartbeats (PUSH_HEARTBEAT_MS=300)', () => {
  let t: TestServer;
  const h = harness(() => t);
  beforeAll(async () => {
    // Its own server: $all reaches every connection of the app.
    t = await startServer({ PUSH_RESEND_MS: '60s', PUSH_HEARTBEAT_MS: '300' });
  });
  afterEach(() => h.closeAll());
  afterAll(() => t.stop());

  it('SSE: $all messages carry no id: line; user messages do', async () => {
    const user = 'fh-all';
    const s = await h.sse(user);
    const all = await t.push({ to: { all: true }, data: { everyone: true } });
    expect(all.status).toBe(202);
    expect(all.body.recipients).toBe(1);
    const [e] = await s.messages(1);
    expect(e!.event).toBe('message');
    expect(e!.id).toBeNull();
    expect(e!.json).toMatchObject({
      op: 'message',
      topic: '$all',
      id: all.body.id,
      data: { everyone: true },
    });
    expect(e!.json.seq).toBeUndefined();
    await h.expectSseNextIsSentinel(s, user, 1);
  });

  it('SSE: a comment line keeps the stream alive every heartbeat, and the stream outlives two heartbeat intervals', async () => {
    const user = 'fh-beat';
    const s = await h.sse(user);
    const openedAt = Date.now();
    // Time passing is what is tested: heartbeats come every 300 ms.
    await waitUntil(() => s.comments.length >= 3 && Date.now() - openedAt > 900, 5000);
    expect(s.ended).toBe(false);
    await h.expectSseNextIsSentinel(s, user, 1);
  });

  // Regression: the heartbeat wheel used to drop a held long poll as a silent connection after
  // two heartbeat intervals (destroying the socket), so with the defaults a valid 31..60 s poll
  // was cut at ~30 s.
  it('a long poll held longer than two heartbeat intervals still answers 200 {"messages":[]} at its timeout', async () => {
    const r = await h.pollAs('fh-longpoll', { timeout: 1.5 }).catch((err: unknown) => ({
      status: -1,
      body: String((err as Error).cause ?? err),
      ms: 0,
    }));
    expect(r.body).toEqual({ messages: [] });
    expect(r.status).toBe(200);
    expect(r.ms).toBeGreaterThanOrEqual(1400);
  });
});
