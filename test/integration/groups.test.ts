import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';

const ADMIN = 'groups-admin-token-0001';

/** Server-managed groups: the membership API and group pushes. */
describe('groups', () => {
  let t: TestServer;
  const open: TestClient[] = [];

  beforeAll(async () => {
    // Small batches: a group of ten is written in four transactions.
    t = await startServer({ PUSH_RESEND_MS: '60s', PUSH_GROUP_BATCH: '3', PUSH_ADMIN_TOKEN: ADMIN });
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
  });
  afterAll(() => t.stop());

  let n = 0;
  /** A group id of its own per test: the server is shared by the file. */
  const fresh = (name: string) => `${name}-${++n}`;
  const edit = (group: string, body: unknown, app: 'a' | 'b' = 'a') =>
    t.api('PUT', `/v1/groups/${group}/members`, body, app);

  async function connect(user: string, platform?: string): Promise<TestClient> {
    const token = await t.token(user, platform ? { platform } : {});
    const c = await TestClient.open(t.ws, { app: 'a', token });
    open.push(c);
    return c;
  }

  describe('membership', () => {
    it('adds and removes idempotently and answers the size', async () => {
      const g = fresh('team');
      expect(await edit(g, { add: ['u1', 'u2', 'u2'] })).toEqual({
        status: 200,
        body: { group: g, count: 2 },
      });
      expect((await edit(g, { add: ['u1', 'u3'] })).body).toEqual({ group: g, count: 3 });
      expect((await edit(g, { remove: ['u1', 'ghost'] })).body).toEqual({ group: g, count: 2 });
      expect((await edit(g, { remove: ['u1'] })).body).toEqual({ group: g, count: 2 });
      expect((await edit(g, {})).body).toEqual({ group: g, count: 2 });
      const page = await t.api('GET', `/v1/groups/${g}/members`);
      expect(page).toEqual({ status: 200, body: { members: ['u2', 'u3'], next: null } });
    });

    it('pages members in user id order with after/next', async () => {
      const g = fresh('big');
      const users = Array.from({ length: 25 }, (_, i) => `user-${String(i).padStart(2, '0')}`).reverse();
      expect((await edit(g, { add: users })).body.count).toBe(25);
      const seen: string[] = [];
      let after: string | null = null;
      let pages = 0;
      do {
        const q: string = after === null ? '?limit=10' : `?limit=10&after=${encodeURIComponent(after)}`;
        const res = await t.api('GET', `/v1/groups/${g}/members${q}`);
        expect(res.status).toBe(200);
        seen.push(...res.body.members);
        after = res.body.next;
        pages++;
      } while (after !== null);
      expect(pages).toBe(3);
      expect(seen).toEqual([...users].sort());
    });

    it('lists the groups of a user, with non-ASCII ids in the path', async () => {
      const [g1, g2] = [fresh('x'), fresh('y')];
      await edit(g1, { add: ['Zoë 🙂', 'other'] });
      await edit(g2, { add: ['Zoë 🙂'] });
      const res = await t.api('GET', `/v1/users/${encodeURIComponent('Zoë 🙂')}/groups`);
      expect(res).toEqual({ status: 200, body: { groups: [g1, g2].sort() } });
      // Per app: app b sees nothing of app a's groups.
      expect(
        (await t.api('GET', `/v1/users/${encodeURIComponent('Zoë 🙂')}/groups`, undefined, 'b')).body,
      ).toEqual({
        groups: [],
      });
    });

    it('deletes a group: 204, then it has no members', async () => {
      const g = fresh('gone');
      await edit(g, { add: ['d1', 'd2'] });
      expect((await t.api('DELETE', `/v1/groups/${g}`)).status).toBe(204);
      expect((await t.api('GET', `/v1/groups/${g}/members`)).body).toEqual({ members: [], next: null });
      expect((await t.api('GET', '/v1/users/d1/groups')).body.groups).not.toContain(g);
      // Deleting again (or an unknown group) is not an error.
      expect((await t.api('DELETE', `/v1/groups/${g}`)).status).toBe(204);
    });

    it('an unknown group has no members', async () => {
      expect((await t.api('GET', '/v1/groups/never-made/members')).body).toEqual({ members: [], next: null });
      expect((await edit('never-made', { remove: ['u'] })).body).toEqual({ group: 'never-made', count: 0 });
    });

    it('rejects bad ids, bad limits and oversized edits with 400, and no auth with 401', async () => {
      const bad = async (res: Promise<{ status: number; body: any }>) => {
        const r = await res;
        expect(r.status, JSON.stringify(r.body)).toBe(400);
        expect(r.body.error.code).toBe('bad_request');
      };
      await bad(edit('has space', { add: ['u'] }));
      await bad(edit('x'.repeat(129), { add: ['u'] }));
      await bad(edit('ok', { add: ['bad\u0001id'] }));
      await bad(edit('ok', { add: [''] }));
      await bad(edit('ok', { add: ['u'], extra: 1 }));
      await bad(edit('ok', { add: 'u' }));
      await bad(edit('ok', { add: ['same'], remove: ['same'] }));
      const many = Array.from({ length: 5_001 }, (_, i) => `m${i}`);
      await bad(edit('ok', { add: many, remove: many.map((u) => `${u}x`) }));
      await bad(t.api('GET', '/v1/groups/ok/members?limit=1001'));
      await bad(t.api('GET', '/v1/groups/ok/members?limit=0'));
      await bad(t.api('GET', '/v1/groups/ok/members?limit=ten'));
      const res = await fetch(`${t.http}/v1/groups/ok/members`);
      expect(res.status).toBe(401);
      expect((await edit('ok', { add: many.slice(0, 2) })).body.count).toBe(2);
    });
  });

  it('the admin API lists groups by size and live rooms, per app, for the dashboard', async () => {
    const admin = async (path: string, token = ADMIN) => {
      const res = await fetch(`${t.http}${path}`, { headers: { authorization: `Bearer ${token}` } });
      return { status: res.status, body: (await res.json()) as any };
    };
    await edit('adm-small', { add: ['s1'] }, 'b');
    await edit('adm-large', { add: ['l1', 'l2', 'l3'] }, 'b');
    await t.api('PUT', '/v1/topics/adm-room/settings', { merge_ms: 40 }, 'b');
    expect(await admin('/v1/admin/groups?app=b')).toEqual({
      status: 200,
      body: {
        groups: [
          { app: 'b', group: 'adm-large', members: 3 },
          { app: 'b', group: 'adm-small', members: 1 },
        ],
      },
    });
    expect((await admin('/v1/admin/rooms?app=b')).body).toEqual({
      rooms: [{ app: 'b', topic: 'adm-room', merge_ms: 40 }],
    });
    expect((await admin('/v1/admin/groups?app=b&limit=1')).body.groups).toHaveLength(1);
    expect((await admin('/v1/admin/groups?app=bad app')).status).toBe(400);
    expect((await admin('/v1/admin/rooms', 'wrong-token-000000')).status).toBe(401);
  });

  describe('group pushes', () => {
    const push = async (body: Record<string, unknown>) => {
      const res = await t.push({ data: { n: Math.random() }, ...body });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      return res.body as { id: string; recipients: number; duplicate: boolean };
    };

    it('reach each member of overlapping groups once, with their next seq', async () => {
      const [g1, g2] = [fresh('ov'), fresh('ov')];
      const p = `ov${n}-`;
      await edit(g1, { add: [`${p}a`, `${p}b`, `${p}c`] });
      await edit(g2, { add: [`${p}b`, `${p}c`, `${p}d`] });
      const clients = await Promise.all(['a', 'b', 'c', 'd'].map((u) => connect(p + u)));
      // b already has a message: the group message is its seq 2.
      await push({ to: { users: [`${p}b`] } });
      await clients[1]!.messages(1);
      const sent = await push({ id: `${p}msg`, to: { groups: [g1, g2, g1] } });
      expect(sent).toEqual({ id: `${p}msg`, recipients: 4, duplicate: false });
      const got = await Promise.all(clients.map(async (c) => (await c.messages(1))[0]!));
      expect(got.map((f) => [f.id, f.seq])).toEqual([
        [`${p}msg`, 1],
        [`${p}msg`, 2],
        [`${p}msg`, 1],
        [`${p}msg`, 1],
      ]);
      // Each member got exactly one: a marker pushed afterwards is the next message everywhere.
      await push({ to: { users: ['a', 'b', 'c', 'd'].map((u) => p + u) }, type: 'marker' });
      for (const c of clients) expect((await c.messages(1))[0]!.type).toBe('marker');
      const status = await t.api('GET', `/v1/messages/${p}msg`);
      expect(status.body.recipients.map((r: { user: string }) => r.user)).toEqual(
        ['a', 'b', 'c', 'd'].map((u) => p + u),
      );
      expect(status.body.to).toEqual({ groups: [g1, g2] });
    });

    it('a repeated id returns the first result; a different body conflicts', async () => {
      const g = fresh('idem');
      await edit(g, { add: ['i1', 'i2'] });
      const body = { id: `idem-${n}`, to: { groups: [g] }, data: { x: 1 } };
      expect(await push(body)).toEqual({ id: body.id, recipients: 2, duplicate: false });
      await edit(g, { add: ['i3'] });
      expect(await push(body)).toEqual({ id: body.id, recipients: 2, duplicate: true });
      const other = await t.push({ ...body, data: { x: 2 } });
      expect(other.status).toBe(409);
    });

    it('is stored for offline members and arrives in their backlog on connect', async () => {
      const g = fresh('off');
      const members = Array.from({ length: 10 }, (_, i) => `off${n}-${i}`);
      await edit(g, { add: members });
      const sent = await push({ to: { groups: [g] } });
      expect(sent.recipients).toBe(10);
      for (const u of [members[0]!, members[9]!]) {
        const c = await connect(u);
        const [m] = await c.messages(1);
        expect([m!.id, m!.seq]).toEqual([sent.id, 1]);
      }
    });

    it('applies platforms: members on other platforms do not get it', async () => {
      const g = fresh('plat');
      const [ios, android] = [`plat${n}-ios`, `plat${n}-android`];
      await edit(g, { add: [ios, android] });
      const a = await connect(ios, 'ios');
      const b = await connect(android, 'android');
      const sent = await push({ to: { groups: [g] }, platforms: ['ios'] });
      expect(sent.recipients).toBe(2);
      expect((await a.messages(1))[0]!.id).toBe(sent.id);
      const marker = await push({ to: { users: [android] } });
      expect((await b.messages(1))[0]!.id).toBe(marker.id);
    });

    it('an empty or unknown group is accepted with 0 recipients; bad group lists are 400', async () => {
      expect((await push({ to: { groups: ['nobody-here'] } })).recipients).toBe(0);
      for (const to of [
        { groups: [] },
        { groups: ['bad group'] },
        { groups: Array.from({ length: 101 }, (_, i) => `g${i}`) },
        { groups: ['g'], users: ['u'] },
      ]) {
        const res = await t.push({ to });
        expect(res.status, JSON.stringify(to)).toBe(400);
      }
    });
  });
});
