import type { Insertable } from 'kysely';
import {
  expiresAtOf,
  type Recipient,
  recipientsOf,
  STATUS_CODE,
  type StoredMessage,
  topicOf,
} from '../../domain/message.js';
import { getOrCreate } from '../../util/maps.js';
import type { PersistItem, PersistOutcome } from '../store.js';
import type { HandoffRow } from './lifecycle-sql.js';
import type { DeliveriesTable, MessagesTable } from './schema.js';

/**
 * The rules of one persist batch (idempotency, seq and offset allocation, the rows to write),
 * as pure steps, and `persistBatch`, which runs them over a driver's write primitives inside
 * its transaction. Every driver shares these rules; only the primitives differ.
 */

/** Hand-offs of messages without a ttl are retried at most this long (the longest ttl a push may have). */
const HANDOFF_MAX_MS = 2_419_200_000;

/** Keys (app, user or topic or message id) as one string; \0 cannot occur in ids. */
export const counterKey = (appId: string, name: string): string => `${appId}\0${name}`;

/** What a stored message id already maps to: its body fingerprint and reply's recipient count. */
export interface ExistingMessage {
  readonly msg_id: string;
  readonly fingerprint: string;
  readonly recipients: number;
}

export interface CounterNeed {
  readonly appId: string;
  readonly name: string;
  n: number;
}

type MaybePromise<T> = T | Promise<T>;

/**
 * The writes of one persist batch, all inside one transaction. A driver supplies these with
 * its fastest primitives (prepared statements on SQLite, multi-row statements on MySQL).
 */
export interface PersistOps {
  findExisting(appId: string, ids: readonly string[]): MaybePromise<readonly ExistingMessage[]>;
  /** Adds `n` to each counter row (created at 0) and returns the new values by `counterKey`. */
  incrementCounters(
    table: 'user_state' | 'topic_state',
    rows: CounterNeed[],
  ): MaybePromise<Map<string, number>>;
  /** Inserts message rows and returns their primary keys by `counterKey(app, msg_id)`. */
  insertMessages(rows: Insertable<MessagesTable>[]): MaybePromise<Map<string, number>>;
  insertDeliveries(rows: Insertable<DeliveriesTable>[]): MaybePromise<void>;
  /** The hand-off delay of each of these apps that has a webhook. */
  webhookDelays(appIds: readonly string[]): MaybePromise<Map<string, number>>;
  insertHandoffs(rows: HandoffRow[]): MaybePromise<void>;
}

/** A message about to be stored, with its recipients' seqs; `live` is set for ttl 0 (who is online). */
export interface StoredPlan {
  readonly message: StoredMessage;
  readonly recipients: Recipient[];
  /** Index of its item in the batch. */
  readonly index: number;
  readonly live: ReadonlySet<string> | null;
}

/** The first step's result: outcomes decided so far, and the items to store with their needs. */
export interface BatchPlan {
  readonly outcomes: PersistOutcome[];
  readonly fresh: readonly {
    index: number;
    users: { user: string; devices: string[] | null }[];
    topic: string | null;
  }[];
  readonly seqNeeds: CounterNeed[];
  readonly offsetNeeds: CounterNeed[];
}

/** The client-chosen ids to look up, by app (generated ids are never repeated). */
export function idsToCheck(items: readonly PersistItem[]): Map<string, string[]> {
  const byApp = new Map<string, string[]>();
  for (const item of items) {
    if (item.request.id === null) continue;
    getOrCreate(byApp, item.appId, () => []).push(item.messageId);
  }
  return byApp;
}

/** The recipient count a push's reply carries: its users, or the connections a topic push reached. */
/**
 * A fresh message of a push, both as delivered and as its `messages` row: user, topic and
 * group pushes all store it this way.
 */
export function newMessage(
  item: PersistItem,
  id: string,
  topic: string | null,
  offset: number | null,
  recipients: number,
): { message: StoredMessage; row: Insertable<MessagesTable> } {
  const req = item.request;
  const message: StoredMessage = {
    appId: item.appId,
    id,
    type: req.type,
    timestamp: item.timestamp,
    ttl: req.ttl,
    expiresAt: expiresAtOf(item.timestamp, req.ttl),
    dataJson: req.dataJson,
    platforms: req.platforms,
    topic,
    offset,
  };
  const row: Insertable<MessagesTable> = {
    app_id: item.appId,
    msg_id: id,
    type: req.type,
    timestamp: item.timestamp,
    ttl: req.ttl,
    expires_at: message.expiresAt,
    data: req.dataJson,
    target: JSON.stringify(req.to),
    platforms: req.platforms && JSON.stringify(req.platforms),
    topic,
    topic_offset: offset,
    fingerprint: item.fingerprint,
    recipients,
  };
  return { message, row };
}

/** The columns of a prepared `messages` insert, in the order `messageValues` gives them. */
export const MESSAGE_INSERT_COLUMNS =
  'app_id, msg_id, type, timestamp, ttl, expires_at, data, target, platforms, topic, topic_offset, fingerprint, recipients';

