import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { describe, expect, it } from 'vitest';
import { migrationProvider } from '../../../src/store/sql/migrations/index.js';

describe('migration 002_nodes', () => {
  it('gives every node with online connections a row with its newest heartbeat, and drops the sweep index', async () => {
    const raw = new Database(':memory:');
    const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: raw }) });
    try {
      const migrator = new Migrator({ db, provider: migrationProvider('sqlite') });
      expect((await migrator.migrateTo('001_initial')).error).toBeUndefined();
      const insert = raw.prepare(
        `insert into connections (connection_id, app_id, user_id, device, platform, node, status, connected_at, last_heartbeat)
         values (?, 'a', 'u', 'd', 'web', ?, ?, 0, ?)`,
      );
      insert.run('c1', 'node-a', 'online', 100);
      insert.run('c2', 'node-a', 'online', 250);
      insert.run('c3', 'node-a', 'offline', 900);
      insert.run('c4', 'node-b', 'offline', 300);
      insert.run('c5', 'node-c', 'online', 50);

      const { error, results } = await migrator.migrateTo('002_nodes');
      expect(error).toBeUndefined();
      expect(results?.map((r) => r.migrationName)).toEqual(['002_nodes']);
      expect(raw.prepare('select node, last_heartbeat from nodes order by node').all()).toEqual([
        { node: 'node-a', last_heartbeat: 250 },
        { node: 'node-c', last_heartbeat: 50 },
      ]);
      const indexes = raw
        .prepare(`select name from sqlite_master where type = 'index' and tbl_name = 'connections'`)
        .pluck()
        .all();
      expect(indexes).toContain('connections_node');
      expect(indexes).not.toContain('connections_status_heartbeat');
    } finally {
      await db.destroy();
    }
  });
});
