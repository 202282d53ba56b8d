import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ChildServer, startChild } from '../helpers/child-server.js';
import { dropDatabase, queryDatabase, withDatabase } from '../helpers/mysql.js';
import { tempDir } from '../helpers/server.js';
import { describeWithService } from '../helpers/services.js';

const USERS = 100;
const PUSHES = 20_000;
const CONCURRENCY = 256;

await describeWithService('mysql', 'two server processes sharing one MariaDB', (base) => {
  const url = withDatabase(base, `mp_two_${randomBytes(4).toString('hex')}`);
  const dirs = [tempDir(), tempDir()];
  let nodes: ChildServer[] = [];

  beforeAll(async () => {
    // Started one after the other: the first one creates the schema.
    for (const [i, dir] of dirs.entries()) {
      nodes.push(await startChild(dir, { PUSH_DB_URL: url, PUSH_NODE_ID: `node-${i}` }));
    }
  }, 60_000);

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    nodes = [];
    await dropDatabase(url);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('20,000 concurrent pushes through both processes give every user seqs 1..n with no gap or duplicate', async () => {
    let next = 0;
    const sent = new Map<string, number>();
    const worker = async () => {
      while (next < PUSHES) {
        const i = next++;
        const user = `u${(i * 7919) % USERS}`;
        const res = await nodes[i % 2]!.push({ to: { users: [user] }, data: { i } });
        expect(res.status).toBe(202);
        sent.set(user, (sent.get(user) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));

    const rows = await queryDatabase<{
      user_id: string;
      n: number;
      min_seq: number;
      max_seq: number;
      distinct_seqs: number;
    }>(
      url,
      `select user_id, count(*) n, min(seq) min_seq, max(seq) max_seq, count(distinct seq) distinct_seqs
       from deliveries group by user_id`,
    );
    expect(rows).toHaveLength(USERS);
    for (const r of rows) {
      const n = sent.get(r.user_id)!;
      expect({
        user: r.user_id,
        n: Number(r.n),
        min: Number(r.min_seq),
        max: Number(r.max_seq),
        distinct: Number(r.distinct_seqs),
      }).toEqual({
        user: r.user_id,
        n,
        min: 1,
        max: n,
        distinct: n,
      });
    }
    const [counters] = await queryDatabase<{ total: number }>(
      url,
      'select sum(last_seq) total from user_state',
    );
    expect(Number(counters!.total)).toBe(PUSHES);
  }, 120_000);

  it('the same id pushed concurrently through both processes is stored and delivered once', async () => {
    const bodies = Array.from({ length: 40 }, (_, i) => ({
      id: 'twin',
      to: { users: ['twin-user'] },
      data: { same: true },
      i,
    }));
    const replies = await Promise.all(
      bodies.map((b, i) => nodes[i % 2]!.push({ id: b.id, to: b.to, data: b.data })),
    );
    expect(replies.every((r) => r.status === 202)).toBe(true);
    expect(replies.filter((r) => r.body.duplicate === false)).toHaveLength(1);
    const [row] = await queryDatabase<{ n: number }>(
      url,
      `select count(*) n from deliveries where user_id = 'twin-user'`,
    );
    expect(Number(row!.n)).toBe(1);
  });
});
