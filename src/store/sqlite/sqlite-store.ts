import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { StoreConfig } from '../../config.js';
import { PushError } from '../../domain/errors.js';
import { STATUS_CODE } from '../../domain/message.js';
import {
  counterKey,
  MESSAGE_INSERT_COLUMNS,
  messageValues,
  type PersistOps,
  persistBatch,
} from '../sql/persist-plan.js';
import type { Database } from '../sql/schema.js';
import { type MessageRow, SqlStore, toStoredMessage } from '../sql/sql-store.js';
import type {
  BacklogQuery,
  ConnectionChange,
  DeliveryUpdate,
  PersistItem,
  PersistOutcome,
  UserMessage,
} from '../store.js';
import { Checkpointer } from './sqlite-checkpointer.js';

const { pending: PENDING, sent: SENT, acked: ACKED } = STATUS_CODE;

/**
 * The embedded default: one SQLite file in WAL mode, for a single process. For several
 * processes or nodes use the MySQL/MariaDB driver (PUSH_DB_URL=mysql://…).
 *
 * better-sqlite3 is synchronous, so a commit never waits on another process; with
 * `synchronous=NORMAL` a commit is durable against process crashes (kill -9) because the
 * WAL is in the OS page cache; `PUSH_SQLITE_SYNC=full` adds an fsync per commit for power loss.
 */
export class SqliteStore extends SqlStore {
  readonly dialect = 'sqlite' as const;
  /** Prepared on first use: the tables exist only once `migrate()` ran. */
  private prepared: Statements | null = null;
  private readonly preparedOps: PersistOps;
  private checkpointer: Checkpointer | null = null;
  /** A checkpoint asked for by the checkpoint thread is queued behind the connection lock. */
  private restartPending = false;

  constructor(
    db: Kysely<Database>,
    /** The same connection Kysely uses; touched only while holding Kysely's connection lock. */
    private readonly raw: SqliteDatabase.Database,
  ) {
    super(db);
    this.preparedOps = {
      findExisting: (appId, ids) => {
        const st = this.stmts;
        const found = [];
        for (const id of ids) {
          const r = st.findMessage.get(appId, id) as { fingerprint: string; recipients: number } | undefined;
          if (r) found.push({ msg_id: id, fingerprint: r.fingerprint, recipients: r.recipients });
        }
        return found;
      },
      incrementCounters: (table, rows) => {
        const st = this.stmts;
        const stmt = table === 'user_state' ? st.bumpSeq : st.bumpOffset;
        const ends = new Map<string, number>();
        for (const r of rows) ends.set(counterKey(r.appId, r.name), stmt.get(r.appId, r.name, r.n) as number);
        return ends;
      },
      insertMessages: (rows) => {
        const st = this.stmts;
        const pks = new Map<string, number>();
        for (const m of rows) {
          const { lastInsertRowid } = st.insertMessage.run(...messageValues(m));
          pks.set(counterKey(m.app_id, m.msg_id), Number(lastInsertRowid));
        }
        return pks;
      },
      insertDeliveries: (rows) => {
        const st = this.stmts;
        for (const d of rows) {
          st.insertDelivery.run(
            d.app_id,
            d.user_id,
            d.seq,
            d.message_pk,
            d.devices ?? null,
            d.status,
            d.expires_at ?? null,
            d.live_only ?? 0,
          );
        }
      },
      webhookDelays: (appIds) => {
        const st = this.stmts;
        const delays = new Map<string, number>();
        for (const appId of appIds) {
          const ms = st.webhookDelay.get(appId) as number | undefined;
          if (ms !== undefined) delays.set(appId, ms);
        }
        return delays;
      },
      insertHandoffs: (rows) => {
        const st = this.stmts;
        for (const h of rows) {
          st.insertHandoff.run(h.app_id, h.user_id, h.seq, h.message_pk, h.due_at, h.give_up_at);
        }
      },
    };
  }

  /**
   * Every persist, group batches included, runs on the prepared statements: better-sqlite3
   * has one connection, so inside a Kysely transaction they write in that same transaction.
   */
  protected persistOps(): PersistOps {
    return this.preparedOps;
  }

