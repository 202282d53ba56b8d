import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';

/** Black-box tests of the server API around users (docs/reference/server-api.md "Messages", "Users"). */
describe('user API', () => {
  let t: TestServer;
  const open: TestClient[] = [];

  beforeAll(async () => {
    t = await startServer({ PUSH_RESEND_MS: '60s' });
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
  });
  afterAll(() => t.stop());

  async function connect(
    user: string,
    o: { device?: string; since?: number; platform?: string } = {},
  ): Promise<TestClient> {
    const token = await t.token(user, o.platform ? { platform: o.platform } : {});
    const c = await TestClient.open(t.ws, {
      app: 'a',
      token,
      ...(o.device ? { device: o.device } : {}),
      ...(o.since !== undefined ? { since: o.since } : {}),
    });
    open.push(c);
    return c;
  }

  async function pushTo(user: string, extra: Record<string, unknown> = {}) {
    const res = await t.push({ to: { users: [user] }, data: { n: Math.random() }, ...extra });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return res.body as { id: string; recipients: number; duplicate: boolean };
  }

  const status = (id: string) => t.api('GET', `/v1/messages/${encodeURIComponent(id)}`);
  const welcomeOf = (c: TestClient) => c.frames.find((f) => f.op === 'welcome')!;

  describe('GET /v1/messages/{id}', () => {
    it('has the documented shape and shows pending for an offline user', async () => {
      const r = await pushTo('ua-st-shape', {
        id: 'st-shape-1',
        type: 'notification',
        ttl: 3600,
        data: { title: 't', nested: [1, { a: null }] },
      });
      const s = await status(r.id);
      expect(s.status).toBe(200);
      expect(s.body).toMatchObject({
        id: 'st-shape-1',
        type: 'notification',
        ttl: 3600,
        data: { title: 't', nested: [1, { a: null }] },
        to: { users: ['ua-st-shape'] },
      });
      expect(typeof s.body.timestamp).toBe('number');
      expect(Math.abs(s.body.timestamp - Date.now())).toBeLessThan(60_000);
      expect(s.body.recipients).toMatchObject([
        { user: 'ua-st-shape', seq: 1, status: 'pending', retries: 0, sent_at: null, acked_at: null },
      ]);
    });

    it('unknown id → 404 not_found', async () => {
      const s = await status('no-such-message');
      expect(s.status).toBe(404);
      expect(s.body.error.code).toBe('not_found');
    });

    it('status never goes back: pending → sent (sent_at) → acked (acked_at), and stays acked on re-delivery', async () => {
      const r = await pushTo('ua-st-flow');
      const pending = await status(r.id);
      expect(pending.body.recipients[0]).toMatchObject({ status: 'pending', sent_at: null, acked_at: null });
      const ts = pending.body.timestamp as number;

      const c1 = await connect('ua-st-flow');
      const [m] = await c1.messages(1);
      expect(m).toMatchObject({ seq: 1, id: r.id });
      const sent = await status(r.id);
      expect(sent.body.recipients[0]).toMatchObject({ status: 'sent', acked_at: null });
      expect(sent.body.recipients[0].sent_at).toBeGreaterThanOrEqual(ts);

      const ok = await c1.request({ op: 'ack', seq: 1 });
      expect(ok.op).toBe('ok');
      const acked = await status(r.id);
      expect(acked.body.recipients[0]).toMatchObject({
        status: 'acked',
        sent_at: sent.body.recipients[0].sent_at,
      });
      expect(acked.body.recipients[0].acked_at).toBeGreaterThanOrEqual(sent.body.recipients[0].sent_at);
      await c1.close();

      // since=0 re-delivers everything, acked included; the status must not fall back to sent.
      const c2 = await connect('ua-st-flow', { since: 0 });
      const [again] = await c2.messages(1);
      expect(again).toMatchObject({ seq: 1, id: r.id });
      const still = await status(r.id);
      expect(still.body.recipients[0]).toMatchObject({
        status: 'acked',
        acked_at: acked.body.recipients[0].acked_at,
      });
    });
    it('a message id with emoji, "/" and "?" works percent-encoded in the path', async () => {
      const id = 'msg/😀?ü#1';
      const r = await pushTo('ua-st-emoji', { id });
      expect(r.id).toBe(id);
      const s = await status(id);
      expect(s.status).toBe(200);
      expect(s.body.id).toBe(id);
      expect(s.body.recipients[0]).toMatchObject({ user: 'ua-st-emoji', seq: 1 });
    });

    it('ack effects are visible to API calls made after the frame was received (no ref on the ack)', async () => {
      const r = await pushTo('ua-st-noref');
      const c = await connect('ua-st-noref');
      await c.messages(1);
      c.send({ op: 'ack', seq: 1 });
      // Frames on one socket are handled in order: the pong proves the ack was received.
      expect((await c.request({ op: 'ping' })).op).toBe('pong');
      expect(c.frames.some((f) => f.op === 'ok' || f.op === 'error')).toBe(false);
      const s = await status(r.id);
      expect(s.body.recipients[0]).toMatchObject({ status: 'acked' });
    });
  });

  describe('presence', () => {
    it('GET /v1/users/{u}/presence lists the connections of an online user', async () => {
      const c = await connect('ua-pres', { device: 'd1', platform: 'web' });
      const before = Date.now();
      const p = await t.api('GET', '/v1/users/ua-pres/presence');
      expect(p.status).toBe(200);
      expect(p.body).toMatchObject({ user: 'ua-pres', online: true });
      expect(p.body.connections).toHaveLength(1);
      const conn = p.body.connections[0];
      expect(conn).toMatchObject({
        connection_id: welcomeOf(c).connection_id,
        device: 'd1',
        platform: 'web',
      });
      expect(typeof conn.node).toBe('string');
      expect(conn.node.length).toBeGreaterThan(0);
      expect(conn.connected_at).toBeLessThanOrEqual(before);
      expect(conn.connected_at).toBeGreaterThan(before - 60_000);
      expect(conn.last_heartbeat).toBeGreaterThanOrEqual(conn.connected_at);

      await c.close();
      // The server may see the TCP close a moment after the client: poll (bounded) for the state.
      let after = await t.api('GET', '/v1/users/ua-pres/presence');
      for (let i = 0; i < 100 && after.body.online !== false; i++) {
        await new Promise((res) => setTimeout(res, 20));
        after = await t.api('GET', '/v1/users/ua-pres/presence');
      }
      expect(after.body).toMatchObject({ user: 'ua-pres', online: false, connections: [] });
    });

    it('bulk GET /v1/presence?users=a,b reports online and offline users', async () => {
      await connect('ua-bulk-on', { device: 'x' });
      const p = await t.api('GET', '/v1/presence?users=ua-bulk-on,ua-bulk-off');
      expect(p.status).toBe(200);
      expect(p.body.users['ua-bulk-off']).toMatchObject({ online: false, connections: [] });
      expect(p.body.users['ua-bulk-on'].online).toBe(true);
      expect(p.body.users['ua-bulk-on'].connections).toEqual([expect.objectContaining({ device: 'x' })]);
    });

    it('a user id with emoji works percent-encoded in the path (byte-exact round trip)', async () => {
      const user = 'ua-😀 ü/ع?x';
      await connect(user, { device: 'e1' });
      const p = await t.api('GET', `/v1/users/${encodeURIComponent(user)}/presence`);
      expect(p.status).toBe(200);
      expect(p.body).toMatchObject({ user, online: true });
      expect(p.body.connections).toEqual([expect.objectContaining({ device: 'e1' })]);
      const bulk = await t.api('GET', `/v1/presence?users=${encodeURIComponent(user)}`);
      expect(bulk.status).toBe(200);
      expect(bulk.body.users[user].online).toBe(true);
    });
  });

  describe('kick', () => {
    it('DELETE /v1/users/{u}/connections closes every connection with 4003', async () => {
      const c1 = await connect('ua-kick', { device: 'd1' });
      const c2 = await connect('ua-kick', { device: 'd2' });
      const r = await t.api('DELETE', '/v1/users/ua-kick/connections');
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ closed: 2 });
      expect(await c1.closed()).toBe(4003);
      expect(await c2.closed()).toBe(4003);
      const p = await t.api('GET', '/v1/users/ua-kick/presence');
      expect(p.body.online).toBe(false);
    });

    it('?device=d1 closes only d1', async () => {
      const c1 = await connect('ua-kick-dev', { device: 'd1' });
      const c2 = await connect('ua-kick-dev', { device: 'd2' });
      const r = await t.api('DELETE', '/v1/users/ua-kick-dev/connections?device=d1');
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ closed: 1 });
      expect(await c1.closed()).toBe(4003);
      // d2 is still open and live.
      const m = await pushTo('ua-kick-dev');
      const [got] = await c2.messages(1);
      expect(got).toMatchObject({ id: m.id, seq: 1 });
      expect(c2.closeCode).toBeNull();
      const p = await t.api('GET', '/v1/users/ua-kick-dev/presence');
      expect(p.body.connections).toEqual([expect.objectContaining({ device: 'd2' })]);
    });
  });

  describe('unread and read', () => {
    it('counts unread, moves by socket and HTTP, clamps to the newest seq and never moves back', async () => {
      const u = 'ua-unread';
      for (let i = 0; i < 3; i++) await pushTo(u);
      const path = `/v1/users/${u}/unread`;
      expect((await t.api('GET', path)).body).toMatchObject({ count: 3, last_read_seq: 0 });

      const c = await connect(u);
      expect((await c.request({ op: 'read', seq: 2 })).op).toBe('ok');
      expect((await t.api('GET', path)).body).toMatchObject({ count: 1, last_read_seq: 2 });

      const clamped = await t.api('POST', `/v1/users/${u}/read`, { seq: 100 });
      expect(clamped.status).toBe(200);
      expect(clamped.body).toMatchObject({ count: 0, last_read_seq: 3 });

      const back = await t.api('POST', `/v1/users/${u}/read`, { seq: 1 });
      expect(back.status).toBe(200);
      expect(back.body).toMatchObject({ count: 0, last_read_seq: 3 });
      expect((await c.request({ op: 'read', seq: 1 })).op).toBe('ok');
      expect((await t.api('GET', path)).body).toMatchObject({ count: 0, last_read_seq: 3 });

      // A new message is unread again; the clamp did not run ahead of it.
      await pushTo(u);
      expect((await t.api('GET', path)).body).toMatchObject({ count: 1, last_read_seq: 3 });
    });

    it('a socket read without ref is visible to API calls made after the frame was received', async () => {
      const u = 'ua-read-noref';
      for (let i = 0; i < 2; i++) await pushTo(u);
      const c = await connect(u);
      c.send({ op: 'read', seq: 1 });
      expect((await c.request({ op: 'ping' })).op).toBe('pong');
      expect((await t.api('GET', `/v1/users/${u}/unread`)).body).toMatchObject({
        count: 1,
        last_read_seq: 1,
      });
    });

    it('POST /v1/users/{u}/read with a bad seq → 400 bad_request', async () => {
      await pushTo('ua-read-bad');
      for (const body of [{ seq: 'x' }, { seq: -1 }, { seq: 1.5 }, {}, { seq: null }]) {
        const r = await t.api('POST', '/v1/users/ua-read-bad/read', body);
        expect(r.status, JSON.stringify(body)).toBe(400);
        expect(r.body.error.code).toBe('bad_request');
      }
      expect((await t.api('GET', '/v1/users/ua-read-bad/unread')).body).toMatchObject({
        count: 1,
        last_read_seq: 0,
      });
    });
  });

  describe('batch', () => {
    it('a repeated id inside one batch is a duplicate of the earlier item', async () => {
      const u = 'ua-batch-dup';
      const item = { id: 'bd-1', to: { users: [u] }, data: { x: 1 } };
      const r = await t.api('POST', '/v1/push/batch', { messages: [item, item] });
      expect(r.status).toBe(200);
      expect(r.body.results).toMatchObject([
        { id: 'bd-1', recipients: 1, duplicate: false },
        { id: 'bd-1', recipients: 1, duplicate: true },
      ]);
      expect((await t.api('GET', `/v1/users/${u}/unread`)).body).toMatchObject({
        count: 1,
        last_read_seq: 0,
      });
    });

    it('POST /v1/push/batch answers in request order and seqs follow that order', async () => {
      const u = 'ua-batch';
      const c = await connect(u);
      const ids = ['b-1', 'b-2', 'b-3'];
      const r = await t.api('POST', '/v1/push/batch', {
        messages: ids.map((id, i) => ({ id, to: { users: [u] }, data: { i } })),
      });
      expect(r.status).toBe(200);
      expect(r.body.results).toMatchObject(ids.map((id) => ({ id, recipients: 1, duplicate: false })));
      const ms = await c.messages(3);
      expect(ms.map((m) => [m.seq, m.id])).toEqual([
        [1, 'b-1'],
        [2, 'b-2'],
        [3, 'b-3'],
      ]);
    });

    it('batch items succeed or fail independently', async () => {
      const u = 'ua-batch-mixed';
      const r = await t.api('POST', '/v1/push/batch', {
        messages: [
          { id: 'bm-1', to: { users: [u] } },
          { id: 'bm-2', to: { nobody: true } },
          { id: 'bm-3', to: { users: [u] } },
        ],
      });
      expect(r.status).toBe(200);
      expect(r.body.results).toHaveLength(3);
      expect(r.body.results[0]).toMatchObject({ id: 'bm-1', recipients: 1, duplicate: false });
      expect(r.body.results[1].error.code).toBe('bad_request');
      expect(r.body.results[2]).toMatchObject({ id: 'bm-3', recipients: 1, duplicate: false });
      expect((await t.api('GET', `/v1/users/${u}/unread`)).body).toMatchObject({
        count: 2,
        last_read_seq: 0,
      });
    });
  });
});

