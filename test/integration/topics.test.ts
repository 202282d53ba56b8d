import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { signClientToken } from '../../src/auth/tokens.js';
import { type Frame, TestClient } from '../helpers/client.js';
import { APPS, startServer, type TestServer } from '../helpers/server.js';

type App = keyof typeof APPS;

/**
 * Black-box tests of topics (docs/reference/server-api.md "Words", "Topics"; docs/reference/client-api.md frames,
 * "Status"): token topic patterns, subscribe/unsubscribe, live fan-out, replay by offset,
 * retention, `$all`, topic presence and topic history.
 */

/** Shared plumbing for one server under test. */
function harness(getServer: () => TestServer) {
  const open: TestClient[] = [];

  /** A socket for `user`; `topics` becomes the token's `topics` claim (absent when undefined). */
  async function connect(
    user: string,
    o: { topics?: string[]; app?: App; device?: string } = {},
  ): Promise<TestClient> {
    const t = getServer();
    const app = o.app ?? 'a';
    const token = o.topics
      ? await signClientToken({ secret: APPS[app], userId: user, ttlSeconds: 3600, topics: o.topics })
      : await t.token(user, { app });
    const c = await TestClient.open(t.ws, { app, token, ...(o.device ? { device: o.device } : {}) });
    open.push(c);
    return c;
  }

  async function pushTopic(topic: string, extra: Record<string, unknown> = {}, app: App = 'a') {
    const res = await getServer().push({ to: { topic }, data: { n: Math.random() }, ...extra }, app);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return res.body as { id: string; recipients: number; duplicate: boolean };
  }

  async function pushUser(user: string, extra: Record<string, unknown> = {}, app: App = 'a') {
    const res = await getServer().push({ to: { users: [user] }, data: { n: Math.random() }, ...extra }, app);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return res.body as { id: string; recipients: number; duplicate: boolean };
  }

  /**
   * Proves a client received no other message (topic or user) since the frames already consumed:
   * pushes a user-targeted sentinel; the very next message frame must be it.
   */
  async function expectNextIsSentinel(c: TestClient, user: string, app: App = 'a') {
    const s = await pushUser(user, { type: 'sentinel' }, app);
    const [m] = await c.messages(1);
    expect(m).toMatchObject({ op: 'message', id: s.id, type: 'sentinel' });
    expect(m!.topic).toBeUndefined();
  }

  const subscribe = (c: TestClient, topic: string, since?: number) =>
    c.request({ op: 'subscribe', topic, ...(since !== undefined ? { since } : {}) });

  const closeAll = () => Promise.all(open.splice(0).map((c) => c.close()));

  return { connect, pushTopic, pushUser, expectNextIsSentinel, subscribe, closeAll };
}

const offsets = (ms: Frame[]) => ms.map((m) => m.offset);