  /** Moves WAL checkpoints off the event loop (file databases only). */
  startCheckpointer(path: string): void {
    this.raw.pragma(`wal_autocheckpoint = ${FALLBACK_CHECKPOINT_PAGES}`);
    this.checkpointer = new Checkpointer(path, CHECKPOINT_INTERVAL_MS, CHECKPOINT_RESTART_FRAMES, () => {
      // Between two transactions (the connection lock): what the thread's pass left is a
      // few hundred frames at most, and the next write starts the WAL over.
      if (this.restartPending) return;
      this.restartPending = true;
      this.locked(() => this.raw.pragma('wal_checkpoint(PASSIVE)'))
        .catch(() => {}) // best effort, as the thread's own passes
        .finally(() => {
          this.restartPending = false;
        });
    });
  }

  override async close(): Promise<void> {
    await this.checkpointer?.close();
    this.checkpointer = null;
    await super.close();
  }

  private get stmts(): Statements {
    this.prepared ??= prepareStatements(this.raw);
    return this.prepared;
  }

  /**
   * The two hottest writes (persist, status updates) skip the query builder: statements
   * prepared once, run synchronously inside one transaction. Kysely prepares and compiles
   * every query anew and awaits between statements, which made these batches CPU-bound.
   */
  override persistPushes(items: readonly PersistItem[]): Promise<PersistOutcome[]> {
    return this.exclusiveTransaction(() => persistBatch(this.preparedOps, items));
  }

  override applyDeliveryUpdates(updates: readonly DeliveryUpdate[]): Promise<number[]> {
    return this.exclusiveTransaction(async () => updates.map((u) => this.applyUpdateNow(u)));
  }

  /**
   * Connect-time reads (every connection runs both) and connection bookkeeping, also as
   * prepared statements: right after 5k connects, their Kysely queries held the shared
   * connection for seconds and pushes queued behind them.
   */
  override lastSeq(appId: string, userId: string): Promise<number> {
    return this.locked(() => (this.stmts.lastSeq.get(appId, userId) as number | undefined) ?? 0);
  }

  override readUserMessages(q: BacklogQuery): Promise<UserMessage[]> {
    const stmt = q.unackedOnly ? this.stmts.backlogUnacked : this.stmts.backlogKept;
    return this.locked(() =>
      (stmt.all(q.appId, q.userId, q.afterSeq, q.now, q.limit) as (MessageRow & BacklogRow)[]).map((r) => ({
        seq: r.seq,
        devices: r.devices === null ? null : (JSON.parse(r.devices) as string[]),
        message: toStoredMessage(r),
      })),
    );
  }

  override recordConnections(changes: readonly ConnectionChange[]): Promise<void> {
    return this.exclusiveTransaction(async () => {
      const st = this.stmts;
      for (const c of changes) {
        if (c.kind === 'open') {
          st.openConnection.run(c.connectionId, c.appId, c.userId, c.device, c.platform, c.node, c.at, c.at);
        } else if (c.kind === 'close') {
          st.closeConnection.run(c.at, c.connectionId);
        }
      }
    });
  }

  /** Runs `fn` on the raw connection while holding Kysely's connection lock (see exclusiveTransaction). */
  private locked<T>(fn: () => T): Promise<T> {
    return this.db.connection().execute(async () => fn());
  }

  /**
   * A transaction on the raw connection while holding Kysely's connection lock, so no
   * Kysely transaction is open on the same connection and none starts until this ends.
   */
  private exclusiveTransaction<T>(fn: () => Promise<T>): Promise<T> {
    return this.db.connection().execute(async () => {
      this.stmts.begin.run();
      try {
        const result = await fn();
        this.stmts.commit.run();
        return result;
      } catch (err) {
        if (this.raw.inTransaction) this.stmts.rollback.run();
        throw err;
      }
    });
  }

  /** Same rules as `SqlStore.applyDeliveryUpdates`, one row per statement. */
  private applyUpdateNow(u: DeliveryUpdate): number {
    const st = this.stmts;
    switch (u.kind) {
      case 'read':
        st.moveReadCursor.run(u.seq, u.appId, u.userId);
        return (st.readCursor.get(u.appId, u.userId) as number | undefined) ?? 0;
      case 'sent': {
        // One statement per seq for both moves (pending → sent, first resend armed).
        let n = 0;
        const params = { at: u.at, retryAt: u.retryAt, app: u.appId, user: u.userId, seq: 0 };
        for (const seq of u.seqs) {
          params.seq = seq;
          n += st.markSent.run(params).changes;
        }
        return n;
      }
      case 'ack_upto':
        return st.ackUpTo.run({ at: u.at, app: u.appId, user: u.userId, seq: u.seq, device: u.device })
          .changes;
      case 'ack_ids': {
        const rows: AckCandidate[] = [];
        for (const id of new Set(u.ids)) {
          const pk = st.messagePk.get(u.appId, id) as number | undefined;
          if (pk === undefined) continue;
          const row = st.ackableByMessage.get(u.appId, u.userId, pk, u.at) as AckCandidate | undefined;
          if (row) rows.push(row);
        }
        return this.ackRows(u, rows);
      }
    }
  }

