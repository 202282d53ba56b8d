import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { parsePushRequest } from '../../src/ingest/push-request.js';
import { createSqliteStore, PLANNED_SQL } from '../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../helpers/server.js';

const dir = tempDir('mp-plans-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * The SQLite write path relies on narrow indexes (see the migration): these statements must
 * run on them, or an ack or a connect walks a user's whole history and the TTL sweep the
 * whole past. The planner has no statistics, so a harmless-looking edit can change its mind.
 */
describe('sqlite: hot statements run on their partial indexes', () => {
  const path = join(dir, 'plans.db');

  it('backlog and ack on deliveries_backlog, the TTL sweep on deliveries_expiry', async () => {
    const store = await createSqliteStore({ url: `sqlite:${path}`, sqliteSync: 'normal' });
    await store.close();
    const db = new Database(path, { readonly: true });
    try {
      const plan = (sql: string) =>
        (db.prepare(`explain query plan ${sql}`).all(...placeholders(sql)) as { detail: string }[])
          .map((r) => r.detail)
          .join(' | ');
      expect(plan(PLANNED_SQL.backlogUnacked)).toMatch(/USING INDEX deliveries_backlog/);
      expect(plan(PLANNED_SQL.ackUpTo)).toMatch(/USING INDEX deliveries_backlog/);
      expect(plan(PLANNED_SQL.expireDue)).toMatch(/USING INDEX deliveries_expiry \(expires_at<\?\)/);

      // The shape the write path counts on: deliveries clustered on their key.
      const ddl = db.prepare(`select sql from sqlite_master where name = 'deliveries'`).pluck().get();
      expect(String(ddl)).toMatch(/without rowid\s*$/i);
    } finally {
      db.close();
    }
  });
});

/** Dummy values for `?` and `@name` parameters, enough for the planner. */
function placeholders(sql: string): unknown[] {
  const named = [...sql.matchAll(/@(\w+)/g)].map((m) => m[1]!);
  if (named.length > 0) return [Object.fromEntries(named.map((n) => [n, 1]))];
  return Array.from(sql.matchAll(/\?/g), () => 1);
}

describe('sqlite: an acked delivery leaves the resend index', () => {
  const path = join(dir, 'retry.db');

  it('a sent row is in deliveries_retry until its ack, and not after', async () => {
    const store = await createSqliteStore({ url: `sqlite:${path}`, sqliteSync: 'normal' });
    const reader = new Database(path, { readonly: true });
    const inRetryIndex = () =>
      Number(
        reader
          .prepare(
            'select count(*) from deliveries indexed by deliveries_retry where next_retry_at is not null',
          )
          .pluck()
          .get(),
      );
    try {
      const [outcome] = await store.persistPushes([
        {
          appId: 'a',
          request: parsePushRequest({ to: { users: ['u1'] }, data: { n: 1 } }, 64 * 1024),
          fingerprint: '',
          messageId: 'm1',
          timestamp: 1000,
          onlineUsers: null,
          connectionCount: 1,
        },
      ]);
      expect(outcome?.kind).toBe('stored');
      await store.applyDeliveryUpdates([
        { kind: 'sent', appId: 'a', userId: 'u1', seqs: [1], at: 1000, retryAt: 6000 },
      ]);
      expect(inRetryIndex()).toBe(1);
      await store.applyDeliveryUpdates([
        { kind: 'ack_upto', appId: 'a', userId: 'u1', device: 'd1', seq: 1, at: 2000 },
      ]);
      expect(inRetryIndex()).toBe(0);
      expect(await store.dueRetries(10_000, 10)).toEqual([]);
    } finally {
      reader.close();
      await store.close();
    }
  });
});