describe('topics', () => {
  let t: TestServer;
  const h = harness(() => t);

  beforeAll(async () => {
    t = await startServer({ PUSH_RESEND_MS: '60s' });
  });
  afterEach(() => h.closeAll());
  afterAll(() => t.stop());

  it('without a topics claim only $all may be subscribed: a topic → error forbidden echoing the ref', async () => {
    const c = await h.connect('tp-noclaim');
    c.send({ op: 'subscribe', topic: 'room:tp-noclaim', ref: 'sub-1' });
    const err = await c.next((f) => f.ref === 'sub-1');
    expect(err).toMatchObject({ op: 'error', code: 'forbidden', ref: 'sub-1' });

    const all = await h.subscribe(c, '$all');
    expect(all).toMatchObject({ op: 'subscribed', topic: '$all' });
    expect(Number.isInteger(all.offset)).toBe(true);

    // The refused subscription did not happen: a push to that topic has no recipients and
    // does not reach the client.
    const r = await h.pushTopic('room:tp-noclaim');
    expect(r.recipients).toBe(0);
    await h.expectNextIsSentinel(c, 'tp-noclaim');
  });

  it('claim ["room:*"]: "room:…" → subscribed {topic, offset = current offset, ref}; "news" and "room" → forbidden', async () => {
    await h.pushTopic('room:tp-claim');
    await h.pushTopic('room:tp-claim');
    const c = await h.connect('tp-claim', { topics: ['room:*'] });

    c.send({ op: 'subscribe', topic: 'room:tp-claim', ref: 'r-ok' });
    const ok = await c.next((f) => f.ref === 'r-ok');
    expect(ok).toEqual({ op: 'subscribed', topic: 'room:tp-claim', offset: 2, ref: 'r-ok' });

    const fresh = await h.subscribe(c, 'room:tp-claim-fresh');
    expect(fresh).toMatchObject({ op: 'subscribed', topic: 'room:tp-claim-fresh', offset: 0 });

    c.send({ op: 'subscribe', topic: 'news', ref: 7 });
    expect(await c.next((f) => f.ref === 7)).toMatchObject({ op: 'error', code: 'forbidden', ref: 7 });
    // The wildcard is a prefix match on "room:", so "room" itself is not covered.
    expect(await h.subscribe(c, 'room')).toMatchObject({ op: 'error', code: 'forbidden' });
  });

  it('an exact claim ["news"] allows "news" only (not "news:1" nor "newsroom")', async () => {
    const c = await h.connect('tp-exact', { topics: ['news'] });
    expect(await h.subscribe(c, 'news')).toMatchObject({ op: 'subscribed', topic: 'news' });
    expect(await h.subscribe(c, 'news:1')).toMatchObject({ op: 'error', code: 'forbidden' });
    expect(await h.subscribe(c, 'newsroom')).toMatchObject({ op: 'error', code: 'forbidden' });
  });

  it('a topic push reaches every subscribed connection as {op:"message", topic, offset, …}, no other connection; recipients = subscribed connections', async () => {
    const topic = 'room:tp-fan';
    const a1 = await h.connect('tp-fan-a', { topics: ['room:*'], device: 'd1' });
    const a2 = await h.connect('tp-fan-a', { topics: ['room:*'], device: 'd2' });
    const b = await h.connect('tp-fan-b', { topics: ['room:*'] });
    // Same user as a1/a2 with the right claim, but not subscribed; and a user without a claim.
    const a3 = await h.connect('tp-fan-a', { topics: ['room:*'], device: 'd3' });
    const other = await h.connect('tp-fan-c');
    for (const c of [a1, a2, b]) expect((await h.subscribe(c, topic)).op).toBe('subscribed');

    const r = await h.pushTopic(topic, { type: 'text', data: { hello: 'room' } });
    expect(r).toMatchObject({ recipients: 3, duplicate: false });

    const got = await Promise.all([a1, a2, b].map(async (c) => (await c.messages(1))[0]!));
    for (const m of got) {
      expect(m).toEqual({
        op: 'message',
        topic,
        offset: 1,
        id: r.id,
        type: 'text',
        timestamp: got[0]!.timestamp,
        data: { hello: 'room' },
      });
    }
    expect(typeof got[0]!.timestamp).toBe('number');

    await h.expectNextIsSentinel(a3, 'tp-fan-a');
    await h.expectNextIsSentinel(other, 'tp-fan-c');
    // The subscribers got the topic message exactly once.
    await h.expectNextIsSentinel(b, 'tp-fan-b');
  });

  it('subscribe without since replays nothing: the first topic message is the first one pushed after subscribing', async () => {
    const topic = 'room:tp-nosince';
    await h.pushTopic(topic);
    await h.pushTopic(topic);
    const c = await h.connect('tp-nosince', { topics: ['room:*'] });
    expect(await h.subscribe(c, topic)).toMatchObject({ op: 'subscribed', offset: 2 });
    const r = await h.pushTopic(topic);
    const [m] = await c.messages(1);
    expect(m).toMatchObject({ topic, offset: 3, id: r.id });
  });

  it('replay with since is exact: 5 stored, subscribe since=2 → offsets 3, 4, 5, then live 6, no gap or repeat', async () => {
    const topic = 'room:tp-replay';
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) ids.push((await h.pushTopic(topic, { data: { i } })).id);
    const c = await h.connect('tp-replay', { topics: ['room:*'] });

    const sub = await h.subscribe(c, topic, 2);
    expect(sub).toMatchObject({ op: 'subscribed', topic, offset: 5 });
    const replayed = await c.messages(3);
    expect(offsets(replayed)).toEqual([3, 4, 5]);
    expect(replayed.map((m) => m.id)).toEqual(ids.slice(2));
    expect(replayed.map((m) => m.data)).toEqual([{ i: 3 }, { i: 4 }, { i: 5 }]);

    const live = await h.pushTopic(topic, { data: { i: 6 } });
    const [m6] = await c.messages(1);
    expect(m6).toMatchObject({ topic, offset: 6, id: live.id, data: { i: 6 } });
    await h.expectNextIsSentinel(c, 'tp-replay');
  });

  it('replay since=0 while pushes keep arriving: offsets form one gapless, duplicate-free run', async () => {
    const topic = 'room:tp-race';
    for (let i = 1; i <= 20; i++) await h.pushTopic(topic, { data: { i } });
    const c = await h.connect('tp-race', { topics: ['room:*'] });
    c.send({ op: 'subscribe', topic, since: 0, ref: 'race' });
    // Live pushes race the replay.
    await Promise.all(Array.from({ length: 10 }, (_, i) => h.pushTopic(topic, { data: { live: i } })));
    const ms = await c.messages(30);
    expect(offsets(ms)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    await h.expectNextIsSentinel(c, 'tp-race');
  });

  // Regression: a since past the stream's end used to become the subscription's offset, so
  // every live message up to it was dropped while the push reply counted the connection.
  it('a subscribe with since beyond the current offset is refused or still gets live messages', async () => {
    const topic = 'room:tp-ahead';
    await h.pushTopic(topic);
    const c = await h.connect('tp-ahead', { topics: ['room:*'] });
    const reply = await h.subscribe(c, topic, 10);
    if (reply.op === 'error') {
      expect(reply.code).toBe('bad_request');
      return;
    }
    expect(reply).toMatchObject({ op: 'subscribed', topic, offset: 1 });
    const r = await h.pushTopic(topic);
    expect(r.recipients).toBe(1);
    await h.pushUser('tp-ahead', { type: 'sentinel' });
    const [m] = await c.messages(1);
    expect(m).toMatchObject({ topic, offset: 2, id: r.id });
  });

  it('unsubscribe → {"op":"unsubscribed", topic, ref} and no more messages of that topic', async () => {
    const topic = 'room:tp-unsub';
    const c = await h.connect('tp-unsub', { topics: ['room:*'] });
    await h.subscribe(c, topic);
    const r1 = await h.pushTopic(topic);
    expect(r1.recipients).toBe(1);
    expect((await c.messages(1))[0]).toMatchObject({ topic, offset: 1, id: r1.id });

    c.send({ op: 'unsubscribe', topic, ref: 'u-1' });
    const reply = await c.next((f) => f.ref === 'u-1');
    expect(reply).toEqual({ op: 'unsubscribed', topic, ref: 'u-1' });

    const r2 = await h.pushTopic(topic);
    expect(r2.recipients).toBe(0);
    await h.expectNextIsSentinel(c, 'tp-unsub');
  });

  it('GET /v1/topics/{t}/presence → {topic, users, connections}; unsubscribing brings it to 0', async () => {
    const topic = 'room:tp-pres';
    const path = `/v1/topics/${encodeURIComponent(topic)}/presence`;
    const empty = await t.api('GET', path);
    expect(empty.status).toBe(200);
    expect(empty.body).toMatchObject({ topic, users: [], connections: 0 });

    const u1a = await h.connect('tp-pres-u1', { topics: ['room:*'], device: 'a' });
    const u1b = await h.connect('tp-pres-u1', { topics: ['room:*'], device: 'b' });
    const u2 = await h.connect('tp-pres-u2', { topics: ['room:*'] });
    await h.connect('tp-pres-u3', { topics: ['room:*'] }); // connected, not subscribed
    for (const c of [u1a, u1b, u2]) await h.subscribe(c, topic);

    const three = await t.api('GET', path);
    expect(three.status).toBe(200);
    expect(three.body.topic).toBe(topic);
    expect([...three.body.users].sort()).toEqual(['tp-pres-u1', 'tp-pres-u2']);
    expect(three.body.connections).toBe(3);

    await u1a.request({ op: 'unsubscribe', topic });
    const two = await t.api('GET', path);
    expect([...two.body.users].sort()).toEqual(['tp-pres-u1', 'tp-pres-u2']);
    expect(two.body.connections).toBe(2);

    await u1b.request({ op: 'unsubscribe', topic });
    await u2.request({ op: 'unsubscribe', topic });
    const none = await t.api('GET', path);
    expect(none.body).toMatchObject({ topic, users: [], connections: 0 });
  });

  it('topic history pages by offset: no bound → newest, after_offset forward, before_offset backward, has_more per direction', async () => {
    const topic = 'room:tp-hist';
    const ids: string[] = [];
    for (let i = 1; i <= 10; i++) ids.push((await h.pushTopic(topic, { type: 'text', data: { i } })).id);
    const get = async (qs: string) => {
      const res = await t.api('GET', `/v1/topics/${encodeURIComponent(topic)}/messages${qs}`);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return {
        offsets: res.body.messages.map((m: any) => m.offset),
        hasMore: res.body.has_more,
        body: res.body,
      };
    };

    const all = await get('');
    expect(all.offsets).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(all.hasMore).toBe(false);
    expect(all.body.messages[0]).toMatchObject({
      topic,
      offset: 1,
      id: ids[0],
      type: 'text',
      data: { i: 1 },
    });
    expect(typeof all.body.messages[0].timestamp).toBe('number');

    expect(await get('?limit=3')).toMatchObject({ offsets: [8, 9, 10], hasMore: true });
    expect(await get('?after_offset=0&limit=4')).toMatchObject({ offsets: [1, 2, 3, 4], hasMore: true });
    expect(await get('?after_offset=4&limit=4')).toMatchObject({ offsets: [5, 6, 7, 8], hasMore: true });
    expect(await get('?after_offset=8&limit=4')).toMatchObject({ offsets: [9, 10], hasMore: false });
    expect(await get('?after_offset=10')).toMatchObject({ offsets: [], hasMore: false });
    expect(await get('?before_offset=8&limit=3')).toMatchObject({ offsets: [5, 6, 7], hasMore: true });
    expect(await get('?before_offset=4&limit=3')).toMatchObject({ offsets: [1, 2, 3], hasMore: false });
    expect(await get('?before_offset=1')).toMatchObject({ offsets: [], hasMore: false });

    const bad = await t.api('GET', `/v1/topics/${encodeURIComponent(topic)}/messages?limit=0`);
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('bad_request');
  });

  it('GET /v1/messages/{id} of a topic message has topic and offset and empty recipients', async () => {
    const topic = 'room:tp-status';
    await h.pushTopic(topic);
    const r = await h.pushTopic(topic, { type: 'text', data: { s: 1 } });
    const status = await t.api('GET', `/v1/messages/${encodeURIComponent(r.id)}`);
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({
      id: r.id,
      type: 'text',
      data: { s: 1 },
      topic,
      offset: 2,
      recipients: [],
    });
    expect(status.body.to).toEqual({ topic });
  });

  it('topic offsets are per topic and per app: app b has its own offset 1 and its subscribers only see app b', async () => {
    const topic = 'room:tp-apps';
    const ca = await h.connect('tp-apps', { topics: ['room:*'], app: 'a' });
    const cb = await h.connect('tp-apps', { topics: ['room:*'], app: 'b' });
    await h.subscribe(ca, topic);
    await h.subscribe(cb, topic);
    await h.pushTopic(topic, {}, 'a');
    const ra2 = await h.pushTopic(topic, {}, 'a');
    const rb = await h.pushTopic(topic, {}, 'b');
    expect(rb.recipients).toBe(1);
    const msA = await ca.messages(2);
    expect(offsets(msA)).toEqual([1, 2]);
    expect(msA[1]!.id).toBe(ra2.id);
    const [mb] = await cb.messages(1);
    expect(mb).toMatchObject({ topic, offset: 1, id: rb.id });
    await h.expectNextIsSentinel(cb, 'tp-apps', 'b');
    await h.expectNextIsSentinel(ca, 'tp-apps', 'a');
  });
});

