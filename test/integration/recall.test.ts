import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connect as connectSdk, type PushClient, type RevokeEvent } from '../../client/src/node.js';
import { signClientToken } from '../../src/auth/tokens.js';
import { TestClient } from '../helpers/client.js';
import { APPS, startServer, type TestServer } from '../helpers/server.js';

/** Recall (DELETE /v1/messages/{id}) on one node: statuses, backlog, counters, frames, SDK. */
describe('recall', () => {
  let t: TestServer;
  const open: TestClient[] = [];

  beforeAll(async () => {
    t = await startServer({ PUSH_RESEND_MS: '60s' });
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
  });
  afterAll(() => t.stop());

  async function connect(user: string, query: Record<string, string | number> = {}, topics?: string[]) {
    const token = await signClientToken({
      secret: APPS.a,
      userId: user,
      ttlSeconds: 600,
      ...(topics ? { topics } : {}),
    });
    const c = await TestClient.open(t.ws, { app: 'a', token, ...query });
    open.push(c);
    return c;
  }
  const push = async (body: Record<string, unknown>) => {
    const r = await t.push({ data: { n: Math.random() }, ...body });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    return r.body.id as string;
  };
  const recall = (id: string) => t.api('DELETE', `/v1/messages/${encodeURIComponent(id)}`);
  const statuses = async (id: string) =>
    Object.fromEntries(
      (
        (await t.api('GET', `/v1/messages/${encodeURIComponent(id)}`)).body.recipients as {
          user: string;
          status: string;
        }[]
      ).map((r) => [r.user, r.status]),
    );

  it('before delivery: the offline recipient never gets it (backlog, history, unread); a second call answers revoked 0', async () => {
    const keep = await push({ id: 'r1-keep', to: { users: ['r1'] } });
    const gone = await push({ id: 'r1-gone', to: { users: ['r1'] } });
    expect(await recall(gone)).toEqual({ status: 200, body: { id: gone, revoked: 1 } });
    expect(await recall(gone)).toEqual({ status: 200, body: { id: gone, revoked: 0 } });
    expect(await statuses(gone)).toEqual({ r1: 'revoked' });

    const c = await connect('r1');
    const [first] = await c.messages(1);
    expect(first!.id).toBe(keep);
    // The backlog is done once a later push arrives right after the kept one.
    const later = await push({ to: { users: ['r1'] } });
    expect((await c.messages(1))[0]!.id).toBe(later);
    expect(c.frames.some((f) => f.id === gone)).toBe(false);

    const history = await t.api('GET', '/v1/users/r1/messages');
    expect(history.body.messages.map((m: { id: string }) => m.id)).toEqual([keep, later]);
    expect((await t.api('GET', '/v1/users/r1/unread')).body).toEqual({ count: 2, last_read_seq: 0 });
    // since=0 replays everything kept: still not the recalled one.
    const resumed = await connect('r1', { since: 0 });
    expect((await resumed.messages(2)).map((m) => m.id)).toEqual([keep, later]);
  });

  it('after delivery: connected devices get {"op":"revoke","id","seq"}; the status becomes revoked', async () => {
    const a = await connect('r2', { device: 'phone' });
    const b = await connect('r2', { device: 'laptop' });
    const id = await push({ to: { users: ['r2'] } });
    const [m] = await a.messages(1);
    await b.messages(1);
    expect(await recall(id)).toEqual({ status: 200, body: { id, revoked: 1 } });
    for (const c of [a, b]) {
      expect(await c.next((f) => f.op === 'revoke')).toEqual({ op: 'revoke', id, seq: m!.seq });
    }
    expect(await statuses(id)).toEqual({ r2: 'revoked' });
    // A revoked message is not acked any more (final).
    await a.request({ op: 'ack', seq: m!.seq });
    expect(await statuses(id)).toEqual({ r2: 'revoked' });
  });

  it('after ack: the acker stays acked (revoked counts only the others) and still gets the frame', async () => {
    const a = await connect('r3');
    const id = await push({ to: { users: ['r3', 'r3-offline'] } });
    const [m] = await a.messages(1);
    await a.request({ op: 'ack', seq: m!.seq });
    expect(await recall(id)).toEqual({ status: 200, body: { id, revoked: 1 } });
    expect(await statuses(id)).toEqual({ r3: 'acked', 'r3-offline': 'revoked' });
    expect(await a.next((f) => f.op === 'revoke')).toMatchObject({ id, seq: m!.seq });

    const allAcked = await push({ to: { users: ['r3'] } });
    const [m2] = await a.messages(1);
    await a.request({ op: 'ack', seq: m2!.seq });
    expect(await recall(allAcked)).toEqual({ status: 200, body: { id: allAcked, revoked: 0 } });
    expect(await statuses(allAcked)).toEqual({ r3: 'acked' });
  });

  it('topic messages: subscribers get revoke with topic and offset; the topic history drops it', async () => {
    const c = await connect('r4', {}, ['news']);
    await c.request({ op: 'subscribe', topic: 'news' });
    const id = await push({ to: { topic: 'news' } });
    const m = await c.next((f) => f.op === 'message' && f.id === id);
    expect(await recall(id)).toEqual({ status: 200, body: { id, revoked: 0 } });
    expect(await c.next((f) => f.op === 'revoke')).toEqual({
      op: 'revoke',
      id,
      topic: 'news',
      offset: m.offset,
    });
    const history = await t.api('GET', '/v1/topics/news/messages');
    expect(history.body.messages.map((x: { id: string }) => x.id)).not.toContain(id);
    const replay = await connect('r4b', {}, ['news']);
    await replay.request({ op: 'subscribe', topic: 'news', since: 0 });
    const after = await push({ to: { topic: 'news' } });
    await replay.next((f) => f.op === 'message' && f.id === after);
    expect(replay.frames.some((f) => f.op === 'message' && f.id === id)).toBe(false);
  });

  it('unknown id → 404; an invalid id → 400; another app cannot recall it', async () => {
    expect((await recall('no-such-message')).status).toBe(404);
    expect((await recall('no-such-message')).body.error.code).toBe('not_found');
    const id = await push({ to: { users: ['r5'] } });
    expect((await t.api('DELETE', `/v1/messages/${id}`, undefined, 'b')).status).toBe(404);
    expect((await t.api('DELETE', '/v1/messages/%01bad')).status).toBe(400);
    expect(await statuses(id)).toEqual({ r5: 'pending' });
  });

  it('SDK: emits revoke and never shows a recalled message afterwards', async () => {
    const token = await signClientToken({ secret: APPS.a, userId: 'r6', ttlSeconds: 600 });
    const client: PushClient = connectSdk({
      url: t.http,
      app: 'a',
      token,
      storage: null,
      WebSocket: WebSocket as never,
    });
    try {
      const seen: string[] = [];
      const revoked: RevokeEvent[] = [];
      const waiters: (() => void)[] = [];
      const changed = () => new Promise<void>((r) => waiters.push(r));
      const wake = () => {
        for (const w of waiters.splice(0)) w();
      };
      client.on('message', (m) => {
        seen.push(m.id);
        wake();
      });
      client.on('revoke', (e) => {
        revoked.push(e);
        wake();
      });
      if (client.state !== 'connected') await new Promise<void>((r) => client.on('connected', () => r()));
      const id = await push({ to: { users: ['r6'] } });
      while (!seen.includes(id)) await changed();
      expect((await recall(id)).status).toBe(200);
      while (revoked.length === 0) await changed();
      expect(revoked).toEqual([{ id, seq: 1 }]);
      expect(seen).toEqual([id]);
    } finally {
      client.close();
    }
  });
});