describe('user API: /metrics', () => {
  let t: TestServer;
  beforeAll(async () => {
    // Its own server, so nothing else moves the counters.
    t = await startServer();
  });
  afterAll(() => t.stop());

  async function scrape(): Promise<Map<string, number>> {
    const res = await fetch(`${t.http}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    const sums = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      sums.set(m[1]!, (sums.get(m[1]!) ?? 0) + Number(m[3]));
    }
    return Object.assign(sums, { text });
  }

  it('exposes push_connections, push_messages_accepted_total, push_deliveries_total, push_delivery_seconds and they move', async () => {
    const before = (await scrape()) as Map<string, number> & { text: string };
    expect(before.text).toMatch(/^# TYPE push_connections gauge$/m);
    expect(before.text).toMatch(/^# TYPE push_messages_accepted_total counter$/m);
    expect(before.text).toMatch(/^# TYPE push_deliveries_total counter$/m);
    expect(before.text).toMatch(/^# TYPE push_delivery_seconds histogram$/m);
    const get = (m: Map<string, number>, k: string) => m.get(k) ?? 0;

    const c = await TestClient.open(t.ws, { app: 'a', token: await t.token('ua-metrics') });
    const r = await t.push({ to: { users: ['ua-metrics'] }, data: 'x' });
    expect(r.status).toBe(202);
    await c.messages(1);

    const after = await scrape();
    expect(get(after, 'push_connections') - get(before, 'push_connections')).toBe(1);
    expect(get(after, 'push_messages_accepted_total') - get(before, 'push_messages_accepted_total')).toBe(1);
    expect(get(after, 'push_deliveries_total') - get(before, 'push_deliveries_total')).toBe(1);
    expect(get(after, 'push_delivery_seconds_count') - get(before, 'push_delivery_seconds_count')).toBe(1);
    expect(get(after, 'push_delivery_seconds_sum')).toBeGreaterThanOrEqual(0);
    await c.close();
  });
});