describe('topics: retention by count (PUSH_TOPIC_RETENTION_COUNT=3)', () => {
  let t: TestServer;
  const h = harness(() => t);
  beforeAll(async () => {
    t = await startServer({ PUSH_RESEND_MS: '60s', PUSH_TOPIC_RETENTION_COUNT: '3' });
  });
  afterEach(() => h.closeAll());
  afterAll(() => t.stop());

  it('6 pushed: subscribe since=0 replays only offsets 4, 5, 6; topic history lists only them', async () => {
    const topic = 'room:tr-count';
    const ids: string[] = [];
    for (let i = 1; i <= 6; i++) ids.push((await h.pushTopic(topic, { data: { i } })).id);
    const c = await h.connect('tr-count', { topics: ['room:*'] });
    expect(await h.subscribe(c, topic, 0)).toMatchObject({ op: 'subscribed', topic, offset: 6 });
    const ms = await c.messages(3);
    expect(offsets(ms)).toEqual([4, 5, 6]);
    expect(ms.map((m) => m.id)).toEqual(ids.slice(3));
    await h.expectNextIsSentinel(c, 'tr-count');

    const hist = await t.api('GET', `/v1/topics/${encodeURIComponent(topic)}/messages`);
    expect(hist.status).toBe(200);
    expect(hist.body.messages.map((m: any) => m.offset)).toEqual([4, 5, 6]);
    expect(hist.body.has_more).toBe(false);
    const fwd = await t.api('GET', `/v1/topics/${encodeURIComponent(topic)}/messages?after_offset=0&limit=2`);
    expect(fwd.body.messages.map((m: any) => m.offset)).toEqual([4, 5]);
    expect(fwd.body.has_more).toBe(true);
    const back = await t.api('GET', `/v1/topics/${encodeURIComponent(topic)}/messages?before_offset=5`);
    expect(back.body.messages.map((m: any) => m.offset)).toEqual([4]);
    expect(back.body.has_more).toBe(false);
  });
});

