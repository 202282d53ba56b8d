import { type Insertable, type Kysely, sql, type Transaction } from 'kysely';
import { type Recipient, STATUS_CODE } from '../../domain/message.js';
import {
  type GroupPushJob,
  type GroupPushStart,
  type GroupSize,
  type GroupStore,
  LostGroupPush,
  type TopicSettings,
} from '../group-store.js';
import type { PersistItem } from '../store.js';
import type { SqlDialect } from './migrations/index.js';
import { counterKey, newMessage, type PersistOps } from './persist-plan.js';
import type { Database, DeliveriesTable } from './schema.js';
import { chunks, MESSAGE_COLUMNS, toStoredMessage } from './sql-store.js';

type Tx = Transaction<Database>;

/** Runs `fn` in one of the driver's transactions, with its persist primitives over it. */
export type RunTransaction = <T>(fn: (trx: Tx, ops: PersistOps) => Promise<T>) => Promise<T>;

/** Rows per statement of a member edit (3 parameters each). */
const EDIT_CHUNK = 500;
/** Members removed per transaction when a whole group is deleted. */
const DELETE_CHUNK = 5_000;

/** GroupStore over Kysely, for both SQL drivers. */
export class SqlGroupStore implements GroupStore {
  readonly aheadWriters: number = 1;

  constructor(
    protected readonly db: Kysely<Database>,
    private readonly dialect: SqlDialect,
    private readonly transaction: RunTransaction,
  ) {}

  editMembers(
    appId: string,
    groupId: string,
    add: readonly string[],
    remove: readonly string[],
  ): Promise<number> {
    return this.transaction(async (trx) => {
      let delta = 0;
      for (const chunk of chunks([...new Set(add)], EDIT_CHUNK)) {
        const r = await trx
          .insertInto('group_members')
          .orIgnore()
          .values(chunk.map((user_id) => ({ app_id: appId, group_id: groupId, user_id })))
          .executeTakeFirst();
        delta += Number(r.numInsertedOrUpdatedRows ?? 0);
      }
      for (const chunk of chunks([...new Set(remove)], EDIT_CHUNK)) {
        const r = await trx
          .deleteFrom('group_members')
          .where('app_id', '=', appId)
          .where('group_id', '=', groupId)
          .where('user_id', 'in', chunk)
          .executeTakeFirst();
        delta -= Number(r.numDeletedRows);
      }
      return this.moveSize(trx, appId, groupId, delta);
    });
  }

  /** Adds `delta` to the group's size and returns it; a group of 0 keeps no row. */
  private async moveSize(trx: Tx, appId: string, groupId: string, delta: number): Promise<number> {
    if (delta !== 0) {
      const row = trx.insertInto('group_state').values({ app_id: appId, group_id: groupId, members: delta });
      await (this.dialect === 'mysql'
        ? row.onDuplicateKeyUpdate({ members: sql`members + ${delta}` })
        : row.onConflict((c) =>
            c.columns(['app_id', 'group_id']).doUpdateSet({ members: sql`group_state.members + ${delta}` }),
          )
      ).execute();
    }
    const state = await trx
      .selectFrom('group_state')
      .select('members')
      .where('app_id', '=', appId)
      .where('group_id', '=', groupId)
      .executeTakeFirst();
    const members = state ? Number(state.members) : 0;
    if (state && members <= 0) {
      await trx
        .deleteFrom('group_state')
        .where('app_id', '=', appId)
        .where('group_id', '=', groupId)
        .execute();
    }
    return Math.max(members, 0);
  }

  async listMembers(appId: string, groupId: string, after: string | null, limit: number): Promise<string[]> {
    let query = this.db
      .selectFrom('group_members')
      .select('user_id')
      .where('app_id', '=', appId)
      .where('group_id', '=', groupId);
    if (after !== null) query = query.where('user_id', '>', after);
    const rows = await query.orderBy('user_id').limit(limit).execute();
    return rows.map((r) => r.user_id);
  }

  async groupsOf(appId: string, userId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('group_members')
      .select('group_id')
      .where('app_id', '=', appId)
      .where('user_id', '=', userId)
      .orderBy('group_id')
      .execute();
    return rows.map((r) => r.group_id);
  }

