import { randomBytes } from 'node:crypto';
import type { ExpressionBuilder, Kysely, Transaction } from 'kysely';
import { STATUS_CODE } from '../../domain/message.js';
import type {
  ClaimedHandoffs,
  HandoffCounts,
  HandoffQuery,
  HandoffUpdate,
  RevokeResult,
  WebhookRecord,
} from '../store.js';
import type { Database } from './schema.js';

/**
 * The SQL of the message lifecycle (recall, hand-off webhook and its schedule), shared by
 * both drivers: every statement here is plain enough for SQLite and MySQL alike.
 */

type Db = Kysely<Database> | Transaction<Database>;

const { pending: PENDING, sent: SENT, failed: FAILED, revoked: REVOKED } = STATUS_CODE;
const UNACKED = [PENDING, SENT, FAILED];

/** Hand-off row states (`webhook_handoffs.status`), as the status API names them. */
export const HANDOFF_STATUS = { pending: 0, delivered: 1, failed: 2 } as const;
export const HANDOFF_NAME = ['pending', 'delivered', 'failed'] as const;

/**
 * Recalls a message inside `trx`. Only the first call changes anything: it marks the message,
 * moves every recipient that has not acked (and whose ttl has not passed) to `revoked`, and
 * drops hand-offs not yet made. Later calls report `first: false` and 0.
 */