  /** Acks the candidates the device may ack (device-targeted ones only for their devices). */
  private ackRows(
    u: { appId: string; userId: string; device: string | null; at: number },
    rows: AckCandidate[],
  ) {
    let n = 0;
    for (const c of rows) {
      if (
        c.devices !== null &&
        u.device !== null &&
        !(JSON.parse(c.devices) as string[]).includes(u.device)
      ) {
        continue;
      }
      n += this.stmts.ack.run(u.at, u.appId, u.userId, c.seq).changes;
    }
    return n;
  }

  async expireDue(now: number, limit: number): Promise<number> {
    return this.locked(() => this.stmts.expireDue.run(now, limit).changes);
  }
}

interface BacklogRow {
  seq: number;
  devices: string | null;
}

interface AckCandidate {
  seq: number;
  devices: string | null;
}

type Statements = ReturnType<typeof prepareStatements>;

/** How often the checkpoint thread copies the WAL back into the database. */
const CHECKPOINT_INTERVAL_MS = 100;
/** WAL pages (~8 MB) from which the writer checkpoints once itself to restart the WAL (see sqlite-checkpointer). */
const CHECKPOINT_RESTART_FRAMES = 2_000;
/** The main connection checkpoints only past this many WAL pages (~64 MB), if the thread lags. */
const FALLBACK_CHECKPOINT_PAGES = 16_000;

const UNACKED_SQL = `(${PENDING}, ${SENT}, ${STATUS_CODE.failed})`;
/**
 * The backlog index holds only rows with `acked_at is null` (see the migration); a query uses
 * it only when its WHERE repeats that term. Redundant with the status filters it goes with.
 */
const NOT_ACKED = 'acked_at is null';
/**
 * Named, because without statistics the planner prefers the primary key, whose range covers
 * the user's whole acked history (an ack or a connect without `since` would walk all of it).
 */
const UNACKED_INDEX = 'indexed by deliveries_backlog';

/** A user's stored messages after a seq, in seq order; the same filter as `SqlStore.readUserMessages`. */
function backlogSql(statusFilter: string, index = ''): string {
  return `select d.seq, d.devices, m.app_id, m.msg_id, m.type, m.timestamp, m.ttl, m.expires_at, m.data,
      m.platforms, m.topic, m.topic_offset
    from deliveries d ${index} inner join messages m on m.pk = d.message_pk
    where d.app_id = ? and d.user_id = ? and d.seq > ? and d.live_only = 0
      and (d.expires_at is null or d.expires_at > ?) and ${statusFilter}
    order by d.seq limit ?`;
}

/**
 * Statements whose speed depends on the index they run on: a user's unacked rows, and the
 * rows the TTL sweep may still expire (never the whole past). The contract test checks their plans.
 */
export const PLANNED_SQL = {
  backlogUnacked: backlogSql(`d.${NOT_ACKED} and d.status in ${UNACKED_SQL}`, UNACKED_INDEX),
  // Unacked, unexpired rows up to seq; device-targeted ones only for their devices (a null
  // device is the user as a whole). An acked row needs no resend: clearing next_retry_at
  // takes it out of deliveries_retry (one index delete) instead of moving its entry from
  // (sent, t) to (acked, t) for good.
  ackUpTo: `update deliveries ${UNACKED_INDEX} set status = ${ACKED}, acked_at = @at, next_retry_at = null
     where app_id = @app and user_id = @user and seq <= @seq and ${NOT_ACKED} and status in ${UNACKED_SQL}
       and (expires_at is null or expires_at > @at)
       and (devices is null or @device is null
            or exists (select 1 from json_each(deliveries.devices) where value = @device))`,
  expireDue: `update deliveries set status = ${STATUS_CODE.expired}
     where (app_id, user_id, seq) in (
       select app_id, user_id, seq from deliveries
       where expires_at <= ? and status in ${UNACKED_SQL} and live_only = 0
       limit ?)`,
} as const;

