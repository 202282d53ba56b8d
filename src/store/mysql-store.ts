import { type Insertable, Kysely, MysqlDialect, sql, type Transaction } from 'kysely';
import { createConnection, createPool } from 'mysql2';
import type { StoreConfig } from '../config.js';
import { PushError } from '../domain/errors.js';
import { mysqlTlsOptions } from '../util/mysql-tls.js';
import type { Database, MessagesTable } from './schema.js';
import { chunks, counterKey, SqlStore } from './sql-store.js';

/** Pooled connections per process: group commit keeps writes few and large, so a small pool suffices. */
const POOL_SIZE = 10;
/** Transactions the engine aborted (deadlock, lock wait, a concurrent insert of the same id) are rerun. */
const MAX_ATTEMPTS = 5;
const RETRYABLE = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', 'ER_DUP_ENTRY']);

/**
 * MySQL / MariaDB: for several processes or nodes sharing one database.
 *
 * Seq allocation stays gap-free across processes because the counter row is incremented
 * with INSERT … ON DUPLICATE KEY UPDATE and read back FOR UPDATE inside the transaction that
 * writes the deliveries: a second process waits on the row lock until the first commits.
 * Counter rows are touched in key order so two batches never lock them crosswise.
 */
export class MysqlStore extends SqlStore {
  readonly dialect = 'mysql' as const;

  protected override async inTransaction<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        // READ COMMITTED: no gap locks on the unique indexes, so concurrent batches rarely collide.
        return await this.db.transaction().setIsolationLevel('read committed').execute(fn);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (attempt >= MAX_ATTEMPTS || !code || !RETRYABLE.has(code)) throw err;
        await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
      }
    }
  }

  protected async incrementCounters(
    trx: Transaction<Database>,
    table: 'user_state' | 'topic_state',
    rows: { appId: string; name: string; n: number }[],
  ): Promise<Map<string, number>> {
    const ends = new Map<string, number>();
    const nameCol = table === 'user_state' ? 'user_id' : 'topic';
    const counterCol = table === 'user_state' ? 'last_seq' : 'last_offset';
    const sorted = [...rows].sort((a, b) => cmp(a.appId, b.appId) || cmp(a.name, b.name));
    for (const chunk of chunks(sorted, 500)) {
      const values = sql.join(chunk.map((r) => sql`(${r.appId}, ${r.name}, ${r.n})`));
      await sql`
        insert into ${sql.table(table)} (app_id, ${sql.ref(nameCol)}, ${sql.ref(counterCol)})
        values ${values}
        on duplicate key update ${sql.ref(counterCol)} = ${sql.ref(counterCol)} + values(${sql.ref(counterCol)})`.execute(
        trx,
      );
      const keys = sql.join(chunk.map((r) => sql`(${r.appId}, ${r.name})`));
      const result = await sql<{ app_id: string; name: string; end: number }>`
        select app_id, ${sql.ref(nameCol)} as name, ${sql.ref(counterCol)} as end
        from ${sql.table(table)}
        where (app_id, ${sql.ref(nameCol)}) in (${keys})
        for update`.execute(trx);
      for (const r of result.rows) ends.set(counterKey(r.app_id, r.name), Number(r.end));
    }
    return ends;
  }

  protected async insertMessages(
    trx: Transaction<Database>,
    rows: Insertable<MessagesTable>[],
  ): Promise<Map<string, number>> {
    const pks = new Map<string, number>();
    for (const chunk of chunks(rows, 200)) {
      await trx.insertInto('messages').values(chunk).execute();
      // Auto-increment ids of a multi-row insert are only consecutive in some lock modes: read them back.
      const byApp = new Map<string, string[]>();
      for (const r of chunk) byApp.set(r.app_id, [...(byApp.get(r.app_id) ?? []), r.msg_id]);
      for (const [appId, ids] of byApp) {
        const found = await trx
          .selectFrom('messages')
          .select(['pk', 'msg_id'])
          .where('app_id', '=', appId)
          .where('msg_id', 'in', ids)
          .execute();
        for (const f of found) pks.set(counterKey(appId, f.msg_id), Number(f.pk));
      }
    }
    return pks;
  }

  async expireDue(now: number, limit: number): Promise<number> {
    const r = await sql`
      update deliveries set status = 4
      where expires_at <= ${now} and status in (0, 1, 3) and live_only = 0
      limit ${limit}`.execute(this.db);
    return Number(r.numAffectedRows ?? 0);
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Opens the pool, creates the database named in the URL when it does not exist yet, and
 * migrates. A wrong URL fails here, at startup, naming PUSH_DB_URL.
 */
export async function createMysqlStore(config: StoreConfig): Promise<MysqlStore> {
  let url: URL;
  try {
    url = new URL(config.url.replace(/^mariadb:/, 'mysql:'));
  } catch {
    throw new PushError('config_invalid', 'PUSH_DB_URL: not a valid mysql:// URL');
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_$]{1,64}$/.test(database)) {
    throw new PushError(
      'config_invalid',
      'PUSH_DB_URL: name a database, e.g. mysql://user:pass@host:3306/message_push',
    );
  }
  const options = serverOptions(url);
  try {
    await new Promise<void>((resolve, reject) => {
      const conn = createConnection(options);
      conn.query(
        `create database if not exists \`${database}\` character set utf8mb4 collate utf8mb4_bin`,
        (err) => {
          conn.end();
          if (err) reject(err);
          else resolve();
        },
      );
    });
  } catch (err) {
    throw new PushError(
      'config_invalid',
      `PUSH_DB_URL: cannot reach ${url.host}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const pool = createPool({ ...options, database, connectionLimit: POOL_SIZE, timezone: 'Z' });
  const store = new MysqlStore(new Kysely<Database>({ dialect: new MysqlDialect({ pool }) }));
  await store.migrate();
  return store;
}

/** Connection options for the server a mysql:// URL names (without its database). */
export function serverOptions(url: URL) {
  return {
    host: url.hostname,
    port: Number(url.port) || 3306,
    user: decodeURIComponent(url.username) || 'root',
    password: decodeURIComponent(url.password),
    charset: 'utf8mb4',
    connectTimeout: 5000,
    ...mysqlTlsOptions(url),
  };
}
