import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';

/**
 * Black-box tests of user history and unread counters (docs/reference/server-api.md,
 * "History and counters", "Status").
 */
describe('history', () => {
  let t: TestServer;
  const open: TestClient[] = [];

  beforeAll(async () => {
    t = await startServer({ PUSH_RESEND_MS: '60s' });
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
  });
  afterAll(() => t.stop());

  async function connect(user: string): Promise<TestClient> {
    const c = await TestClient.open(t.ws, { app: 'a', token: await t.token(user) });
    open.push(c);
    return c;
  }

  /** Pushes `n` messages to `user` in one batch, data {i} with i = 1..n (seq order = request order). */
  async function pushMany(user: string, n: number, extra: Record<string, unknown> = {}): Promise<string[]> {
    const res = await t.api('POST', '/v1/push/batch', {
      messages: Array.from({ length: n }, (_, k) => ({
        to: { users: [user] },
        data: { i: k + 1 },
        ...extra,
      })),
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.results.every((r: any) => r.duplicate === false)).toBe(true);
    return res.body.results.map((r: any) => r.id);
  }

  async function pushOne(user: string, extra: Record<string, unknown> = {}) {
    const res = await t.push({ to: { users: [user] }, data: { n: Math.random() }, ...extra });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return res.body as { id: string; recipients: number; duplicate: boolean };
  }

  async function history(user: string, qs = ''): Promise<{ seqs: number[]; hasMore: boolean; body: any }> {
    const res = await t.api('GET', `/v1/users/${encodeURIComponent(user)}/messages${qs}`);
    expect(res.status, `${qs}: ${JSON.stringify(res.body)}`).toBe(200);
    return { seqs: res.body.messages.map((m: any) => m.seq), hasMore: res.body.has_more, body: res.body };
  }

  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

  it('no bound → the newest `limit` (default 50), oldest first, has_more when older exist', async () => {
    const user = 'hi-default';
    await pushMany(user, 55);
    const page = await history(user);
    expect(page.seqs).toEqual(range(6, 55));
    expect(page.hasMore).toBe(true);
    expect(page.body.messages.map((m: any) => m.data.i)).toEqual(range(6, 55));

    expect(await history(user, '?limit=5')).toMatchObject({ seqs: range(51, 55), hasMore: true });
    expect(await history(user, '?limit=55')).toMatchObject({ seqs: range(1, 55), hasMore: false });
    expect(await history(user, '?limit=1000')).toMatchObject({ seqs: range(1, 55), hasMore: false });
  });

  it('a user with no messages → {"messages":[],"has_more":false}', async () => {
    const page = await history('hi-nobody');
    expect(page.body).toEqual({ messages: [], has_more: false });
  });

  it('after_seq pages forward (has_more = newer exist); before_seq pages backward (has_more = older exist)', async () => {
    const user = 'hi-pages';
    await pushMany(user, 20);
    expect(await history(user, '?after_seq=0&limit=5')).toMatchObject({ seqs: range(1, 5), hasMore: true });
    expect(await history(user, '?after_seq=14&limit=5')).toMatchObject({
      seqs: range(15, 19),
      hasMore: true,
    });
    expect(await history(user, '?after_seq=15&limit=5')).toMatchObject({
      seqs: range(16, 20),
      hasMore: false,
    });
    expect(await history(user, '?after_seq=20&limit=5')).toMatchObject({ seqs: [], hasMore: false });
    expect(await history(user, '?after_seq=17')).toMatchObject({ seqs: [18, 19, 20], hasMore: false });

    expect(await history(user, '?before_seq=21&limit=5')).toMatchObject({
      seqs: range(16, 20),
      hasMore: true,
    });
    expect(await history(user, '?before_seq=10&limit=5')).toMatchObject({ seqs: range(5, 9), hasMore: true });
    expect(await history(user, '?before_seq=6&limit=5')).toMatchObject({ seqs: range(1, 5), hasMore: false });
    expect(await history(user, '?before_seq=1&limit=5')).toMatchObject({ seqs: [], hasMore: false });
    expect(await history(user, '?before_seq=4')).toMatchObject({ seqs: [1, 2, 3], hasMore: false });
  });

  it('walking every page forward and backward with limit 7 over 20 messages yields seqs 1..20 exactly once each', async () => {
    const user = 'hi-walk';
    await pushMany(user, 20);

    const forward: number[] = [];
    let pages = 0;
    let after = 0;
    for (;;) {
      const p = await history(user, `?after_seq=${after}&limit=7`);
      pages++;
      expect(p.seqs.length).toBeLessThanOrEqual(7);
      forward.push(...p.seqs);
      if (!p.hasMore) break;
      expect(p.seqs.length).toBe(7);
      after = p.seqs[p.seqs.length - 1]!;
      expect(pages).toBeLessThan(10);
    }
    expect(forward).toEqual(range(1, 20));
    expect(pages).toBe(3);

    const backward: number[] = [];
    pages = 0;
    let p = await history(user, '?limit=7');
    for (;;) {
      pages++;
      expect(p.seqs.length).toBeLessThanOrEqual(7);
      backward.unshift(...p.seqs);
      if (!p.hasMore) break;
      expect(pages).toBeLessThan(10);
      p = await history(user, `?before_seq=${p.seqs[0]}&limit=7`);
    }
    expect(backward).toEqual(range(1, 20));
    expect(pages).toBe(3);
  });

  it('from / to (ms timestamps, inclusive) filter the history', async () => {
    const user = 'hi-time';
    for (let i = 1; i <= 5; i++) {
      await pushOne(user, { data: { i } });
      // Distinct timestamps are what this test needs: let the millisecond clock move on.
      const before = Date.now();
      while (Date.now() <= before + 1) await new Promise((r) => setTimeout(r, 1));
    }
    const all = await history(user);
    const ts: number[] = all.body.messages.map((m: any) => m.timestamp);
    expect(all.seqs).toEqual([1, 2, 3, 4, 5]);
    for (let i = 1; i < ts.length; i++) expect(ts[i]!).toBeGreaterThan(ts[i - 1]!);

    expect((await history(user, `?from=${ts[1]}&to=${ts[3]}`)).seqs).toEqual([2, 3, 4]);
    expect((await history(user, `?from=${ts[3]}`)).seqs).toEqual([4, 5]);
    expect((await history(user, `?to=${ts[0]}`)).seqs).toEqual([1]);
    expect((await history(user, `?from=${ts[4]! + 1}`)).seqs).toEqual([]);
    // Combined with paging: the newest 2 within the window, older ones still in it.
    expect(await history(user, `?from=${ts[0]}&to=${ts[3]}&limit=2`)).toMatchObject({
      seqs: [3, 4],
      hasMore: true,
    });
    expect(await history(user, `?from=${ts[1]}&after_seq=2&limit=2`)).toMatchObject({
      seqs: [3, 4],
      hasMore: true,
    });
  });

  it('limit 0, 1001 or "x" (and a non-integer after_seq / before_seq / from) → 400 bad_request', async () => {
    for (const qs of [
      '?limit=0',
      '?limit=1001',
      '?limit=x',
      '?after_seq=-1',
      '?before_seq=abc',
      '?from=yesterday',
    ]) {
      const res = await t.api('GET', `/v1/users/hi-bad/messages${qs}`);
      expect(res.status, qs).toBe(400);
      expect(res.body.error.code, qs).toBe('bad_request');
    }
  });

  it('each item has seq, id, type, timestamp, data and status: pending → sent on delivery → acked after an ack', async () => {
    const user = 'hi-items';
    const r1 = await pushOne(user, { type: 'notification', data: { title: 'one' } });
    const r2 = await pushOne(user, { data: [1, 2] });
    const r3 = await pushOne(user, { data: 'three' });

    const before = await history(user);
    expect(before.body.messages).toEqual([
      expect.objectContaining({
        seq: 1,
        id: r1.id,
        type: 'notification',
        data: { title: 'one' },
        status: 'pending',
      }),
      expect.objectContaining({ seq: 2, id: r2.id, type: 'message', data: [1, 2], status: 'pending' }),
      expect.objectContaining({ seq: 3, id: r3.id, type: 'message', data: 'three', status: 'pending' }),
    ]);
    for (const m of before.body.messages) expect(typeof m.timestamp).toBe('number');

    const c = await connect(user);
    const frames = await c.messages(3);
    expect(frames.map((f) => f.seq)).toEqual([1, 2, 3]);
    // Each item is the socket message object's fields (seq, id, type, timestamp, data).
    for (let i = 0; i < 3; i++) {
      const { op: _op, ...fields } = frames[i]!;
      expect(before.body.messages[i]).toMatchObject(fields);
    }
    const ok = await c.request({ op: 'ack', seq: 2 });
    expect(ok.op).toBe('ok');

    const after = await history(user);
    expect(after.body.messages.map((m: any) => m.status)).toEqual(['acked', 'acked', 'sent']);
  });

  it('history is per app and takes percent-encoded user ids (emoji, "/")', async () => {
    const user = 'hi/🙂/ü';
    await pushOne(user, { data: { app: 'a' } });
    const inA = await history(user);
    expect(inA.seqs).toEqual([1]);
    expect(inA.body.messages[0].data).toEqual({ app: 'a' });
    const inB = await t.api('GET', `/v1/users/${encodeURIComponent(user)}/messages`, undefined, 'b');
    expect(inB.status).toBe(200);
    expect(inB.body).toEqual({ messages: [], has_more: false });
  });

  it('unread counts messages after the read cursor; a ttl=1 message stops counting once it has expired', async () => {
    const user = 'hi-unread';
    await pushOne(user);
    const short = await pushOne(user, { ttl: 1 });
    await pushOne(user);
    await pushOne(user, { ttl: 3600 });
    const unread = () => t.api('GET', `/v1/users/${encodeURIComponent(user)}/unread`);

    expect((await unread()).body).toEqual({ count: 4, last_read_seq: 0 });
    const read = await t.api('POST', `/v1/users/${encodeURIComponent(user)}/read`, { seq: 1 });
    expect(read.status).toBe(200);
    expect(read.body).toEqual({ count: 3, last_read_seq: 1 });

    const st = await t.api('GET', `/v1/messages/${encodeURIComponent(short.id)}`);
    expect(st.body.ttl).toBe(1);
    // Time passing is what is tested: wait until the ttl of seq 2 is over.
    await new Promise((r) => setTimeout(r, Math.max(0, st.body.timestamp + 1000 - Date.now()) + 50));
    expect((await unread()).body).toEqual({ count: 2, last_read_seq: 1 });
    const expired = await t.api('GET', `/v1/messages/${encodeURIComponent(short.id)}`);
    expect(expired.body.recipients[0].status).toBe('expired');

    // Reading past the expired message counts only what is left after the cursor.
    const read3 = await t.api('POST', `/v1/users/${encodeURIComponent(user)}/read`, { seq: 3 });
    expect(read3.body).toEqual({ count: 1, last_read_seq: 3 });
  });

  it('unread: after reading up to the newest seq the count is 0; a new push counts again', async () => {
    const user = 'hi-unread-2';
    await pushOne(user);
    await pushOne(user);
    const read = await t.api('POST', `/v1/users/${encodeURIComponent(user)}/read`, { seq: 2 });
    expect(read.body).toEqual({ count: 0, last_read_seq: 2 });
    await pushOne(user);
    expect((await t.api('GET', `/v1/users/${encodeURIComponent(user)}/unread`)).body).toEqual({
      count: 1,
      last_read_seq: 2,
    });
  });
});