describe('topics: retention by age (PUSH_TOPIC_RETENTION=1s)', () => {
  let t: TestServer;
  const h = harness(() => t);
  beforeAll(async () => {
    t = await startServer({ PUSH_RESEND_MS: '60s', PUSH_TOPIC_RETENTION: '1s' });
  });
  afterEach(() => h.closeAll());
  afterAll(() => t.stop());

  it('a message older than the retention is neither replayed nor listed; a newer one is', async () => {
    const topic = 'room:tr-age';
    const old = await h.pushTopic(topic, { data: { old: true } });
    const st = await t.api('GET', `/v1/messages/${encodeURIComponent(old.id)}`);
    expect(st.status).toBe(200);
    // Time passing is what is tested: wait until the first message is past the 1 s retention.
    await new Promise((r) => setTimeout(r, Math.max(0, st.body.timestamp + 1000 - Date.now()) + 100));
    const fresh = await h.pushTopic(topic, { data: { old: false } });

    const c = await h.connect('tr-age', { topics: ['room:*'] });
    expect(await h.subscribe(c, topic, 0)).toMatchObject({ op: 'subscribed', offset: 2 });
    const [m] = await c.messages(1);
    expect(m).toMatchObject({ topic, offset: 2, id: fresh.id });
    await h.expectNextIsSentinel(c, 'tr-age');

    const hist = await t.api('GET', `/v1/topics/${encodeURIComponent(topic)}/messages`);
    expect(hist.body.messages.map((x: any) => x.offset)).toEqual([2]);
  });
});

