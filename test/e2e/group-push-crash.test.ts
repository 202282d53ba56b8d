import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { startChild } from '../helpers/child-server.js';
import { TestClient } from '../helpers/client.js';
import { tempDir } from '../helpers/server.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const MEMBERS = 20_000;
const member = (i: number) => `m${String(i).padStart(5, '0')}`;

describe('group push across process death', () => {
  it('kill -9 in the middle of a large group push: after restart every member has it exactly once, in seq order', async () => {
    const dir = tempDir();
    dirs.push(dir);
    // Small batches so the push spans many transactions; a short heartbeat so the restarted
    // node (a new node id: the pid changed) soon sees the dead one's job as orphaned.
    const env = { PUSH_GROUP_BATCH: '200', PUSH_HEARTBEAT_MS: '500', PUSH_RESEND_MS: '60s' };
    const first = await startChild(dir, env);
    const users = Array.from({ length: MEMBERS }, (_, i) => member(i));
    for (let i = 0; i < MEMBERS; i += 10_000) {
      const res = await first.api('PUT', '/v1/groups/everyone/members', { add: users.slice(i, i + 10_000) });
      expect(res.status).toBe(200);
    }
    // Three members already have a message: the group message must come after it (seq 2).
    const earlier = [member(0), member(10_000), member(MEMBERS - 1)];
    expect((await first.push({ to: { users: earlier }, type: 'before' })).status).toBe(202);

    const firstMember = await TestClient.open(first.ws, { app: 'a', token: await first.token(member(0)) });
    await firstMember.messages(1);
    const body = { id: 'big-1', to: { groups: ['everyone'] }, data: { hello: 'all' } };
    const accepted = first.push(body).then(
      (r) => r.status,
      () => 'no reply',
    );
    // The first batch is durable and routed: kill the process while later batches are written.
    const [live] = await firstMember.messages(1);
    expect(live!.id).toBe('big-1');
    first.child.kill('SIGKILL');
    expect(await first.exited()).toBe('SIGKILL');
    // It died before answering: the push was cut in the middle.
    expect(await accepted).toBe('no reply');

    const second = await startChild(dir, env);
    try {
      // Repeating the push waits for the adopted job and returns its result.
      const again = await second.push(body);
      expect(again.status, JSON.stringify(again.body)).toBe(202);
      expect(again.body).toEqual({ id: 'big-1', recipients: MEMBERS, duplicate: true });

      const status = await second.api('GET', '/v1/messages/big-1');
      const recipients = status.body.recipients as { user: string; seq: number }[];
      expect(recipients.map((r) => r.user)).toEqual(users);
      const before = new Set(earlier);
      expect(recipients.filter((r) => r.seq !== (before.has(r.user) ? 2 : 1))).toEqual([]);

      // Members read it once, after what they had, in seq order.
      for (const u of [member(0), member(10_000), member(MEMBERS - 1), member(12_345)]) {
        const c = await TestClient.open(second.ws, { app: 'a', token: await second.token(u) });
        const marker = await second.push({ to: { users: [u] }, type: 'marker' });
        const frames = await c.messages(before.has(u) ? 3 : 2);
        expect(frames.map((f) => [f.type, f.seq])).toEqual(
          before.has(u)
            ? [
                ['before', 1],
                ['message', 2],
                ['marker', 3],
              ]
            : [
                ['message', 1],
                ['marker', 2],
              ],
        );
        expect(frames.at(-1)!.id).toBe(marker.body.id);
        await c.close();
      }
    } finally {
      await second.stop();
    }
  }, 120_000);
});
