import type { Kysely } from 'kysely';
import type { Pool } from 'mysql2';
import type { Recipient } from '../../domain/message.js';
import { type GroupPushJob, LostGroupPush } from '../group-store.js';
import type { Database } from '../sql/schema.js';
import { advanceJob, groupDeliveries, type RunTransaction, SqlGroupStore } from '../sql/sql-group-store.js';
import { inBatchTx } from './batch-tx.js';
import { counterStatements, deliveryStatements, sortedCounters } from './mysql-batches.js';

/**
 * Group pushes on MySQL/MariaDB: each batch as a multi-statement transaction of three round
 * trips — the members' counters; their deliveries and the job's row; the COMMIT — where the
 * query builder took one per statement (about sixteen for 2,000 members), and the online
 * members waited for all of them before the hub had their message.
 *
 * The job's row is updated last: it is the writer's claim (a writer whose job was adopted
 * changes no row and rolls back), and its lock is held only for the COMMIT's round trip, so
 * the online members' batches run in parallel on several connections instead of queueing
 * behind one another's whole transaction. Counter rows are locked in key order in every
 * batch, and the job row after them, so no two batches wait on each other crosswise.
 */
export class MysqlGroupStore extends SqlGroupStore {
  /** A quarter of the pool: the online members' first batches, while pushes keep the rest. */
  override readonly aheadWriters = 4;

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
      const ends = new Map<string, number>();
      counters.read(await tx.run(...counters.statements), ends);
      const batch = groupDeliveries(job, users, ends, onlineUsers);
      const results = await tx.run(...deliveryStatements(batch.rows), {
        sql: `update group_pushes set after_user = ?, written = written + ?
          where message_pk = ? and node = ? and after_user <=> ?`,
        params: [advanceTo ?? job.afterUser, users.length, job.messagePk, job.node, job.afterUser],
      });
      const moved = results[results.length - 1] as { affectedRows: number };
      if (moved.affectedRows !== 1) throw new LostGroupPush(job.messagePk);
      return batch.delivered; // inBatchTx commits
    });
    advanceJob(job, users.length, advanceTo);
    return delivered;
  }
}
