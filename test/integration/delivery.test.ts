import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Frame, TestClient } from '../helpers/client.js';
import { type APPS, startServer, type TestServer } from '../helpers/server.js';

type App = keyof typeof APPS;

/** Black-box tests of the delivery promise (docs/reference/server-api.md "Delivery promise", "Push"; docs/reference/client-api.md frames). */
describe('delivery', () => {
  let t: TestServer;
  const open: TestClient[] = [];

  beforeAll(async () => {
    // Live resends are not what these tests look at: keep them out of the way.
    t = await startServer({ PUSH_RESEND_MS: '60s' });
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
  });
  afterAll(() => t.stop());

  async function connect(
    user: string,
    o: { app?: App; device?: string; since?: number; platform?: string } = {},
  ): Promise<TestClient> {
    const app = o.app ?? 'a';
    const token = await t.token(user, { app, ...(o.platform ? { platform: o.platform } : {}) });
    const c = await TestClient.open(t.ws, {
      app,
      token,
      ...(o.device ? { device: o.device } : {}),
      ...(o.since !== undefined ? { since: o.since } : {}),
    });
    open.push(c);
    return c;
  }

  async function pushTo(user: string, extra: Record<string, unknown> = {}, app: App = 'a') {
    const res = await t.push({ to: { users: [user] }, data: { n: Math.random() }, ...extra }, app);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return res.body as { id: string; recipients: number; duplicate: boolean };
  }

  /**
   * Proves a client received nothing else (for this user) since the frames already consumed:
   * pushes a sentinel, then the very next message on the socket must be that sentinel.
   */
  async function expectNextIsSentinel(c: TestClient, user: string, seq: number, app: App = 'a') {
    const s = await pushTo(user, { type: 'sentinel' }, app);
    const [m] = await c.messages(1);
    expect(m).toMatchObject({ op: 'message', id: s.id, seq, type: 'sentinel' });
  }

  const seqs = (ms: Frame[]) => ms.map((m) => m.seq);

  it('push to an online user with two devices reaches both with the same seq and id', async () => {
    const d1 = await connect('dl-two', { device: 'phone' });
    const d2 = await connect('dl-two', { device: 'laptop' });
    const r = await pushTo('dl-two', { type: 'notification', data: { title: 'hi' } });
    expect(r).toMatchObject({ recipients: 1, duplicate: false });
    const [m1] = await d1.messages(1);
    const [m2] = await d2.messages(1);
    expect(m1).toMatchObject({
      op: 'message',
      seq: 1,
      id: r.id,
      type: 'notification',
      data: { title: 'hi' },
    });
    expect(m2).toMatchObject({
      op: 'message',
      seq: 1,
      id: r.id,
      type: 'notification',
      data: { title: 'hi' },
    });
    expect(typeof m1!.timestamp).toBe('number');
    expect(m2!.timestamp).toBe(m1!.timestamp);
  });

  it('offline backlog: 5 pushes to an offline user arrive on connect as exactly seqs 1..5 in order', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await pushTo('dl-backlog', { data: { i } })).id);
    const c = await connect('dl-backlog');
    const ms = await c.messages(5);
    expect(seqs(ms)).toEqual([1, 2, 3, 4, 5]);
    expect(ms.map((m) => m.id)).toEqual(ids);
    expect(ms.map((m) => m.data)).toEqual([0, 1, 2, 3, 4].map((i) => ({ i })));
    await expectNextIsSentinel(c, 'dl-backlog', 6);
  });

  it('acked messages are not resent: cumulative ack up to seq 3, reconnect gets only 4 and 5', async () => {
    for (let i = 0; i < 5; i++) await pushTo('dl-ack');
    const c1 = await connect('dl-ack', { device: 'd1' });
    expect(seqs(await c1.messages(5))).toEqual([1, 2, 3, 4, 5]);
    const ok = await c1.request({ op: 'ack', seq: 3 });
    expect(ok.op).toBe('ok');
    await c1.close();

    const c2 = await connect('dl-ack', { device: 'd1' });
    expect(seqs(await c2.messages(2))).toEqual([4, 5]);
    await expectNextIsSentinel(c2, 'dl-ack', 6);
  });

  it('acked messages are not resent: ack by ids, reconnect gets only the unacked one', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await pushTo('dl-ack-ids')).id);
    const c1 = await connect('dl-ack-ids');
    expect(seqs(await c1.messages(3))).toEqual([1, 2, 3]);
    const ok = await c1.request({ op: 'ack', ids: [ids[0], ids[2]] });
    expect(ok.op).toBe('ok');
    await c1.close();

    const c2 = await connect('dl-ack-ids');
    const [m] = await c2.messages(1);
    expect(m).toMatchObject({ seq: 2, id: ids[1] });
    await expectNextIsSentinel(c2, 'dl-ack-ids', 4);
  });

  it('since= is exact: reconnect with since=2 replays 3, 4, 5 (acked ones included) and nothing else', async () => {
    for (let i = 0; i < 5; i++) await pushTo('dl-since');
    const c1 = await connect('dl-since');
    expect(seqs(await c1.messages(5))).toEqual([1, 2, 3, 4, 5]);
    expect((await c1.request({ op: 'ack', seq: 5 })).op).toBe('ok');
    await c1.close();

    const c2 = await connect('dl-since', { since: 2 });
    expect(seqs(await c2.messages(3))).toEqual([3, 4, 5]);
    await expectNextIsSentinel(c2, 'dl-since', 6);
  });

  it('per-user seq order: backlog then live messages form one gapless, duplicate-free seq sequence', async () => {
    // ~9 MB of backlog: more than loopback socket buffers hold, so while the client reads
    // nothing the server's replay is still in flight when the live pushes are accepted.
    const backlog = 150;
    const pad = 'x'.repeat(60_000);
    for (let i = 0; i < backlog; i += 10) {
      const batch = await t.api('POST', '/v1/push/batch', {
        messages: Array.from({ length: 10 }, (_, j) => ({
          to: { users: ['dl-race'] },
          data: { i: i + j, pad },
        })),
      });
      expect(batch.status).toBe(200);
      expect(batch.body.results.every((r: any) => r.duplicate === false)).toBe(true);
    }

    const c = await connect('dl-race');
    // Right after welcome: a slow reader (socket paused) while live messages are accepted.
    c.ws.pause();
    const live = await Promise.all(
      Array.from({ length: 10 }, (_, i) => pushTo('dl-race', { data: { live: i } })),
    );
    c.ws.resume();
    const total = backlog + live.length;
    const ms = await c.messages(total);
    expect(seqs(ms)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(ms.slice(0, backlog).map((m) => m.data.i)).toEqual(Array.from({ length: backlog }, (_, i) => i));
    expect(new Set(ms.slice(backlog).map((m) => m.id))).toEqual(new Set(live.map((r) => r.id)));
    await expectNextIsSentinel(c, 'dl-race', total + 1);
  });

  it('idempotency: the same id and body again is a duplicate, not delivered twice (key order ignored)', async () => {
    const c = await connect('dl-dup');
    const first = await t.push({ id: 'dup-1', to: { users: ['dl-dup'] }, data: { a: 1, b: { x: 1, y: 2 } } });
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({ id: 'dup-1', recipients: 1, duplicate: false });
    const [m] = await c.messages(1);
    expect(m).toMatchObject({ seq: 1, id: 'dup-1' });

    const again = await t.push({ data: { b: { y: 2, x: 1 }, a: 1 }, to: { users: ['dl-dup'] }, id: 'dup-1' });
    expect(again.status).toBe(202);
    expect(again.body).toMatchObject({ id: 'dup-1', recipients: 1, duplicate: true });
    await expectNextIsSentinel(c, 'dl-dup', 2);
  });

  it('idempotency: the same id with a different body is 409 conflict and the first message is untouched', async () => {
    const first = await t.push({ id: 'conf-1', to: { users: ['dl-conflict'] }, data: { v: 1 } });
    expect(first.status).toBe(202);
    const other = await t.push({ id: 'conf-1', to: { users: ['dl-conflict'] }, data: { v: 2 } });
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe('conflict');
    const status = await t.api('GET', '/v1/messages/conf-1');
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({ id: 'conf-1', data: { v: 1 }, to: { users: ['dl-conflict'] } });
    expect(status.body.recipients).toHaveLength(1);

    const c = await connect('dl-conflict');
    const [m] = await c.messages(1);
    expect(m).toMatchObject({ seq: 1, id: 'conf-1', data: { v: 1 } });
    await expectNextIsSentinel(c, 'dl-conflict', 2);
  });

  it('idempotency: "the same body" compares type after its default; a different ttl is a conflict', async () => {
    const first = await t.push({ id: 'dflt-1', to: { users: ['dl-dflt'] }, data: { k: 1 } });
    expect(first.status).toBe(202);
    const same = await t.push({ id: 'dflt-1', type: 'message', to: { users: ['dl-dflt'] }, data: { k: 1 } });
    expect(same.status).toBe(202);
    expect(same.body).toMatchObject({ id: 'dflt-1', duplicate: true, recipients: 1 });
    const otherTtl = await t.push({ id: 'dflt-1', to: { users: ['dl-dflt'] }, data: { k: 1 }, ttl: 60 });
    expect(otherTtl.status).toBe(409);
    expect(otherTtl.body.error.code).toBe('conflict');
    const status = await t.api('GET', '/v1/messages/dflt-1');
    expect(status.body).toMatchObject({ type: 'message', ttl: null });
  });

  it('idempotency: 20 concurrent requests with one id give exactly one duplicate:false and one delivery', async () => {
    const c = await connect('dl-conc');
    const body = { id: 'conc-1', to: { users: ['dl-conc'] }, data: { hello: 'world' } };
    const replies = await Promise.all(Array.from({ length: 20 }, () => t.push(body)));
    expect(replies.map((r) => r.status)).toEqual(Array(20).fill(202));
    expect(replies.filter((r) => r.body.duplicate === false)).toHaveLength(1);
    expect(replies.filter((r) => r.body.duplicate === true)).toHaveLength(19);
    for (const r of replies) expect(r.body).toMatchObject({ id: 'conc-1', recipients: 1 });
    const [m] = await c.messages(1);
    expect(m).toMatchObject({ seq: 1, id: 'conc-1' });
    await expectNextIsSentinel(c, 'dl-conc', 2);
    const status = await t.api('GET', '/v1/messages/conc-1');
    expect(status.body.recipients).toHaveLength(1);
  });

  it('recipients: a user listed twice counts once and gets one message', async () => {
    const c = await connect('dl-twice');
    const r = await t.push({ to: { users: ['dl-twice', 'dl-twice'] }, data: 1 });
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ recipients: 1, duplicate: false });
    const [m] = await c.messages(1);
    expect(m).toMatchObject({ seq: 1, id: r.body.id });
    await expectNextIsSentinel(c, 'dl-twice', 2);
  });

  it('recipients: the devices form counts users, not devices', async () => {
    const r = await t.push({
      to: {
        devices: [
          { user: 'dl-dev-u1', device: 'd1' },
          { user: 'dl-dev-u1', device: 'd2' },
          { user: 'dl-dev-u2', device: 'd1' },
        ],
      },
      data: null,
    });
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ recipients: 2, duplicate: false });
    const status = await t.api('GET', `/v1/messages/${encodeURIComponent(r.body.id)}`);
    expect(status.body.recipients.map((x: any) => x.user).sort()).toEqual(['dl-dev-u1', 'dl-dev-u2']);
  });

  it('apps are isolated: a push in app a reaches only the app-a socket of a shared user id; app b gets 404', async () => {
    const ca = await connect('dl-iso', { app: 'a' });
    const cb = await connect('dl-iso', { app: 'b' });
    const r = await pushTo('dl-iso', { data: { app: 'a' } }, 'a');
    const [m] = await ca.messages(1);
    expect(m).toMatchObject({ seq: 1, id: r.id, data: { app: 'a' } });
    // App b's socket: the next thing it gets is app b's own first message, seq 1.
    await expectNextIsSentinel(cb, 'dl-iso', 1, 'b');

    const fromB = await t.api('GET', `/v1/messages/${encodeURIComponent(r.id)}`, undefined, 'b');
    expect(fromB.status).toBe(404);
    expect(fromB.body.error.code).toBe('not_found');
    const fromA = await t.api('GET', `/v1/messages/${encodeURIComponent(r.id)}`, undefined, 'a');
    expect(fromA.status).toBe(200);
  });

  it('platforms filter: platforms ["mobile"] reaches the mobile connection, not the web one', async () => {
    const web = await connect('dl-plat', { platform: 'web', device: 'w' });
    const mobile = await connect('dl-plat', { platform: 'mobile', device: 'm' });
    const r = await pushTo('dl-plat', { platforms: ['mobile'] });
    const [m] = await mobile.messages(1);
    expect(m).toMatchObject({ seq: 1, id: r.id });
    // The web connection's next message is the unfiltered seq 2: it never got seq 1.
    await expectNextIsSentinel(web, 'dl-plat', 2);
    const [m2] = await mobile.messages(1);
    expect(m2).toMatchObject({ seq: 2, type: 'sentinel' });
  });

  it('devices target: to.devices [{user, device:"d1"}] reaches only d1', async () => {
    const d1 = await connect('dl-devt', { device: 'd1' });
    const d2 = await connect('dl-devt', { device: 'd2' });
    const r = await t.push({ to: { devices: [{ user: 'dl-devt', device: 'd1' }] }, data: { only: 'd1' } });
    expect(r.status).toBe(202);
    expect(r.body.recipients).toBe(1);
    const [m] = await d1.messages(1);
    expect(m).toMatchObject({ seq: 1, id: r.body.id, data: { only: 'd1' } });
    await expectNextIsSentinel(d2, 'dl-devt', 2);
  });

  it('ttl 0 to an online user: delivered, status "sent" (not expired), never resent on a later connection', async () => {
    const c = await connect('dl-ttl0-on');
    const r = await pushTo('dl-ttl0-on', { ttl: 0 });
    expect(r.recipients).toBe(1);
    const [m] = await c.messages(1);
    expect(m).toMatchObject({ seq: 1, id: r.id });
    const status = await t.api('GET', `/v1/messages/${encodeURIComponent(r.id)}`);
    expect(status.body.ttl).toBe(0);
    expect(status.body.recipients).toEqual([
      expect.objectContaining({ user: 'dl-ttl0-on', seq: 1, status: 'sent' }),
    ]);
    await c.close();

    const c2 = await connect('dl-ttl0-on');
    await expectNextIsSentinel(c2, 'dl-ttl0-on', 2);
  });

  it('ttl 0 to an offline user: expired at once and never delivered on a later connection', async () => {
    const r = await pushTo('dl-ttl0-off', { ttl: 0 });
    expect(r.recipients).toBe(1);
    const status = await t.api('GET', `/v1/messages/${encodeURIComponent(r.id)}`);
    expect(status.body.recipients).toEqual([
      expect.objectContaining({ user: 'dl-ttl0-off', seq: 1, status: 'expired' }),
    ]);
    const c = await connect('dl-ttl0-off');
    await expectNextIsSentinel(c, 'dl-ttl0-off', 2);
  });

  it('ttl: expired messages are never delivered (ttl 1 to an offline user, after the ttl passed)', async () => {
    const r = await pushTo('dl-ttl1', { ttl: 1 });
    const before = await t.api('GET', `/v1/messages/${encodeURIComponent(r.id)}`);
    expect(before.body.ttl).toBe(1);
    const expiresAt = before.body.timestamp + 1000;
    // Time passing is what is tested here: wait until the ttl is over.
    await new Promise((res) => setTimeout(res, Math.max(0, expiresAt - Date.now()) + 50));
    const after = await t.api('GET', `/v1/messages/${encodeURIComponent(r.id)}`);
    expect(after.body.recipients).toEqual([
      expect.objectContaining({ user: 'dl-ttl1', seq: 1, status: 'expired' }),
    ]);
    const c = await connect('dl-ttl1');
    await expectNextIsSentinel(c, 'dl-ttl1', 2);
  });

  it('ack clamp: an ack for a seq the user never had does not suppress later messages', async () => {
    const c = await connect('dl-clamp');
    await pushTo('dl-clamp');
    await pushTo('dl-clamp');
    expect(seqs(await c.messages(2))).toEqual([1, 2]);
    const ok = await c.request({ op: 'ack', seq: 1000 });
    expect(ok.op).toBe('ok');

    const r = await pushTo('dl-clamp');
    const [m] = await c.messages(1);
    expect(m).toMatchObject({ seq: 3, id: r.id });
    const status = await t.api('GET', `/v1/messages/${encodeURIComponent(r.id)}`);
    expect(status.body.recipients).toEqual([
      expect.objectContaining({ seq: 3, status: 'sent', acked_at: null }),
    ]);
    await c.close();
    // Unacked, so it is in the backlog of the next connection.
    const c2 = await connect('dl-clamp');
    const [again] = await c2.messages(1);
    expect(again).toMatchObject({ seq: 3, id: r.id });
  });
});

