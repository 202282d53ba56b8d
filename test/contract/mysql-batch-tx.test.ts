import { randomBytes } from 'node:crypto';
import { createConnection, createPool, type Pool } from 'mysql2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execute, inBatchTx } from '../../src/store/mysql/batch-tx.js';
import { serverOptions } from '../../src/store/mysql/mysql-store.js';
import { dropDatabase, queryDatabase, withDatabase } from '../helpers/mysql.js';
import { describeWithService } from '../helpers/services.js';

await describeWithService('mysql', 'mysql batch transactions', (base) => {
  const url = withDatabase(base, `mp_batch_${randomBytes(4).toString('hex')}`);
  const database = new URL(url).pathname.slice(1);
  let pool: Pool;

  beforeAll(async () => {
    const options = serverOptions(new URL(url));
    await new Promise<void>((resolve, reject) => {
      const conn = createConnection({ ...options, multipleStatements: true });
      conn.query(
        `create database \`${database}\`; create table \`${database}\`.t (k int primary key, v int not null)`,
        (err) => {
          conn.end();
          if (err) reject(err);
          else resolve();
        },
      );
    });
    // One connection: a transaction left open would be seen by the next test's statements.
    pool = createPool({ ...options, database, connectionLimit: 1, multipleStatements: true });
  });
  afterAll(async () => {
    await new Promise((r) => pool.end(r));
    await dropDatabase(url);
  });

  describe('BatchTx', () => {
    it('sends deferred writes with the next read and commits them; results are the read statements only', async () => {
      const read = await inBatchTx(pool, async (tx) => {
        tx.defer({
          sql: 'insert into t values ?',
          params: [
            [
              [1, 10],
              [2, 20],
            ],
          ],
        });
        const [rows] = await tx.run({
          sql: 'select k, v from t where k in (?) order by k',
          params: [[1, 2]],
        });
        tx.defer({ sql: 'update t set v = v + 1 where k = ?', params: [1] });
        return rows;
      });
      expect(read).toEqual([
        { k: 1, v: 10 },
        { k: 2, v: 20 },
      ]);
      expect(await queryDatabase(url, 'select k, v from t order by k')).toEqual([
        { k: 1, v: 11 },
        { k: 2, v: 20 },
      ]);
    });

    it('finish answers its statements and commits in the same text', async () => {
      const [update, select] = await inBatchTx(pool, (tx) =>
        tx.finish(
          { sql: 'update t set v = 0 where k = ?', params: [2] },
          { sql: 'select v from t where k = ?', params: [2] },
        ),
      );
      expect(update).toMatchObject({ affectedRows: 1 });
      expect(select).toEqual([{ v: 0 }]);
    });

    it('deferred reads travel with the next run and resolve with their own results', async () => {
      const [deferred, ran] = await inBatchTx(pool, async (tx) => {
        const read = tx.deferRead(
          { sql: 'insert into t values (?, ?)', params: [3, 30] },
          { sql: 'select v from t where k = ?', params: [3] },
        );
        const [count] = await tx.run({ sql: 'select count(*) n from t' });
        expect(tx.readsQueued).toBe(false);
        return [await read, count];
      });
      expect(deferred[0]).toMatchObject({ affectedRows: 1 });
      expect(deferred[1]).toEqual([{ v: 30 }]);
      expect(ran).toEqual([{ n: 3 }]);
    });

    it('a failing statement rolls the whole transaction back and leaves the connection usable', async () => {
      await expect(
        inBatchTx(pool, (tx) =>
          tx.finish(
            { sql: 'update t set v = 99 where k = ?', params: [1] },
            { sql: 'insert into t values (?, ?)', params: [1, 5] }, // duplicate key: not retried forever
          ),
        ),
      ).rejects.toMatchObject({ code: 'ER_DUP_ENTRY' });
      expect(await execute<{ v: number }>(pool, 'select v from t where k = ?', [1])).toEqual([{ v: 11 }]);
    });
  });
});