describe('topics: $all broadcast', () => {
  let t: TestServer;
  const h = harness(() => t);
  beforeAll(async () => {
    // Its own server: the number of app-a connections is known exactly.
    t = await startServer({ PUSH_RESEND_MS: '60s' });
  });
  afterEach(() => h.closeAll());
  afterAll(() => t.stop());

  it('$all reaches every connection of app a (subscribed or not, with or without a claim) and none of app b', async () => {
    const a1 = await h.connect('ta-u1', { device: 'd1' });
    const a2 = await h.connect('ta-u1', { device: 'd2' });
    const a3 = await h.connect('ta-u2', { topics: ['room:*'] });
    await h.subscribe(a3, 'room:ta');
    const b1 = await h.connect('ta-u1', { app: 'b' });

    const r = await t.push({ to: { all: true }, type: 'alarm', data: { everyone: 1 } });
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ recipients: 3, duplicate: false });
    const got = await Promise.all([a1, a2, a3].map(async (c) => (await c.messages(1))[0]!));
    for (const m of got) {
      expect(m).toMatchObject({
        op: 'message',
        topic: '$all',
        offset: 1,
        id: r.body.id,
        data: { everyone: 1 },
      });
      expect(m.seq).toBeUndefined();
    }
    await h.expectNextIsSentinel(b1, 'ta-u1', 'b');
    await h.expectNextIsSentinel(a1, 'ta-u1');
    await h.expectNextIsSentinel(a3, 'ta-u2');

    const pres = await t.api('GET', `/v1/topics/${encodeURIComponent('$all')}/presence`);
    expect(pres.status).toBe(200);
    expect(pres.body.topic).toBe('$all');
    expect(pres.body.connections).toBe(3);
    expect([...pres.body.users].sort()).toEqual(['ta-u1', 'ta-u2']);
  });

  it('$all is replayable by offset without a claim: subscribe {"topic":"$all","since":n} → exactly the offsets after n', async () => {
    const r2 = await t.push({ to: { all: true }, data: { n: 2 } });
    const r3 = await t.push({ to: { all: true }, data: { n: 3 } });
    expect(r2.status).toBe(202);
    expect(r3.status).toBe(202);
    const st = await t.api('GET', `/v1/messages/${encodeURIComponent(r2.body.id)}`);
    const first: number = st.body.offset;
    expect(Number.isInteger(first) && first > 0).toBe(true);
    const c = await h.connect('ta-replay');
    const sub = await h.subscribe(c, '$all', first - 1);
    expect(sub).toMatchObject({ op: 'subscribed', topic: '$all', offset: first + 1 });
    const ms = await c.messages(2);
    expect(offsets(ms)).toEqual([first, first + 1]);
    expect(ms.map((m) => m.id)).toEqual([r2.body.id, r3.body.id]);
    await h.expectNextIsSentinel(c, 'ta-replay');
  });

  it('unsubscribe from $all → unsubscribed; app-wide broadcasts skip that connection until it subscribes again', async () => {
    const quiet = await h.connect('ta-quiet');
    const loud = await h.connect('ta-loud');
    const count = async () => (await t.api('GET', `/v1/topics/${encodeURIComponent('$all')}/presence`)).body;
    const before = await count();

    quiet.send({ op: 'unsubscribe', topic: '$all', ref: 'ua' });
    expect(await quiet.next((f) => f.ref === 'ua')).toEqual({ op: 'unsubscribed', topic: '$all', ref: 'ua' });
    const after = await count();
    expect(after.connections).toBe(before.connections - 1);
    expect(after.users).not.toContain('ta-quiet');

    const r = await t.push({ to: { all: true }, data: { muted: true } });
    expect(r.body.recipients).toBe(after.connections);
    expect((await loud.messages(1))[0]).toMatchObject({ topic: '$all', id: r.body.id });
    await h.expectNextIsSentinel(quiet, 'ta-quiet');

    // Subscribing again brings broadcasts back (with the replay by offset it always had).
    const sub = await h.subscribe(quiet, '$all');
    expect(sub).toMatchObject({ op: 'subscribed', topic: '$all' });
    const r2 = await t.push({ to: { all: true }, data: { muted: false } });
    expect(r2.body.recipients).toBe(before.connections);
    expect((await quiet.messages(1))[0]).toMatchObject({ topic: '$all', id: r2.body.id });
  });
});