/** A `messages` row as the positional parameters of MESSAGE_INSERT_COLUMNS (both drivers). */
export function messageValues(m: Insertable<MessagesTable>): (string | number | null)[] {
  return [
    m.app_id,
    m.msg_id,
    m.type,
    m.timestamp,
    m.ttl ?? null,
    m.expires_at ?? null,
    m.data,
    m.target,
    m.platforms ?? null,
    m.topic ?? null,
    m.topic_offset ?? null,
    m.fingerprint,
    m.recipients,
  ];
}

export function recipientCount(item: PersistItem): number {
  const to = item.request.to;
  if ('users' in to || 'devices' in to) return recipientsOf(to).length;
  return item.connectionCount;
}

/**
 * Idempotency, decided per item and also between items of this batch (`known`: stored ids by
 * `counterKey(app, id)`), then the per-user seqs and per-topic offsets the new ones need.
 */
export function planBatch(
  items: readonly PersistItem[],
  known: ReadonlyMap<string, { fingerprint: string; recipients: number }>,
): BatchPlan {
  const outcomes: PersistOutcome[] = new Array(items.length);
  const seen = new Map(known);
  const seqNeeds = new Map<string, CounterNeed>();
  const offsetNeeds = new Map<string, CounterNeed>();
  const fresh: BatchPlan['fresh'][number][] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    const key = counterKey(item.appId, item.messageId);
    const prev = seen.get(key);
    if (prev) {
      outcomes[i] =
        prev.fingerprint === item.fingerprint
          ? { kind: 'duplicate', id: item.messageId, recipients: prev.recipients }
          : { kind: 'conflict', id: item.messageId };
      continue;
    }
    seen.set(key, { fingerprint: item.fingerprint, recipients: recipientCount(item) });
    const users = recipientsOf(item.request.to);
    for (const r of users) bump(seqNeeds, item.appId, r.user);
    const topic = topicOf(item.request.to);
    if (topic !== null) bump(offsetNeeds, item.appId, topic);
    fresh.push({ index: i, users, topic });
  }
  return { outcomes, fresh, seqNeeds: [...seqNeeds.values()], offsetNeeds: [...offsetNeeds.values()] };
}

/**
 * The message rows, with topic offsets handed out in item order from the topic counters' new
 * values (`offsetEnds`, after adding each need's `n`). Needs no seqs: a batch without topic
 * pushes can write its messages before its counters.
 */
export function buildMessageRows(
  items: readonly PersistItem[],
  plan: BatchPlan,
  offsetEnds: ReadonlyMap<string, number>,
): { rows: Insertable<MessagesTable>[]; messages: StoredMessage[] } {
  const nextOffset = startCursor(plan.offsetNeeds, offsetEnds);
  const rows: Insertable<MessagesTable>[] = [];
  const messages: StoredMessage[] = [];
  for (const { index, topic } of plan.fresh) {
    const item = items[index]!;
    const offset = topic === null ? null : take(nextOffset, counterKey(item.appId, topic));
    const { message, row } = newMessage(item, item.messageId, topic, offset, recipientCount(item));
    messages.push(message);
    rows.push(row);
  }
  return { rows, messages };
}

/** Hands out per-user seqs in item order from the user counters' new values (`seqEnds`). */
export function assignSeqs(
  items: readonly PersistItem[],
  plan: BatchPlan,
  messages: readonly StoredMessage[],
  seqEnds: ReadonlyMap<string, number>,
): StoredPlan[] {
  const nextSeq = startCursor(plan.seqNeeds, seqEnds);
  return plan.fresh.map(({ index, users }, k) => {
    const item = items[index]!;
    const recipients = users.map((r) => ({
      user: r.user,
      devices: r.devices,
      seq: take(nextSeq, counterKey(item.appId, r.user)),
    }));
    const live = item.request.ttl === 0 ? new Set(item.onlineUsers ?? []) : null;
    return { message: messages[k]!, recipients, index, live };
  });
}

/** Both of the above: the message rows and what each stored message becomes. */
export function buildMessages(
  items: readonly PersistItem[],
  plan: BatchPlan,
  seqEnds: ReadonlyMap<string, number>,
  offsetEnds: ReadonlyMap<string, number>,
): { rows: Insertable<MessagesTable>[]; stored: StoredPlan[] } {
  const { rows, messages } = buildMessageRows(items, plan, offsetEnds);
  return { rows, stored: assignSeqs(items, plan, messages, seqEnds) };
}

