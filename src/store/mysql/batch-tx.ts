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
 * are not needed yet (`defer`, `deferRead`) wait and travel with the next `run`, or with
 * the COMMIT; the first text carries START TRANSACTION. A batch of durable direct pushes is
 * two round trips this way (messages and counters, then deliveries + COMMIT) where one
 * statement per call made eight.
 *
 * The text protocol, not prepared statements: a prepared statement is one round trip per
 * statement, and a batch's statements differ in their row counts anyway. Parameters are
 * escaped by mysql2 (`format`), as for every `query`.
 */
export class BatchTx {
  /** Statements not sent yet, each with the callback that wants its result (if any). */
  private pending: { text: string; answer?: Answer }[] = [];
  private started = false;
  private done = false;

  constructor(private readonly conn: PoolConnection) {}

  /** Queues writes whose results are not needed; they run with the next `run` or the commit. */
  defer(...statements: Statement[]): void {
    for (const s of statements) this.pending.push({ text: format(s.sql, s.params as SqlValue[]) });
  }

  /**
   * Queues statements whose results are needed, but not before the next `run`: they travel
   * with it and the promise resolves with their results then (rejects if that text fails).
   */
  deferRead(...statements: Statement[]): Promise<StatementResult[]> {
    return new Promise((resolve, reject) => {
      const results: StatementResult[] = [];
      statements.forEach((s, i) => {
        const last = i === statements.length - 1;
        this.pending.push({
          text: format(s.sql, s.params as SqlValue[]),
          answer: (err, r) => {
            if (err) reject(err);
            else {
              results.push(r!);
              if (last) resolve(results);
            }
          },
        });
      });
    });
  }

  /** Runs what is queued plus these statements in one round trip; resolves with these statements' results. */
  run(...statements: Statement[]): Promise<StatementResult[]> {
    return this.send(statements, false);
  }

  /** Runs what is queued, these statements and COMMIT in one round trip; resolves with these statements' results. */
  finish(...statements: Statement[]): Promise<StatementResult[]> {
    return this.send(statements, true);
  }

  /** Sends what is queued and COMMIT, unless `finish` did. */
  async commit(): Promise<void> {
    if (this.done || (!this.started && this.pending.length === 0)) return;
    await this.send([], true);
  }

  /** Some queued statement's result is awaited: a `run` must carry it. */
  get readsQueued(): boolean {
    return this.pending.some((q) => q.answer !== undefined);
  }

  /** A transaction was started and not committed: a failure must roll it back. */
  get open(): boolean {
    return this.started && !this.done;
  }

  /** One text: START TRANSACTION if first, what is queued, these statements, COMMIT if asked. */
  private async send(statements: Statement[], commit: boolean): Promise<StatementResult[]> {
    const queued = this.pending;
    this.pending = [];
    const texts = [
      ...(this.started ? [] : ['start transaction']),
      ...queued.map((q) => q.text),
      ...statements.map((s) => format(s.sql, s.params as SqlValue[])),
      ...(commit ? ['commit'] : []),
    ];
    const first = texts.length - statements.length - (commit ? 1 : 0);
    this.started = true;
    let results: StatementResult[];
    try {
      results = await query(this.conn, texts);
    } catch (err) {
      for (const q of queued) q.answer?.(err);
      throw err;
    }
    if (commit) this.done = true;
    for (let i = 0; i < queued.length; i++) queued[i]!.answer?.(null, results[first - queued.length + i]);
    return results.slice(first, first + statements.length);
  }
}

type Answer = (err: unknown, result?: StatementResult) => void;

/**
 * Runs `fn` in a `BatchTx` on a pooled connection and commits. A failure rolls back; aborted
 * transactions (deadlock, lock wait timeout, duplicate key from a concurrent insert) are rerun.
 */
export function inBatchTx<T>(pool: Pool, fn: (tx: BatchTx) => Promise<T>): Promise<T> {
  return retrying(async () => {
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
      throw err;
    }
  });
}

/** Reruns a transaction the engine aborted (deadlock, lock wait timeout, duplicate key from a concurrent insert). */
export async function retrying<T>(attempt: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (n >= MAX_ATTEMPTS || !code || !RETRYABLE.has(code)) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 10 * n));
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