  async deleteGroup(appId: string, groupId: string): Promise<void> {
    for (;;) {
      // Each chunk moves the size with it, so the size stays right while a large group goes.
      const deleted = await this.transaction(async (trx) => {
        const r =
          this.dialect === 'mysql'
            ? await sql`delete from group_members where app_id = ${appId} and group_id = ${groupId}
                order by user_id limit ${DELETE_CHUNK}`.execute(trx)
            : await sql`delete from group_members where app_id = ${appId} and group_id = ${groupId}
                and user_id in (select user_id from group_members where app_id = ${appId}
                  and group_id = ${groupId} order by user_id limit ${DELETE_CHUNK})`.execute(trx);
        const n = Number(r.numAffectedRows ?? 0);
        await this.moveSize(trx, appId, groupId, -n);
        return n;
      });
      if (deleted < DELETE_CHUNK) break;
    }
    // A size row can outlive its members only if it drifted; none is kept for an empty group.
    await this.db
      .deleteFrom('group_state')
      .where('app_id', '=', appId)
      .where('group_id', '=', groupId)
      .execute();
  }

  async listGroups(appId: string | null, limit: number): Promise<GroupSize[]> {
    let query = this.db.selectFrom('group_state').select(['app_id', 'group_id', 'members']);
    if (appId !== null) query = query.where('app_id', '=', appId);
    const rows = await query.orderBy('members', 'desc').orderBy('group_id').limit(limit).execute();
    return rows.map((r) => ({ app: r.app_id, group: r.group_id, members: Number(r.members) }));
  }

  startGroupPush(item: PersistItem, groups: readonly string[], node: string): Promise<GroupPushStart> {
    return this.transaction(async (trx, ops) => {
      const id = item.messageId;
      const [prev] = await ops.findExisting(item.appId, [id]);
      if (prev) {
        if (prev.fingerprint !== item.fingerprint) return { kind: 'conflict', id };
        const running = await trx
          .selectFrom('group_pushes as g')
          .innerJoin('messages as m', 'm.pk', 'g.message_pk')
          .select('g.message_pk')
          .where('m.app_id', '=', item.appId)
          .where('m.msg_id', '=', id)
          .executeTakeFirst();
        return running
          ? { kind: 'running', id }
          : { kind: 'duplicate', id, recipients: Number(prev.recipients) };
      }
      // Recipients: the distinct members, known once the last batch is written (finishGroupPush).
      const { message, row } = newMessage(item, id, null, null, 0);
      const pks = await ops.insertMessages([row]);
      const messagePk = pks.get(counterKey(item.appId, id))!;
      await trx
        .insertInto('group_pushes')
        .values({
          message_pk: messagePk,
          app_id: item.appId,
          group_ids: JSON.stringify(groups),
          node,
          after_user: null,
          written: 0,
        })
        .execute();
      const job: GroupPushJob = { messagePk, message, groups, node, afterUser: null, written: 0 };
      return { kind: 'started', job };
    });
  }

  async writeGroupBatch(
    job: GroupPushJob,
    users: readonly string[],
    onlineUsers: ReadonlySet<string> | null,
    advanceTo: string | null,
  ): Promise<Recipient[]> {
    const delivered = await this.transaction(async (trx, ops) => {
      // The job row's update comes first: it is the job's lock, and it proves this writer
      // still owns the job at the cursor it read (a stale writer changes no row and rolls back).
      let move = trx
        .updateTable('group_pushes')
        .set({ after_user: advanceTo ?? job.afterUser, written: sql`written + ${users.length}` })
        .where('message_pk', '=', job.messagePk)
        .where('node', '=', job.node);
      move =
        job.afterUser === null
          ? move.where('after_user', 'is', null)
          : move.where('after_user', '=', job.afterUser);
      const moved = await move.executeTakeFirst();
      if (Number(moved.numUpdatedRows) !== 1) throw new LostGroupPush(job.messagePk);

      const appId = job.message.appId;
      const ends = await ops.incrementCounters(
        'user_state',
        users.map((name) => ({ appId, name, n: 1 })),
      );
      const batch = groupDeliveries(job, users, ends, onlineUsers);
      await ops.insertDeliveries(batch.rows);
      return batch.delivered;
    });
    // Only once committed: a transaction the driver reruns must find the job where it was.
    advanceJob(job, users.length, advanceTo);
    return delivered;
  }

  async onlineMembers(appId: string, groups: readonly string[], freshSince: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('connections as c')
      .innerJoin('nodes as n', 'n.node', 'c.node')
      .innerJoin('group_members as g', (j) =>
        j.onRef('g.app_id', '=', 'c.app_id').onRef('g.user_id', '=', 'c.user_id'),
      )
      .select('c.user_id')
      .distinct()
      .where('c.app_id', '=', appId)
      .where('c.status', '=', 'online')
      .where('n.last_heartbeat', '>=', freshSince)
      .where('g.group_id', 'in', [...groups])
      .execute();
    return rows.map((r) => r.user_id);
  }

  async writtenAhead(job: GroupPushJob): Promise<string[]> {
    let query = this.db
      .selectFrom('deliveries')
      .select('user_id')
      .where('message_pk', '=', job.messagePk)
      .where('app_id', '=', job.message.appId);
    if (job.afterUser !== null) query = query.where('user_id', '>', job.afterUser);
    return (await query.execute()).map((r) => r.user_id);
  }