/** One delivery row per recipient; ttl 0 recipients without a live connection are expired at once. */
export function buildDeliveries(
  stored: readonly StoredPlan[],
  pks: ReadonlyMap<string, number>,
): Insertable<DeliveriesTable>[] {
  return stored.flatMap(({ message, recipients, live }) => {
    const pk = pks.get(counterKey(message.appId, message.id))!;
    return recipients.map((r) => ({
      app_id: message.appId,
      user_id: r.user,
      seq: r.seq,
      message_pk: pk,
      devices: r.devices && JSON.stringify(r.devices),
      // ttl 0: recipients without a live connection are expired at once (docs/reference/server-api.md "Push").
      status: live && !live.has(r.user) ? STATUS_CODE.expired : STATUS_CODE.pending,
      retries: 0,
      sent_at: null,
      acked_at: null,
      next_retry_at: null,
      expires_at: live ? null : message.expiresAt,
      live_only: live ? 1 : 0,
    }));
  });
}

/** Apps whose stored messages could get hand-offs (durable, with recipients): the webhooks to look up. */
export function handoffApps(stored: readonly StoredPlan[]): string[] {
  const apps = new Set<string>();
  for (const s of stored) if (s.live === null && s.recipients.length > 0) apps.add(s.message.appId);
  return [...apps];
}

/** A hand-off row per recipient of each durable message whose app has a webhook (`delays`). */
export function buildHandoffs(
  stored: readonly StoredPlan[],
  pks: ReadonlyMap<string, number>,
  delays: ReadonlyMap<string, number>,
): HandoffRow[] {
  const rows: HandoffRow[] = [];
  for (const { message: m, recipients, live } of stored) {
    const afterMs = delays.get(m.appId);
    if (afterMs === undefined || live !== null) continue;
    const pk = pks.get(counterKey(m.appId, m.id))!;
    for (const r of recipients) {
      rows.push({
        app_id: m.appId,
        user_id: r.user,
        seq: r.seq,
        message_pk: pk,
        due_at: m.timestamp + afterMs,
        give_up_at: m.expiresAt ?? m.timestamp + HANDOFF_MAX_MS,
      });
    }
  }
  return rows;
}

/** Fills in the stored outcomes; routing only needs the recipients that can still receive it. */
export function finishOutcomes(plan: BatchPlan, stored: readonly StoredPlan[]): PersistOutcome[] {
  const outcomes = plan.outcomes;
  for (const s of stored) {
    const recipients = s.live ? s.recipients.filter((r) => s.live!.has(r.user)) : s.recipients;
    outcomes[s.index] = { kind: 'stored', message: s.message, recipients };
  }
  return outcomes;
}

/** The persist rules over one transaction's write primitives. */
export async function persistBatch(
  ops: PersistOps,
  items: readonly PersistItem[],
): Promise<PersistOutcome[]> {
  const known = new Map<string, { fingerprint: string; recipients: number }>();
  for (const [appId, ids] of idsToCheck(items)) {
    for (const r of await ops.findExisting(appId, ids)) {
      known.set(counterKey(appId, r.msg_id), {
        fingerprint: r.fingerprint,
        recipients: Number(r.recipients),
      });
    }
  }
  const plan = planBatch(items, known);
  if (plan.fresh.length === 0) return plan.outcomes;
  let messages: { rows: Insertable<MessagesTable>[]; messages: StoredMessage[] };
  let pks: Map<string, number>;
  let seqEnds: Map<string, number>;
  if (plan.offsetNeeds.length === 0) {
    // No offsets to wait for: the messages go first, so a driver that defers writes sends
    // them with the counters (one round trip for both).
    messages = buildMessageRows(items, plan, new Map());
    [pks, seqEnds] = await Promise.all([
      ops.insertMessages(messages.rows),
      ops.incrementCounters('user_state', plan.seqNeeds),
    ]);
  } else {
    seqEnds = await ops.incrementCounters('user_state', plan.seqNeeds);
    messages = buildMessageRows(items, plan, await ops.incrementCounters('topic_state', plan.offsetNeeds));
    pks = await ops.insertMessages(messages.rows);
  }
  const stored = assignSeqs(items, plan, messages.messages, seqEnds);
  await ops.insertDeliveries(buildDeliveries(stored, pks));
  const apps = handoffApps(stored);
  if (apps.length > 0) {
    const delays = await ops.webhookDelays(apps);
    if (delays.size > 0) {
      const handoffs = buildHandoffs(stored, pks, delays);
      if (handoffs.length > 0) await ops.insertHandoffs(handoffs);
    }
  }
  return finishOutcomes(plan, stored);
}

function bump(map: Map<string, CounterNeed>, appId: string, name: string): void {
  const entry = map.get(counterKey(appId, name));
  if (entry) entry.n++;
  else map.set(counterKey(appId, name), { appId, name, n: 1 });
}

function startCursor(needs: readonly CounterNeed[], ends: ReadonlyMap<string, number>): Map<string, number> {
  const next = new Map<string, number>();
  for (const { appId, name, n } of needs) {
    const key = counterKey(appId, name);
    next.set(key, ends.get(key)! - n + 1);
  }
  return next;
}

function take(cursor: Map<string, number>, key: string): number {
  const v = cursor.get(key)!;
  cursor.set(key, v + 1);
  return v;
}