describe('delivery: broadcast to $all', () => {
  let t: TestServer;
  const open: TestClient[] = [];
  beforeAll(async () => {
    // Its own server, so the number of app-a connections is known exactly.
    t = await startServer({ PUSH_RESEND_MS: '60s' });
  });
  afterAll(async () => {
    await Promise.all(open.map((c) => c.close()));
    await t.stop();
  });

  it('{"to":{"all":true}} reaches every connection of app a as topic $all and none of app b', async () => {
    const conn = async (user: string, app: App, device?: string) => {
      const c = await TestClient.open(t.ws, {
        app,
        token: await t.token(user, { app }),
        ...(device ? { device } : {}),
      });
      open.push(c);
      return c;
    };
    const a1 = await conn('all-u1', 'a', 'd1');
    const a2 = await conn('all-u1', 'a', 'd2');
    const a3 = await conn('all-u2', 'a');
    const b1 = await conn('all-u1', 'b');

    const r = await t.push({ to: { all: true }, type: 'alarm', data: { everyone: true } });
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ recipients: 3, duplicate: false });
    const got = await Promise.all([a1, a2, a3].map(async (c) => (await c.messages(1))[0]!));
    for (const m of got) {
      expect(m).toMatchObject({
        op: 'message',
        topic: '$all',
        id: r.body.id,
        type: 'alarm',
        data: { everyone: true },
      });
      expect(Number.isInteger(m.offset) && m.offset > 0).toBe(true);
      expect(m.offset).toBe(got[0]!.offset);
      expect(m.seq).toBeUndefined();
    }

    const status = await t.api('GET', `/v1/messages/${encodeURIComponent(r.body.id)}`);
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({
      id: r.body.id,
      topic: '$all',
      offset: got[0]!.offset,
      recipients: [],
    });

    // App b's connection: the next message it sees is app b's own.
    const s = await t.push({ to: { users: ['all-u1'] }, type: 'sentinel', data: null }, 'b');
    expect(s.status).toBe(202);
    const [mb] = await b1.messages(1);
    expect(mb).toMatchObject({ id: s.body.id, seq: 1, type: 'sentinel' });
  });
});
