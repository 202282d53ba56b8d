import {
  type ExpressionBuilder,
  type Kysely,
  Migrator,
  type Selectable,
  sql,
  type Transaction,
} from 'kysely';
import {
  type DeliveryStatus,
  STATUS_CODE,
  STATUS_NAME,
  type StoredMessage,
  visibleStatus,
} from '../../domain/message.js';
import { getOrCreate } from '../../util/maps.js';
import type { GroupStore } from '../group-store.js';
import type {
  AppRecord,
  BacklogQuery,
  ClaimedHandoffs,
  ConnectionChange,
  ConnectionRecord,
  DeliveryUpdate,
  DueRetry,
  HandoffCounts,
  HandoffQuery,
  HandoffUpdate,
  HistoryQuery,
  HistoryRow,
  MessageStatus,
  NodeStatsRow,
  PersistItem,
  PersistOutcome,
  RecentMessage,
  RecentMessagesQuery,
  RetryScope,
  RetryUpdate,
  RevokeResult,
  Store,
  SubscriptionChange,
  TopicAudienceQuery,
  TopicHistoryQuery,
  UserMessage,
  WebhookRecord,
} from '../store.js';
import {
  forgetNodeSubscriptions,
  readNodeStats,
  recordNodeStats,
  recordSubscriptions,
  remoteTopicAudience,
} from './cluster-sql.js';
import * as lifecycle from './lifecycle-sql.js';
import { HANDOFF_NAME } from './lifecycle-sql.js';
import { migrationProvider, type SqlDialect } from './migrations/index.js';
import { type PersistOps, persistBatch } from './persist-plan.js';
import type { Database, DeliveriesTable, MessagesTable } from './schema.js';
import { type RunTransaction, SqlGroupStore } from './sql-group-store.js';

const {
  pending: PENDING,
  sent: SENT,
  acked: ACKED,
  failed: FAILED,
  expired: EXPIRED,
  revoked: REVOKED,
} = STATUS_CODE;
const UNACKED = [PENDING, SENT, FAILED];
/** Statuses whose messages clients never see again (history, `since` replays, unread counts). */
const GONE = [EXPIRED, REVOKED];

type Tx = Transaction<Database>;
export type MessageRow = Pick<
  MessagesTable,
  | 'app_id'
  | 'msg_id'
  | 'type'
  | 'timestamp'
  | 'ttl'
  | 'expires_at'
  | 'data'
  | 'platforms'
  | 'topic'
  | 'topic_offset'
>;

/** The message columns every read that builds frames needs. */
export const MESSAGE_COLUMNS = [
  'm.app_id',
  'm.msg_id',
  'm.type',
  'm.timestamp',
  'm.ttl',
  'm.expires_at',
  'm.data',
  'm.platforms',
  'm.topic',
  'm.topic_offset',
] as const;

/**
 * Everything both SQL drivers share, written once over Kysely. A driver supplies only what
 * its engine does differently: allocating seqs/offsets atomically and bounded updates.
 */
export abstract class SqlStore implements Store {
  abstract readonly dialect: SqlDialect;

  constructor(protected readonly db: Kysely<Database>) {}

  private groupStore: GroupStore | null = null;

  /** Groups and room settings (src/store/sql-group-store.ts), in this driver's transactions. */
  get groups(): GroupStore {
    this.groupStore ??= this.createGroupStore((fn) =>
      this.inTransaction((trx) => fn(trx, this.persistOps(trx))),
    );
    return this.groupStore;
  }

  /** The driver's GroupStore: the shared one, or one with the driver's own hot writes. */
  protected createGroupStore(transaction: RunTransaction): GroupStore {
    return new SqlGroupStore(this.db, this.dialect, transaction);
  }

  /** The persist primitives (persist-plan.ts) of this driver, inside `trx`. */
  protected abstract persistOps(trx: Tx): PersistOps;

  abstract expireDue(now: number, limit: number): Promise<number>;

  /**
   * Runs `fn` in a transaction. Drivers override it to choose the isolation level and to
   * retry transactions the engine aborted (deadlocks, a concurrent insert of the same key).
   */
  protected inTransaction<T>(fn: (trx: Tx) => Promise<T>): Promise<T> {
    return this.db.transaction().execute(fn);
  }

  async migrate(): Promise<void> {
    const migrator = new Migrator({ db: this.db, provider: migrationProvider(this.dialect) });
    const { error } = await migrator.migrateToLatest();
    if (error) throw error;
  }

