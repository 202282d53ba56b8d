import type { Kysely } from 'kysely';
import type { Pool } from 'mysql2';
import type { Recipient } from '../../domain/message.js';
import { type GroupPushJob, LostGroupPush } from '../group-store.js';
import type { Database } from '../sql/schema.js';
import { advanceJob, groupDeliveries, type RunTransaction, SqlGroupStore } from '../sql/sql-group-store.js';
import { inBatchTx } from './batch-tx.js';
import { counterStatements, deliveryStatements, sortedCounters } from './mysql-batches.js';

/**
 * Group pushes on MySQL/MariaDB: each batch as a multi-statement transaction of two round
 * trips (the job's cursor and the members' counters, then their deliveries with the COMMIT),
 * where the query builder took one per statement — about sixteen for 2,000 members, and the
 * online members waited for all of them before the hub had their message.
 */
export class MysqlGroupStore extends SqlGroupStore {
  constructor(
    db: Kysely<Database>,
    transaction: RunTransaction,
    private readonly pool: Pool,
  ) {
    super(db, 'mysql', transaction);
  }

  override async writeGroupBatch(
    job: GroupPushJob,
    users: readonly string[],
    onlineUsers: ReadonlySet<string> | null,
    advanceTo: string | null,
  ): Promise<Recipient[]> {
    const appId = job.message.appId;
    const delivered = await inBatchTx(this.pool, async (tx) => {
      const counters = counterStatements(
        'user_state',
        sortedCounters(users.map((name) => ({ appId, name, n: 1 }))),
      );
      // The job row's update comes first: it is the job's lock, and it proves this writer
      // still owns the job at the cursor it read (a stale writer changes no row and rolls back).
      const [moved, ...results] = await tx.run(
        {
          sql: `update group_pushes set after_user = ?, written = written + ?
            where message_pk = ? and node = ? and after_user <=> ?`,
          params: [advanceTo ?? job.afterUser, users.length, job.messagePk, job.node, job.afterUser],
        },
        ...counters.statements,
      );
      if ((moved as { affectedRows: number }).affectedRows !== 1) throw new LostGroupPush(job.messagePk);
      const ends = new Map<string, number>();
      counters.read(results, ends);
      const batch = groupDeliveries(job, users, ends, onlineUsers);
      await tx.finish(...deliveryStatements(batch.rows));
      return batch.delivered;
    });
    advanceJob(job, users.length, advanceTo);
    return delivered;
  }
}