  finishGroupPush(job: GroupPushJob): Promise<void> {
    return this.transaction(async (trx) => {
      await trx
        .updateTable('messages')
        .set({ recipients: job.written })
        .where('pk', '=', job.messagePk)
        .execute();
      await trx.deleteFrom('group_pushes').where('message_pk', '=', job.messagePk).execute();
    });
  }

  async openGroupPushes(): Promise<GroupPushJob[]> {
    const rows = await this.db
      .selectFrom('group_pushes as g')
      .innerJoin('messages as m', 'm.pk', 'g.message_pk')
      .leftJoin('nodes as n', 'n.node', 'g.node')
      .select([
        'n.last_heartbeat',
        'g.message_pk',
        'g.group_ids',
        'g.node',
        'g.after_user',
        'g.written',
        ...MESSAGE_COLUMNS,
      ])
      .orderBy('g.message_pk')
      .execute();
    return rows.map((r) => ({
      messagePk: Number(r.message_pk),
      message: toStoredMessage(r),
      groups: JSON.parse(r.group_ids) as string[],
      node: r.node,
      nodeHeartbeat: r.last_heartbeat === null ? null : Number(r.last_heartbeat),
      afterUser: r.after_user,
      written: Number(r.written),
    }));
  }

  async claimGroupPush(messagePk: number, fromNode: string, toNode: string): Promise<boolean> {
    const r = await this.db
      .updateTable('group_pushes')
      .set({ node: toNode })
      .where('message_pk', '=', messagePk)
      .where('node', '=', fromNode)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  async groupPushResult(appId: string, messageId: string): Promise<number | null> {
    const row = await this.db
      .selectFrom('messages as m')
      .leftJoin('group_pushes as g', 'g.message_pk', 'm.pk')
      .select(['m.recipients', 'g.message_pk as running'])
      .where('m.app_id', '=', appId)
      .where('m.msg_id', '=', messageId)
      .executeTakeFirst();
    if (!row || row.running !== null) return null;
    return Number(row.recipients);
  }

  async saveTopicSettings(appId: string, topic: string, mergeMs: number): Promise<void> {
    if (mergeMs === 0) {
      await this.db
        .deleteFrom('topic_settings')
        .where('app_id', '=', appId)
        .where('topic', '=', topic)
        .execute();
      return;
    }
    const row = this.db.insertInto('topic_settings').values({ app_id: appId, topic, merge_ms: mergeMs });
    await (this.dialect === 'mysql'
      ? row.onDuplicateKeyUpdate({ merge_ms: mergeMs })
      : row.onConflict((c) => c.columns(['app_id', 'topic']).doUpdateSet({ merge_ms: mergeMs }))
    ).execute();
  }

  async listTopicSettings(): Promise<TopicSettings[]> {
    const rows = await this.db
      .selectFrom('topic_settings')
      .selectAll()
      .orderBy('app_id')
      .orderBy('topic')
      .execute();
    return rows.map((r) => ({ appId: r.app_id, topic: r.topic, mergeMs: Number(r.merge_ms) }));
  }
}

/**
 * A group batch's delivery rows, with the seqs its counters ended at, and the recipients to
 * route: ttl 0 members without a live connection are expired at once (and not routed), as
 * for user pushes.
 */
export function groupDeliveries(
  job: GroupPushJob,
  users: readonly string[],
  ends: ReadonlyMap<string, number>,
  onlineUsers: ReadonlySet<string> | null,
): { rows: Insertable<DeliveriesTable>[]; delivered: Recipient[] } {
  const appId = job.message.appId;
  const live = job.message.ttl === 0 ? (onlineUsers ?? new Set<string>()) : null;
  const recipients: Recipient[] = users.map((user) => ({
    user,
    seq: ends.get(counterKey(appId, user))!,
    devices: null,
  }));
  const rows = recipients.map((r) => ({
    app_id: appId,
    user_id: r.user,
    seq: r.seq,
    message_pk: job.messagePk,
    devices: null,
    status: live && !live.has(r.user) ? STATUS_CODE.expired : STATUS_CODE.pending,
    retries: 0,
    sent_at: null,
    acked_at: null,
    next_retry_at: null,
    expires_at: live ? null : job.message.expiresAt,
    live_only: live ? 1 : 0,
  }));
  return { rows, delivered: live ? recipients.filter((r) => live.has(r.user)) : recipients };
}

/** After a batch committed: the job's cursor (unless written ahead of the walk) and count. */
export function advanceJob(job: GroupPushJob, written: number, advanceTo: string | null): void {
  if (advanceTo !== null) job.afterUser = advanceTo;
  job.written += written;
}
