import { type Insertable, Kysely, MysqlDialect, sql, type Transaction } from 'kysely';
import { createConnection, createPool, type Pool } from 'mysql2';
import type { StoreConfig } from '../../config.js';
import { PushError } from '../../domain/errors.js';
import { STATUS_CODE } from '../../domain/message.js';
import { mysqlTlsOptions } from '../../util/mysql-tls.js';
import type { GroupStore } from '../group-store.js';
import { counterKey, type ExistingMessage, type PersistOps, persistBatch } from '../sql/persist-plan.js';
import type { Database, MessagesTable } from '../sql/schema.js';
import type { RunTransaction } from '../sql/sql-group-store.js';
import { chunks, type MessageRow, SqlStore, toStoredMessage } from '../sql/sql-store.js';
import type {
  BacklogQuery,
  ConnectionChange,
  ConnectionRecord,
  DeliveryUpdate,
  PersistItem,
  PersistOutcome,
  UserMessage,
} from '../store.js';
import { execute, inBatchTx, retrying } from './batch-tx.js';
import { batchPersistOps, connectionStatements, deliveryUpdateStatements } from './mysql-batches.js';
import { MysqlGroupStore } from './mysql-group-store.js';

/** Pooled connections per process: group commit keeps writes few and large, so a small pool suffices. */
const POOL_SIZE = 10;

/**
 * MySQL / MariaDB: for several processes or nodes sharing one database.
 *
 * Seq allocation stays gap-free across processes because the counter row is incremented
 * with INSERT … ON DUPLICATE KEY UPDATE, which locks it, and read back inside the transaction
 * that writes the deliveries: a second process waits on the row lock until the first commits.
 * Counter rows are touched in key order so two batches never lock them crosswise.
 */
export class MysqlStore extends SqlStore {
  readonly dialect = 'mysql' as const;

  constructor(
    db: Kysely<Database>,
    /** The pool Kysely runs on, for the batches and prepared statements of the hot paths. */
    private readonly pool: Pool,
  ) {
    super(db);
  }

  /**
   * The hot writes (persist, status updates, connection rows) as multi-statement batches:
   * a batch of durable direct pushes is two round trips (messages and counters, deliveries + COMMIT)
   * instead of eight, a batch of acks or connection rows one (see mysql-batches.ts).
   */
  override persistPushes(items: readonly PersistItem[]): Promise<PersistOutcome[]> {
    const apps = [...new Set(items.map((i) => i.appId))];
    return inBatchTx(this.pool, (tx) => persistBatch(batchPersistOps(tx, apps), items));
  }

  override applyDeliveryUpdates(updates: readonly DeliveryUpdate[]): Promise<number[]> {
    const { statements, answers } = deliveryUpdateStatements(updates);
    if (statements.length === 0) return Promise.resolve(answers([]));
    return inBatchTx(this.pool, async (tx) => answers(await tx.finish(...statements)));
  }

  override async recordConnections(changes: readonly ConnectionChange[]): Promise<void> {
    const statements = connectionStatements(changes);
    if (statements.length > 0) await inBatchTx(this.pool, (tx) => tx.finish(...statements));
  }

  /**
   * The reads every connect makes (newest seq, backlog, the user's connections elsewhere) as
   * prepared statements: parsed once per pooled connection, no query builder on the way.
   */
  override async lastSeq(appId: string, userId: string): Promise<number> {
    const rows = await execute<{ last_seq: number }>(
      this.pool,
      'select last_seq from user_state where app_id = ? and user_id = ?',
      [appId, userId],
    );
    return rows.length === 0 ? 0 : Number(rows[0]!.last_seq);
  }

  override async readUserMessages(q: BacklogQuery): Promise<UserMessage[]> {
    const rows = await execute<MessageRow & { seq: number; devices: string | null }>(
      this.pool,
      q.unackedOnly ? BACKLOG_UNACKED : BACKLOG_KEPT,
      [q.appId, q.userId, q.afterSeq, q.now, String(q.limit)],
    );
    return rows.map((r) => ({
      seq: Number(r.seq),
      devices: r.devices === null ? null : (JSON.parse(r.devices) as string[]),
      message: toStoredMessage(r),
    }));
  }

