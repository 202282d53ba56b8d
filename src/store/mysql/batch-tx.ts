import { type ExecuteValues, format, type Pool, type PoolConnection, type SqlValue } from 'mysql2';

/** A statement and its parameters, escaped by mysql2 into the text of a multi-statement. */
export interface Statement {
  readonly sql: string;
  readonly params?: readonly SqlValue[];
}

/** What a statement of a multi-statement answers: rows for a SELECT, a header for a write. */
export type StatementResult = Record<string, unknown>[] | { affectedRows: number };

/** Transactions the engine aborted (deadlock, lock wait, a concurrent insert of the same id) are rerun. */
const MAX_ATTEMPTS = 5;
const RETRYABLE = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', 'ER_DUP_ENTRY']);

/**
 * A transaction written as few round trips as its reads allow. Statements whose results
 * nobody needs (`defer`) wait and travel with the next `run`, or with the COMMIT; the first
 * `run` carries START TRANSACTION. A durable direct push is three round trips this way
 * (counters, message ids, deliveries + COMMIT) where one statement per call made eight.
 *
 * The text protocol, not prepared statements: a prepared statement is one round trip per
 * statement, and a batch's statements differ in their row counts anyway. Parameters are
 * escaped by mysql2 (`format`), as for every `query`.
 */
export class BatchTx {
  private pending: string[] = [];
  private started = false;
  private done = false;

  constructor(private readonly conn: PoolConnection) {}

  /** Queues writes whose results are not needed; they run with the next `run` or the commit. */
  defer(...statements: Statement[]): void {
    for (const s of statements) this.pending.push(format(s.sql, s.params as SqlValue[]));
  }

  /** Runs what is queued plus these statements in one round trip; resolves with these statements' results. */
  async run(...statements: Statement[]): Promise<StatementResult[]> {
    const before = (this.started ? 0 : 1) + this.pending.length;
    const results = await query(
      this.conn,
      this.take(statements.map((s) => format(s.sql, s.params as SqlValue[]))),
    );
    return results.slice(before);
  }

  /** Runs what is queued, these statements and COMMIT in one round trip; resolves with these statements' results. */
  async finish(...statements: Statement[]): Promise<StatementResult[]> {
    this.defer(...statements);
    const before = (this.started ? 0 : 1) + this.pending.length - statements.length;
    const results = await query(this.conn, this.take(['commit']));
    this.done = true;
    return results.slice(before, before + statements.length);
  }

  /** Sends what is queued and COMMIT, unless `finish` did. */
  async commit(): Promise<void> {
    if (this.done || (!this.started && this.pending.length === 0)) return;
    await query(this.conn, this.take(['commit']));
    this.done = true;
  }

  /** The queued statements and these; a transaction's first text starts it. */
  private take(statements: string[]): string[] {
    const parts = this.started ? this.pending : ['start transaction', ...this.pending];
    this.started = true;
    this.pending = [];
    return [...parts, ...statements];
  }

  /** A transaction was started and not committed: a failure must roll it back. */
  get open(): boolean {
    return this.started && !this.done;
  }
}

/**
 * Runs `fn` in a `BatchTx` on a pooled connection and commits. A failure rolls back; aborted
 * transactions (deadlock, lock wait timeout, duplicate key from a concurrent insert) are rerun.
 */
export async function inBatchTx<T>(pool: Pool, fn: (tx: BatchTx) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const conn = await getConnection(pool);
    let tx: BatchTx | null = null;
    try {
      tx = new BatchTx(conn);
      const result = await fn(tx);
      await tx.commit();
      conn.release();
      return result;
    } catch (err) {
      // A failed statement ends the multi-statement, not the transaction: roll it back before
      // the connection goes back to the pool. If even that fails, the connection is dropped.
      try {
        if (tx?.open) await query(conn, ['rollback']);
        conn.release();
      } catch {
        conn.destroy();
      }
      const code = (err as { code?: string }).code;
      if (attempt >= MAX_ATTEMPTS || !code || !RETRYABLE.has(code)) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
    }
  }
}

/** A prepared statement (binary protocol, parsed once per pooled connection): the point reads. */
export function execute<T>(pool: Pool, sql: string, params: readonly ExecuteValues[]): Promise<T[]> {
  return new Promise((resolve, reject) => {
    pool.execute(sql, params as ExecuteValues[], (err, rows) => (err ? reject(err) : resolve(rows as T[])));
  });
}

function getConnection(pool: Pool): Promise<PoolConnection> {
  return new Promise((resolve, reject) => pool.getConnection((err, c) => (err ? reject(err) : resolve(c))));
}

/** Statements joined into one text, one round trip; mysql2 answers one result per statement. */
function query(conn: PoolConnection, statements: readonly string[]): Promise<StatementResult[]> {
  return new Promise((resolve, reject) => {
    conn.query(statements.join(';\n'), (err, results) => {
      if (err) reject(err);
      else if (statements.length > 1) resolve(results as unknown as StatementResult[]);
      else resolve([results as unknown as StatementResult]);
    });
  });
}