  async getApp(appId: string): Promise<AppRecord | undefined> {
    const row = await this.db.selectFrom('apps').selectAll().where('app_id', '=', appId).executeTakeFirst();
    return row && toAppRecord(row);
  }

  async listApps(): Promise<AppRecord[]> {
    const rows = await this.db.selectFrom('apps').selectAll().orderBy('app_id').execute();
    return rows.map(toAppRecord);
  }

  async saveApp(app: AppRecord): Promise<void> {
    const values = {
      secret_hash: app.secretHash,
      secret_salt: app.secretSalt,
      jwt_alg: app.jwtAlg,
      jwt_key: app.jwtKey,
      updated_at: app.updatedAt,
    };
    await this.inTransaction(async (trx) => {
      const found = await trx
        .selectFrom('apps')
        .select('app_id')
        .where('app_id', '=', app.appId)
        .executeTakeFirst();
      if (found) await trx.updateTable('apps').set(values).where('app_id', '=', app.appId).execute();
      else
        await trx
          .insertInto('apps')
          .values({ app_id: app.appId, created_at: app.createdAt, ...values })
          .execute();
    });
  }

  persistPushes(items: readonly PersistItem[]): Promise<PersistOutcome[]> {
    return this.inTransaction((trx) => persistBatch(this.persistOps(trx), items));
  }

  async readUserMessages(q: BacklogQuery): Promise<UserMessage[]> {
    let query = this.db
      .selectFrom('deliveries as d')
      .innerJoin('messages as m', 'm.pk', 'd.message_pk')
      .select(['d.seq', 'd.devices', ...MESSAGE_COLUMNS])
      .where('d.app_id', '=', q.appId)
      .where('d.user_id', '=', q.userId)
      .where('d.seq', '>', q.afterSeq)
      .where('d.live_only', '=', 0)
      .where((eb) => eb.or([eb('d.expires_at', 'is', null), eb('d.expires_at', '>', q.now)]));
    query = q.unackedOnly ? query.where('d.status', 'in', UNACKED) : query.where('d.status', 'not in', GONE);
    const rows = await query.orderBy('d.seq').limit(q.limit).execute();
    return rows.map((r) => ({
      seq: Number(r.seq),
      devices: r.devices === null ? null : (JSON.parse(r.devices) as string[]),
      message: toStoredMessage(r),
    }));
  }

  async readUserHistory(q: HistoryQuery): Promise<{ rows: HistoryRow[]; hasMore: boolean }> {
    let query = this.db
      .selectFrom('deliveries as d')
      .innerJoin('messages as m', 'm.pk', 'd.message_pk')
      .select(['d.seq', 'd.status', 'd.expires_at as d_expires_at', 'd.live_only', ...MESSAGE_COLUMNS])
      .where('d.app_id', '=', q.appId)
      .where('d.user_id', '=', q.userId)
      .where('d.status', '!=', REVOKED);
    if (q.afterSeq !== null) query = query.where('d.seq', '>', q.afterSeq);
    if (q.beforeSeq !== null) query = query.where('d.seq', '<', q.beforeSeq);
    if (q.from !== null) query = query.where('m.timestamp', '>=', q.from);
    if (q.to !== null) query = query.where('m.timestamp', '<=', q.to);
    if (!q.includeExpired) {
      query = query
        .where('d.status', '!=', EXPIRED)
        .where((eb) => eb.or([eb('d.expires_at', 'is', null), eb('d.expires_at', '>', q.now)]));
    }
    const rows = await query
      .orderBy('d.seq', q.forward ? 'asc' : 'desc')
      .limit(q.limit + 1)
      .execute();
    const hasMore = rows.length > q.limit;
    const page = rows.slice(0, q.limit);
    if (!q.forward) page.reverse();
    return {
      hasMore,
      rows: page.map((r) => {
        const message = toStoredMessage(r);
        const expiresAt = r.d_expires_at === null ? null : Number(r.d_expires_at);
        const status = STATUS_NAME[r.status] as DeliveryStatus;
        return {
          seq: Number(r.seq),
          message,
          status: visibleStatus(status, expiresAt, r.live_only ? 0 : message.ttl, q.now),
        };
      }),
    };
  }