  override async remoteConnections(
    appId: string,
    userIds: readonly string[],
    exceptNode: string,
    freshSince: number,
  ): Promise<ConnectionRecord[]> {
    if (userIds.length === 0) return [];
    const rows = await execute<ConnectionRecord>(
      this.pool,
      `select c.user_id, c.connection_id, c.device, c.platform, c.node, c.connected_at, n.last_heartbeat
       from connections c inner join nodes n on n.node = c.node
       where c.app_id = ? and c.user_id in (${userIds.map(() => '?').join(', ')}) and c.status = 'online'
         and c.node <> ? and n.last_heartbeat >= ?
       order by c.connected_at`,
      [appId, ...userIds, exceptNode, freshSince],
    );
    return rows.map((r) => ({
      ...r,
      connected_at: Number(r.connected_at),
      last_heartbeat: Number(r.last_heartbeat),
    }));
  }

  /** Group batches as multi-statement transactions (mysql-group-store.ts). */
  protected override createGroupStore(transaction: RunTransaction): GroupStore {
    return new MysqlGroupStore(this.db, transaction, this.pool);
  }

  protected override inTransaction<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    // READ COMMITTED is every pooled connection's session default (createMysqlStore).
    return retrying(() => this.db.transaction().execute(fn));
  }

  protected persistOps(trx: Transaction<Database>): PersistOps {
    return {
      findExisting: async (appId, ids) => {
        const found: ExistingMessage[] = [];
        for (const chunk of chunks(ids, 500)) {
          const rows = await trx
            .selectFrom('messages')
            .select(['msg_id', 'fingerprint', 'recipients'])
            .where('app_id', '=', appId)
            .where('msg_id', 'in', chunk)
            .execute();
          for (const r of rows) found.push(r);
        }
        return found;
      },
      incrementCounters: (table, rows) => this.incrementCounters(trx, table, rows),
      insertMessages: (rows) => this.insertMessages(trx, rows),
      insertDeliveries: async (rows) => {
        for (const chunk of chunks(rows, 400)) await trx.insertInto('deliveries').values(chunk).execute();
      },
      webhookDelays: async (appIds) => {
        const rows = await trx
          .selectFrom('webhooks')
          .select(['app_id', 'after_ms'])
          .where('app_id', 'in', [...appIds])
          .execute();
        return new Map(rows.map((r) => [r.app_id, Number(r.after_ms)]));
      },
      insertHandoffs: async (rows) => {
        for (const chunk of chunks(rows, 400))
          await trx.insertInto('webhook_handoffs').values(chunk).execute();
      },
    };
  }

  private async incrementCounters(
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

  private async insertMessages(
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

/** A user's stored messages after a seq, in seq order; the same filter as `SqlStore.readUserMessages`. */
function backlogSql(statusFilter: string): string {
  return `select d.seq, d.devices, m.app_id, m.msg_id, m.type, m.timestamp, m.ttl, m.expires_at, m.data,
      m.platforms, m.topic, m.topic_offset
    from deliveries d inner join messages m on m.pk = d.message_pk
    where d.app_id = ? and d.user_id = ? and d.seq > ? and d.live_only = 0
      and (d.expires_at is null or d.expires_at > ?) and ${statusFilter}
    order by d.seq limit ?`;
}
const { pending, sent, failed, expired, revoked } = STATUS_CODE;
const BACKLOG_UNACKED = backlogSql(`d.status in (${pending}, ${sent}, ${failed})`);
const BACKLOG_KEPT = backlogSql(`d.status not in (${expired}, ${revoked})`);

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
      // A failed login or TLS handshake arrives as an 'error' event, not always through the
      // query: unheard, it would be an uncaught exception instead of config_invalid.
      conn.on('error', reject);
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
  // Multiple statements: the batches of mysql-batches.ts, one round trip each. Every value in
  // them is escaped by mysql2, as in any query.
  const pool = createPool({
    ...options,
    database,
    connectionLimit: POOL_SIZE,
    timezone: 'Z',
    multipleStatements: true,
  });
  // READ COMMITTED: no gap locks on the unique indexes, so concurrent batches rarely collide.
  // Set once per connection (commands on a connection run in order) instead of per transaction.
  pool.on('connection', (conn) => {
    // A failure here means a broken connection, which its first real query reports.
    conn.query('set session transaction isolation level read committed', () => {});
  });
  const store = new MysqlStore(new Kysely<Database>({ dialect: new MysqlDialect({ pool }) }), pool);
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