export async function revokeMessage(
  trx: Transaction<Database>,
  appId: string,
  messageId: string,
  now: number,
): Promise<RevokeResult | undefined> {
  const m = await trx
    .selectFrom('messages')
    .select(['pk', 'msg_id', 'topic', 'topic_offset', 'revoked_at'])
    .where('app_id', '=', appId)
    .where('msg_id', '=', messageId)
    .executeTakeFirst();
  if (!m) return undefined;
  const base = {
    id: m.msg_id,
    topic: m.topic,
    offset: m.topic_offset === null ? null : Number(m.topic_offset),
  };
  if (m.revoked_at !== null) return { ...base, revoked: 0, first: false, recipients: [] };
  const marked = await trx
    .updateTable('messages')
    .set({ revoked_at: now })
    .where('pk', '=', m.pk)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  if (Number(marked.numUpdatedRows) === 0) return { ...base, revoked: 0, first: false, recipients: [] };
  const moved = await trx
    .updateTable('deliveries')
    .set({ status: REVOKED, next_retry_at: null })
    .where('message_pk', '=', m.pk)
    .where('status', 'in', UNACKED)
    .where((eb) => eb.or([eb('live_only', '=', 1), eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .executeTakeFirst();
  await trx
    .deleteFrom('webhook_handoffs')
    .where('message_pk', '=', m.pk)
    .where('status', '=', HANDOFF_STATUS.pending)
    .execute();
  const recipients = await trx
    .selectFrom('deliveries')
    .select(['user_id', 'seq'])
    .where('message_pk', '=', m.pk)
    .execute();
  return {
    ...base,
    revoked: Number(moved.numUpdatedRows),
    first: true,
    recipients: recipients.map((r) => ({ user: r.user_id, seq: Number(r.seq) })),
  };
}

export async function getWebhook(db: Db, appId: string): Promise<WebhookRecord | undefined> {
  const row = await db.selectFrom('webhooks').selectAll().where('app_id', '=', appId).executeTakeFirst();
  return row && toWebhook(row);
}

export async function listWebhooks(db: Db): Promise<WebhookRecord[]> {
  return (await db.selectFrom('webhooks').selectAll().orderBy('app_id').execute()).map(toWebhook);
}

export async function saveWebhook(trx: Transaction<Database>, w: WebhookRecord): Promise<void> {
  const found = await trx
    .selectFrom('webhooks')
    .select('app_id')
    .where('app_id', '=', w.appId)
    .executeTakeFirst();
  const values = { url: w.url, after_ms: w.afterMs, secret: w.secret, updated_at: w.updatedAt };
  if (found) await trx.updateTable('webhooks').set(values).where('app_id', '=', w.appId).execute();
  else
    await trx
      .insertInto('webhooks')
      .values({ app_id: w.appId, created_at: w.createdAt, ...values })
      .execute();
}

/** Removes the webhook and the hand-offs not yet made (nobody to send them to). */
export async function deleteWebhook(trx: Transaction<Database>, appId: string): Promise<boolean> {
  const r = await trx.deleteFrom('webhooks').where('app_id', '=', appId).executeTakeFirst();
  await trx
    .deleteFrom('webhook_handoffs')
    .where('app_id', '=', appId)
    .where('status', '=', HANDOFF_STATUS.pending)
    .execute();
  return Number(r.numDeletedRows) > 0;
}

/**
 * Claims due hand-offs, all of a user's due rows together (one batch per user). A claim is an
 * UPDATE that only takes rows nobody holds or whose holder's lease ran out, tagged with a token
 * unique to this claim; the rows read back by that token are this caller's alone, on any
 * number of nodes and on either engine.
 */
export async function claimHandoffs(db: Kysely<Database>, q: HandoffQuery): Promise<ClaimedHandoffs[]> {
  const free = (eb: ExpressionBuilder<Database, 'webhook_handoffs'>) =>
    eb.or([eb('claim_until', 'is', null), eb('claim_until', '<', q.now)]);
  const due = await db
    .selectFrom('webhook_handoffs')
    .select(['app_id', 'user_id'])
    .where('status', '=', HANDOFF_STATUS.pending)
    .where('due_at', '<=', q.now)
    .where(free)
    .orderBy('due_at')
    .limit(q.limit * 4)
    .execute();
  const users = new Map<string, { appId: string; userId: string }>();
  for (const r of due) {
    if (users.size >= q.limit) break;
    users.set(`${r.app_id}\0${r.user_id}`, { appId: r.app_id, userId: r.user_id });
  }
  const claimed: ClaimedHandoffs[] = [];
  let n = 0;
  for (const { appId, userId } of users.values()) {
    // Unique per claim even for two polls of one node in the same millisecond.
    const token = `${q.node}/${q.now.toString(36)}/${(n++).toString(36)}/${randomBytes(6).toString('base64url')}`;
    const r = await db
      .updateTable('webhook_handoffs')
      .set({ claimed_by: token, claim_until: q.now + q.leaseMs })
      .where('app_id', '=', appId)
      .where('user_id', '=', userId)
      .where('status', '=', HANDOFF_STATUS.pending)
      .where('due_at', '<=', q.now)
      .where(free)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) continue; // another node was quicker
    const rows = await db
      .selectFrom('webhook_handoffs as h')
      .innerJoin('deliveries as d', (j) =>
        j
          .onRef('d.app_id', '=', 'h.app_id')
          .onRef('d.user_id', '=', 'h.user_id')
          .onRef('d.seq', '=', 'h.seq'),
      )
      .innerJoin('messages as m', 'm.pk', 'h.message_pk')
      .select([
        'h.seq',
        'h.attempts',
        'h.give_up_at',
        'd.status',
        'd.expires_at as d_expires_at',
        'm.msg_id',
        'm.type',
        'm.timestamp',
        'm.data',
      ])
      .where('h.app_id', '=', appId)
      .where('h.user_id', '=', userId)
      .where('h.claimed_by', '=', token)
      .orderBy('h.seq')
      .execute();
    claimed.push({
      appId,
      userId,
      token,
      rows: rows.map((x) => ({
        seq: Number(x.seq),
        attempts: Number(x.attempts),
        giveUpAt: Number(x.give_up_at),
        deliveryStatus: Number(x.status),
        expiresAt: x.d_expires_at === null ? null : Number(x.d_expires_at),
        id: x.msg_id,
        type: x.type,
        timestamp: Number(x.timestamp),
        dataJson: x.data,
      })),
    });
  }
  return claimed;
}

/** Applies a sender's outcome to rows it still holds (a lapsed claim taken over elsewhere is left alone). */
export async function finishHandoffs(
  trx: Transaction<Database>,
  token: string,
  updates: readonly HandoffUpdate[],
): Promise<void> {
  for (const u of updates) {
    const row = trx
      .updateTable('webhook_handoffs')
      .where('app_id', '=', u.appId)
      .where('user_id', '=', u.userId)
      .where('seq', '=', u.seq)
      .where('claimed_by', '=', token);
    if (u.kind === 'drop') {
      await trx
        .deleteFrom('webhook_handoffs')
        .where('app_id', '=', u.appId)
        .where('user_id', '=', u.userId)
        .where('seq', '=', u.seq)
        .where('claimed_by', '=', token)
        .execute();
    } else if (u.kind === 'retry') {
      await row
        .set((eb) => ({
          attempts: eb('attempts', '+', 1),
          due_at: u.dueAt,
          claimed_by: null,
          claim_until: null,
        }))
        .execute();
    } else {
      await row
        .set((eb) => ({
          attempts: eb('attempts', '+', 1),
          status: u.kind === 'delivered' ? HANDOFF_STATUS.delivered : HANDOFF_STATUS.failed,
          claimed_by: null,
          claim_until: null,
        }))
        .execute();
    }
  }
}

export async function handoffCounts(db: Db, appId: string | null): Promise<HandoffCounts> {
  let q = db
    .selectFrom('webhook_handoffs')
    .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
    .groupBy('status');
  if (appId !== null) q = q.where('app_id', '=', appId);
  const counts: HandoffCounts = { pending: 0, delivered: 0, failed: 0 };
  for (const r of await q.execute()) {
    const name = HANDOFF_NAME[r.status];
    if (name) counts[name] = Number(r.n);
  }
  return counts;
}

/** A row of the schedule, as persist-plan.ts builds it. */
export interface HandoffRow {
  app_id: string;
  user_id: string;
  seq: number;
  message_pk: number;
  due_at: number;
  give_up_at: number;
}

function toWebhook(row: Database['webhooks']): WebhookRecord {
  return {
    appId: row.app_id,
    url: row.url,
    afterMs: Number(row.after_ms),
    secret: row.secret,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}