  async readTopicHistory(q: TopicHistoryQuery): Promise<{ rows: StoredMessage[]; hasMore: boolean }> {
    // Retention holds exactly for readers; the maintenance loop deletes the rows later.
    const last = await this.topicOffset(q.appId, q.topic);
    let query = this.db
      .selectFrom('messages as m')
      .select(MESSAGE_COLUMNS)
      .where('m.app_id', '=', q.appId)
      .where('m.topic', '=', q.topic)
      .where('m.topic_offset', '>', last - q.keepCount)
      .where('m.timestamp', '>=', q.keepSince)
      .where('m.revoked_at', 'is', null)
      .where((eb) => eb.or([eb('m.expires_at', 'is', null), eb('m.expires_at', '>', q.now)]));
    if (q.afterOffset !== null) query = query.where('m.topic_offset', '>', q.afterOffset);
    if (q.beforeOffset !== null) query = query.where('m.topic_offset', '<', q.beforeOffset);
    const rows = await query
      .orderBy('m.topic_offset', q.forward ? 'asc' : 'desc')
      .limit(q.limit + 1)
      .execute();
    const page = rows.slice(0, q.limit);
    if (!q.forward) page.reverse();
    return { rows: page.map(toStoredMessage), hasMore: rows.length > q.limit };
  }

  async topicOffset(appId: string, topic: string): Promise<number> {
    const row = await this.db
      .selectFrom('topic_state')
      .select('last_offset')
      .where('app_id', '=', appId)
      .where('topic', '=', topic)
      .executeTakeFirst();
    return row ? Number(row.last_offset) : 0;
  }

  async pruneTopics(maxCount: number, cutoff: number): Promise<number> {
    const byAge = await this.db
      .deleteFrom('messages')
      .where('topic', 'is not', null)
      .where('timestamp', '<', cutoff)
      .executeTakeFirst();
    const byCount = await this.db
      .deleteFrom('messages')
      .where('topic', 'is not', null)
      .where(({ eb, selectFrom, ref }) =>
        eb(
          'topic_offset',
          '<=',
          selectFrom('topic_state as ts')
            .select(sql<number>`ts.last_offset - ${maxCount}`.as('keep_after'))
            .whereRef('ts.app_id', '=', ref('messages.app_id'))
            .whereRef('ts.topic', '=', ref('messages.topic')),
        ),
      )
      .executeTakeFirst();
    return Number(byAge.numDeletedRows) + Number(byCount.numDeletedRows);
  }