function prepareStatements(db: SqliteDatabase.Database) {
  const counter = (table: string, name: string, col: string) =>
    db
      .prepare(
        `insert into ${table} (app_id, ${name}, ${col}) values (?, ?, ?)
       on conflict (app_id, ${name}) do update set ${col} = ${table}.${col} + excluded.${col}
       returning ${col}`,
      )
      .pluck();
  return {
    begin: db.prepare('begin immediate'),
    commit: db.prepare('commit'),
    rollback: db.prepare('rollback'),
    findMessage: db.prepare('select fingerprint, recipients from messages where app_id = ? and msg_id = ?'),
    messagePk: db.prepare('select pk from messages where app_id = ? and msg_id = ?').pluck(),
    bumpSeq: counter('user_state', 'user_id', 'last_seq'),
    bumpOffset: counter('topic_state', 'topic', 'last_offset'),
    insertMessage: db.prepare(
      `insert into messages (${MESSAGE_INSERT_COLUMNS}) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    insertDelivery: db.prepare(
      `insert into deliveries (app_id, user_id, seq, message_pk, devices, status, retries, sent_at,
         acked_at, next_retry_at, expires_at, live_only) values (?, ?, ?, ?, ?, ?, 0, null, null, null, ?, ?)`,
    ),
    // Pending → sent (with sent_at), and a first resend armed on sent rows that have none and
    // are not live-only: SqlStore's two UPDATEs in one. Counts rows changed by either move.
    markSent: db.prepare(
      `update deliveries set status = ${SENT},
         sent_at = case when status = ${PENDING} then @at else sent_at end,
         next_retry_at = case when next_retry_at is null and live_only = 0 then @retryAt else next_retry_at end
       where app_id = @app and user_id = @user and seq = @seq
         and (status = ${PENDING} or (status = ${SENT} and next_retry_at is null and live_only = 0))`,
    ),
    ackUpTo: db.prepare(PLANNED_SQL.ackUpTo),
    ackableByMessage: db.prepare(
      `select seq, devices from deliveries
       where app_id = ? and user_id = ? and message_pk = ? and status in ${UNACKED_SQL}
         and (expires_at is null or expires_at > ?)`,
    ),
    ack: db.prepare(
      `update deliveries set status = ${ACKED}, acked_at = ?, next_retry_at = null
       where app_id = ? and user_id = ? and seq = ? and status in ${UNACKED_SQL}`,
    ),
    // The read cursor never moves backwards and is clamped to the newest seq.
    moveReadCursor: db.prepare(
      `update user_state set last_read_seq = max(last_read_seq, min(?, last_seq))
       where app_id = ? and user_id = ?`,
    ),
    lastSeq: db.prepare('select last_seq from user_state where app_id = ? and user_id = ?').pluck(),
    backlogUnacked: db.prepare(PLANNED_SQL.backlogUnacked),
    expireDue: db.prepare(PLANNED_SQL.expireDue),
    backlogKept: db.prepare(backlogSql(`d.status not in (${STATUS_CODE.expired}, ${STATUS_CODE.revoked})`)),
    webhookDelay: db.prepare('select after_ms from webhooks where app_id = ?').pluck(),
    insertHandoff: db.prepare(
      `insert into webhook_handoffs (app_id, user_id, seq, message_pk, due_at, give_up_at)
       values (?, ?, ?, ?, ?, ?)`,
    ),
    openConnection: db.prepare(
      `insert into connections (connection_id, app_id, user_id, device, platform, node, status,
         connected_at, last_heartbeat, disconnected_at) values (?, ?, ?, ?, ?, ?, 'online', ?, ?, null)`,
    ),
    closeConnection: db.prepare(
      `update connections set status = 'offline', disconnected_at = ? where connection_id = ?`,
    ),
    readCursor: db.prepare('select last_read_seq from user_state where app_id = ? and user_id = ?').pluck(),
  };
}

export async function createSqliteStore(config: StoreConfig): Promise<SqliteStore> {
  const path = config.url.replace(/^sqlite:(\/\/)?/, '');
  if (!path) throw new PushError('config_invalid', 'PUSH_DB_URL: sqlite: needs a file path');
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  let database: SqliteDatabase.Database;
  try {
    database = new SqliteDatabase(path);
  } catch (err) {
    throw new PushError('config_invalid', `PUSH_DB_URL: cannot open ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  database.pragma('journal_mode = WAL');
  database.pragma(`synchronous = ${config.sqliteSync === 'full' ? 'FULL' : 'NORMAL'}`);
  // The CLI (app create, token) may open the file while the server runs.
  database.pragma('busy_timeout = 5000');
  const store = new SqliteStore(new Kysely<Database>({ dialect: new SqliteDialect({ database }) }), database);
  await store.migrate();
  if (path !== ':memory:') store.startCheckpointer(path);
  return store;
}