  async lastSeq(appId: string, userId: string): Promise<number> {
    const row = await this.db
      .selectFrom('user_state')
      .select('last_seq')
      .where('app_id', '=', appId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return row ? Number(row.last_seq) : 0;
  }

  applyDeliveryUpdates(updates: readonly DeliveryUpdate[]): Promise<number[]> {
    return this.inTransaction(async (trx) => {
      const counts: number[] = [];
      for (const u of updates) counts.push(await this.applyUpdate(trx, u));
      return counts;
    });
  }

  private async applyUpdate(trx: Tx, u: DeliveryUpdate): Promise<number> {
    if (u.kind === 'read') return this.moveReadCursor(trx, u.appId, u.userId, u.seq);
    const mine = trx.updateTable('deliveries').where('app_id', '=', u.appId).where('user_id', '=', u.userId);
    if (u.kind === 'sent') {
      let n = 0;
      for (const seqs of chunks(u.seqs, 500)) {
        const r = await mine
          .set({ status: SENT, sent_at: u.at })
          .where('seq', 'in', seqs)
          .where('status', '=', PENDING)
          .executeTakeFirst();
        n += Number(r.numUpdatedRows);
        await mine
          .set({ next_retry_at: u.retryAt })
          .where('seq', 'in', seqs)
          .where('status', '=', SENT)
          .where('next_retry_at', 'is', null)
          .where('live_only', '=', 0)
          .execute();
      }
      return n;
    }
    // Acks: only unacked, unexpired deliveries move; device-targeted ones only for their devices.
    const ackable = trx
      .selectFrom('deliveries as d')
      .select(['d.seq', 'd.devices'])
      .where('d.app_id', '=', u.appId)
      .where('d.user_id', '=', u.userId)
      .where('d.status', 'in', UNACKED)
      .where((eb) => eb.or([eb('d.expires_at', 'is', null), eb('d.expires_at', '>', u.at)]));
    const candidates =
      u.kind === 'ack_upto'
        ? await ackable.where('d.seq', '<=', u.seq).execute()
        : await ackable
            .innerJoin('messages as m', 'm.pk', 'd.message_pk')
            .where('m.msg_id', 'in', u.ids as string[])
            .execute();
    const seqs = candidates
      .filter(
        (c) =>
          c.devices === null || u.device === null || (JSON.parse(c.devices) as string[]).includes(u.device),
      )
      .map((c) => Number(c.seq));
    let n = 0;
    for (const chunk of chunks(seqs, 500)) {
      const r = await mine
        .set({ status: ACKED, acked_at: u.at, next_retry_at: null })
        .where('seq', 'in', chunk)
        .where('status', 'in', UNACKED)
        .executeTakeFirst();
      n += Number(r.numUpdatedRows);
    }
    return n;
  }

  /** The read cursor never moves backwards and is clamped to the newest seq. */
  private async moveReadCursor(trx: Tx, appId: string, userId: string, seq: number): Promise<number> {
    const clamped = sql<number>`case when ${seq} < last_seq then ${seq} else last_seq end`;
    await trx
      .updateTable('user_state')
      .set({
        last_read_seq: sql`case when ${clamped} > last_read_seq then ${clamped} else last_read_seq end`,
      })
      .where('app_id', '=', appId)
      .where('user_id', '=', userId)
      .execute();
    const row = await trx
      .selectFrom('user_state')
      .select('last_read_seq')
      .where('app_id', '=', appId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return row ? Number(row.last_read_seq) : 0;
  }

  async readUnread(
    appId: string,
    userId: string,
    now: number,
  ): Promise<{ count: number; last_read_seq: number }> {
    const state = await this.db
      .selectFrom('user_state')
      .select('last_read_seq')
      .where('app_id', '=', appId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    const lastRead = state ? Number(state.last_read_seq) : 0;
    const row = await this.db
      .selectFrom('deliveries')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('app_id', '=', appId)
      .where('user_id', '=', userId)
      .where('seq', '>', lastRead)
      .where('status', 'not in', GONE)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .executeTakeFirst();
    return { count: Number(row?.n ?? 0), last_read_seq: lastRead };
  }

  async getMessageStatus(appId: string, messageId: string, now: number): Promise<MessageStatus | undefined> {
    const m = await this.db
      .selectFrom('messages')
      .selectAll()
      .where('app_id', '=', appId)
      .where('msg_id', '=', messageId)
      .executeTakeFirst();
    if (!m) return undefined;
    return this.withRecipients(m, null, now);
  }

  async listRecentMessages(q: RecentMessagesQuery): Promise<RecentMessage[]> {
    if (q.limit <= 0) return [];
    let query = this.db.selectFrom('messages').selectAll();
    if (q.appId !== null) query = query.where('app_id', '=', q.appId);
    const messages = await query.orderBy('pk', 'desc').limit(q.limit).execute();
    if (messages.length === 0) return [];
    const counts = await this.db
      .selectFrom('deliveries')
      .select(['message_pk', 'status', (eb) => eb.fn.countAll<number>().as('n')])
      .where(
        'message_pk',
        'in',
        messages.map((m) => m.pk),
      )
      .groupBy(['message_pk', 'status'])
      .execute();
    const byMessage = new Map<number, Record<DeliveryStatus, number>>();
    for (const c of counts) {
      const entry = getOrCreate(byMessage, Number(c.message_pk), () => ({
        pending: 0,
        sent: 0,
        acked: 0,
        failed: 0,
        expired: 0,
        revoked: 0,
      }));
      entry[STATUS_NAME[c.status] as DeliveryStatus] += Number(c.n);
    }
    return Promise.all(
      messages.map(async (m) => {
        const status_counts = byMessage.get(Number(m.pk)) ?? {
          pending: 0,
          sent: 0,
          acked: 0,
          failed: 0,
          expired: 0,
          revoked: 0,
        };
        const recipients_total = Object.values(status_counts).reduce((a, b) => a + b, 0);
        const status = await this.withRecipients(m, q.maxRecipients, q.now);
        return { app: m.app_id, ...status, recipients_total, status_counts };
      }),
    );
  }

  /** A message row with its recipients' statuses (all, or the first `limit` by user id). */
  private async withRecipients(
    m: Selectable<MessagesTable>,
    limit: number | null,
    now: number,
  ): Promise<MessageStatus> {
    let query = this.db
      .selectFrom('deliveries as d')
      .leftJoin('webhook_handoffs as h', (j) =>
        j
          .onRef('h.app_id', '=', 'd.app_id')
          .onRef('h.user_id', '=', 'd.user_id')
          .onRef('h.seq', '=', 'd.seq'),
      )
      .select([
        'd.user_id',
        'd.seq',
        'd.status',
        'd.retries',
        'd.sent_at',
        'd.acked_at',
        'd.expires_at',
        'd.live_only',
        'h.status as webhook',
      ])
      .where('d.message_pk', '=', m.pk)
      .orderBy('d.user_id');
    if (limit !== null) query = query.limit(limit);
    const rows = await query.execute();
    const ttl = m.ttl === null ? null : Number(m.ttl);
    return {
      id: m.msg_id,
      type: m.type,
      timestamp: Number(m.timestamp),
      ttl,
      data: JSON.parse(m.data),
      to: JSON.parse(m.target),
      platforms: m.platforms === null ? null : JSON.parse(m.platforms),
      ...(m.topic !== null ? { topic: m.topic, offset: Number(m.topic_offset) } : {}),
      ...(m.revoked_at !== null ? { revoked_at: Number(m.revoked_at) } : {}),
      recipients: rows.map((r) => ({
        user: r.user_id,
        seq: Number(r.seq),
        status: visibleStatus(
          STATUS_NAME[r.status] as DeliveryStatus,
          r.expires_at === null ? null : Number(r.expires_at),
          r.live_only ? 0 : ttl,
          now,
        ),
        retries: r.retries,
        sent_at: r.sent_at === null ? null : Number(r.sent_at),
        acked_at: r.acked_at === null ? null : Number(r.acked_at),
        ...(r.webhook === null ? {} : { webhook: HANDOFF_NAME[r.webhook]! }),
      })),
    };
  }

  async dueRetries(now: number, limit: number, scope?: RetryScope): Promise<DueRetry[]> {
    let query = this.db
      .selectFrom('deliveries as d')
      .innerJoin('messages as m', 'm.pk', 'd.message_pk')
      .select(['d.user_id', 'd.seq', 'd.retries', 'd.devices', ...MESSAGE_COLUMNS])
      .where('d.status', '=', SENT)
      .where('d.next_retry_at', '<=', now)
      .where((eb) => eb.or([eb('d.expires_at', 'is', null), eb('d.expires_at', '>', now)]));
    if (scope) {
      // Correlated with the delivery row: is its user online on this node / on another live one?
      const onlineOn = (eb: ExpressionBuilder<Database & { d: DeliveriesTable }, 'd'>, here: boolean) =>
        eb
          .selectFrom('connections as c')
          .innerJoin('nodes as n', 'n.node', 'c.node')
          .select(sql`1`.as('one'))
          .whereRef('c.app_id', '=', 'd.app_id')
          .whereRef('c.user_id', '=', 'd.user_id')
          .where('c.status', '=', 'online')
          .where('c.node', here ? '=' : '<>', scope.node)
          .where('n.last_heartbeat', '>=', scope.freshSince);
      query = query
        .select((eb) => eb.exists(onlineOn(eb, false)).as('elsewhere'))
        .where((eb) => eb.or([eb.exists(onlineOn(eb, true)), eb.not(eb.exists(onlineOn(eb, false)))]));
    }
    const rows = await query.orderBy('d.next_retry_at').limit(limit).execute();
    return rows.map((r) => ({
      userId: r.user_id,
      seq: Number(r.seq),
      retries: Number(r.retries),
      devices: r.devices === null ? null : (JSON.parse(r.devices) as string[]),
      message: toStoredMessage(r),
      ...(scope ? { onlineElsewhere: Boolean(Number((r as { elsewhere?: unknown }).elsewhere)) } : {}),
    }));
  }

  updateRetries(updates: readonly RetryUpdate[]): Promise<void> {
    return this.inTransaction(async (trx) => {
      for (const u of updates) {
        let row = trx
          .updateTable('deliveries')
          .where('app_id', '=', u.appId)
          .where('user_id', '=', u.userId)
          .where('seq', '=', u.seq)
          .where('status', '=', SENT);
        if (u.dueBy !== undefined) row = row.where('next_retry_at', '<=', u.dueBy);
        if (u.kind === 'resent') {
          await row.set((eb) => ({ retries: eb('retries', '+', 1), next_retry_at: u.nextRetryAt })).execute();
        } else if (u.kind === 'failed') {
          await row.set({ status: FAILED, next_retry_at: null }).execute();
        } else {
          await row.set({ next_retry_at: null }).execute();
        }
      }
    });
  }

  recordConnections(changes: readonly ConnectionChange[]): Promise<void> {
    return this.inTransaction(async (trx) => {
      const opens = changes.filter((c) => c.kind === 'open');
      for (const chunk of chunks(opens, 200)) {
        await trx
          .insertInto('connections')
          .values(
            chunk.map((c) => ({
              connection_id: c.connectionId,
              app_id: c.appId,
              user_id: c.userId,
              device: c.device,
              platform: c.platform,
              node: c.node,
              status: 'online',
              connected_at: c.at,
              last_heartbeat: c.at,
              disconnected_at: null,
            })),
          )
          .execute();
      }
      // Closes in one statement per chunk (each row its own time): a batch is two statements, not one per close.
      const closes = changes.filter((c) => c.kind === 'close');
      for (const chunk of chunks(closes, 500)) {
        const at = sql<number>`case connection_id ${sql.join(
          chunk.map((c) => sql`when ${c.connectionId} then ${c.at}`),
          sql` `,
        )} end`;
        await trx
          .updateTable('connections')
          .set({ status: 'offline', disconnected_at: at })
          .where(
            'connection_id',
            'in',
            chunk.map((c) => c.connectionId),
          )
          .execute();
      }
    });
  }

  async touchNode(node: string, now: number): Promise<void> {
    const row = this.db.insertInto('nodes').values({ node, last_heartbeat: now });
    await (this.dialect === 'mysql'
      ? row.onDuplicateKeyUpdate({ last_heartbeat: now })
      : row.onConflict((c) => c.column('node').doUpdateSet({ last_heartbeat: now }))
    ).execute();
  }

  async revokeTokens(appId: string, userId: string, beforeMs: number): Promise<void> {
    const row = this.db
      .insertInto('revocations')
      .values({ app_id: appId, user_id: userId, before_ms: beforeMs });
    await (this.dialect === 'mysql'
      ? row.onDuplicateKeyUpdate({ before_ms: sql`greatest(before_ms, values(before_ms))` })
      : row.onConflict((c) =>
          c
            .columns(['app_id', 'user_id'])
            .doUpdateSet({ before_ms: sql`max(before_ms, excluded.before_ms)` }),
        )
    ).execute();
  }

  async listRevocations(): Promise<{ appId: string; userId: string; beforeMs: number }[]> {
    const rows = await this.db.selectFrom('revocations').selectAll().execute();
    return rows.map((r) => ({ appId: r.app_id, userId: r.user_id, beforeMs: Number(r.before_ms) }));
  }

  async markNodeOffline(node: string, now: number): Promise<number> {
    const r = await this.db
      .updateTable('connections')
      .set({ status: 'offline', disconnected_at: now })
      .where('node', '=', node)
      .where('status', '=', 'online')
      .executeTakeFirst();
    await this.db.deleteFrom('nodes').where('node', '=', node).execute();
    await forgetNodeSubscriptions(this.db, [node]);
    return Number(r.numUpdatedRows);
  }

  /**
   * No transaction: each step can be repeated, so a sweep cut short is finished by the next
   * one; a node whose heartbeat arrives meanwhile keeps its row (its connection rows stay
   * offline, as they did when each row carried its own heartbeat).
   */
  async markStaleOffline(before: number, now: number, exceptNode: string): Promise<number> {
    const stale = await this.db
      .selectFrom('nodes')
      .select('node')
      .where('last_heartbeat', '<', before)
      .where('node', '<>', exceptNode)
      .execute();
    if (stale.length === 0) return 0;
    const nodes = stale.map((r) => r.node);
    const r = await this.db
      .updateTable('connections')
      .set({ status: 'offline', disconnected_at: now })
      .where('node', 'in', nodes)
      .where('status', '=', 'online')
      .executeTakeFirst();
    await this.db
      .deleteFrom('nodes')
      .where('node', 'in', nodes)
      .where('last_heartbeat', '<', before)
      .execute();
    await forgetNodeSubscriptions(this.db, nodes);
    return Number(r.numUpdatedRows);
  }

  async remoteConnections(
    appId: string,
    userIds: readonly string[],
    exceptNode: string,
    freshSince: number,
  ): Promise<ConnectionRecord[]> {
    if (userIds.length === 0) return [];
    const rows = await this.db
      .selectFrom('connections as c')
      .innerJoin('nodes as n', 'n.node', 'c.node')
      .select([
        'c.user_id',
        'c.connection_id',
        'c.device',
        'c.platform',
        'c.node',
        'c.connected_at',
        'n.last_heartbeat',
      ])
      .where('c.app_id', '=', appId)
      .where('c.user_id', 'in', [...userIds])
      .where('c.status', '=', 'online')
      .where('c.node', '<>', exceptNode)
      .where('n.last_heartbeat', '>=', freshSince)
      .orderBy('c.connected_at')
      .execute();
    return rows.map((r) => ({
      ...r,
      connected_at: Number(r.connected_at),
      last_heartbeat: Number(r.last_heartbeat),
    }));
  }

  recordSubscriptions(changes: readonly SubscriptionChange[]): Promise<void> {
    return recordSubscriptions(this.db, this.dialect, changes);
  }

  remoteTopicAudience(query: TopicAudienceQuery): Promise<{ connections: number; users: string[] }> {
    return remoteTopicAudience(this.db, query);
  }

  recordNodeStats(node: string, at: number, stats: string): Promise<void> {
    return recordNodeStats(this.db, this.dialect, node, at, stats);
  }

  readNodeStats(exceptNode: string, freshSince: number): Promise<NodeStatsRow[]> {
    return readNodeStats(this.db, exceptNode, freshSince);
  }

  async pruneBefore(cutoff: number, limit: number): Promise<number> {
    return this.inTransaction(async (trx) => {
      const old = await trx
        .selectFrom('messages')
        .select('pk')
        .where('timestamp', '<', cutoff)
        .orderBy('timestamp')
        .limit(limit)
        .execute();
      if (old.length === 0) return 0;
      const pks = old.map((r) => r.pk);
      await trx.deleteFrom('deliveries').where('message_pk', 'in', pks).execute();
      await trx.deleteFrom('webhook_handoffs').where('message_pk', 'in', pks).execute();
      await trx.deleteFrom('messages').where('pk', 'in', pks).execute();
      await trx
        .deleteFrom('connections')
        .where('status', '=', 'offline')
        .where('disconnected_at', '<', cutoff)
        .execute();
      return old.length;
    });
  }

  revokeMessage(appId: string, messageId: string, now: number): Promise<RevokeResult | undefined> {
    return this.inTransaction((trx) => lifecycle.revokeMessage(trx, appId, messageId, now));
  }

  getWebhook(appId: string): Promise<WebhookRecord | undefined> {
    return lifecycle.getWebhook(this.db, appId);
  }

  listWebhooks(): Promise<WebhookRecord[]> {
    return lifecycle.listWebhooks(this.db);
  }

  saveWebhook(webhook: WebhookRecord): Promise<void> {
    return this.inTransaction((trx) => lifecycle.saveWebhook(trx, webhook));
  }

  deleteWebhook(appId: string): Promise<boolean> {
    return this.inTransaction((trx) => lifecycle.deleteWebhook(trx, appId));
  }

  claimHandoffs(query: HandoffQuery): Promise<ClaimedHandoffs[]> {
    return lifecycle.claimHandoffs(this.db, query);
  }

  finishHandoffs(token: string, updates: readonly HandoffUpdate[]): Promise<void> {
    return this.inTransaction((trx) => lifecycle.finishHandoffs(trx, token, updates));
  }

  handoffCounts(appId: string | null): Promise<HandoffCounts> {
    return lifecycle.handoffCounts(this.db, appId);
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

export function* chunks<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

export function toStoredMessage(r: MessageRow): StoredMessage {
  return {
    appId: r.app_id,
    id: r.msg_id,
    type: r.type,
    timestamp: Number(r.timestamp),
    ttl: r.ttl === null ? null : Number(r.ttl),
    expiresAt: r.expires_at === null ? null : Number(r.expires_at),
    dataJson: r.data,
    platforms: r.platforms === null ? null : (JSON.parse(r.platforms) as string[]),
    topic: r.topic,
    offset: r.topic_offset === null ? null : Number(r.topic_offset),
  };
}

function toAppRecord(row: Database['apps']): AppRecord {
  return {
    appId: row.app_id,
    secretHash: row.secret_hash,
    secretSalt: row.secret_salt,
    jwtAlg: row.jwt_alg,
    jwtKey: row.jwt_key,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}
