import type { Insertable } from 'kysely';
import type { SqlValue } from 'mysql2';
import { STATUS_CODE } from '../../domain/message.js';
import type { HandoffRow } from '../sql/lifecycle-sql.js';
import {
  type CounterNeed,
  counterKey,
  type ExistingMessage,
  MESSAGE_INSERT_COLUMNS,
  messageValues,
  type PersistOps,
} from '../sql/persist-plan.js';
import type { DeliveriesTable } from '../sql/schema.js';
import { chunks } from '../sql/sql-store.js';
import type { ConnectionChange, DeliveryUpdate } from '../store.js';
import type { BatchTx, Statement, StatementResult } from './batch-tx.js';

/**
 * The MySQL hot writes as multi-statement batches (see batch-tx.ts): a persist batch, a
 * batch of status updates and a batch of connection rows each take the round trips their
 * reads need, not one per statement.
 */

const { pending: PENDING, sent: SENT, acked: ACKED, failed: FAILED } = STATUS_CODE;
const UNACKED = `(${PENDING}, ${SENT}, ${FAILED})`;

/** Rows per multi-row INSERT: well under max_allowed_packet (16 MB) at the largest payloads a batch holds. */
const INSERT_ROWS = 500;

/**
 * Persist primitives over one `BatchTx`. Deliveries and hand-offs are deferred to the COMMIT's
 * round trip; the webhooks of the batch's apps are read with the first counter increment.
 */
export function batchPersistOps(tx: BatchTx, appIds: readonly string[]): PersistOps {
  let delays: Map<string, number> | null = null;
  const webhooks = (): Statement => ({
    sql: 'select app_id, after_ms from webhooks where app_id in (?)',
    params: [[...appIds]],
  });
  const keepDelays = (rows: StatementResult | undefined) => {
    delays = new Map(
      (rows as { app_id: string; after_ms: number }[]).map((r) => [r.app_id, Number(r.after_ms)]),
    );
  };
  return {
    async findExisting(appId, ids) {
      const found: ExistingMessage[] = [];
      for (const chunk of chunks(ids, INSERT_ROWS)) {
        const [rows] = await tx.run({
          sql: 'select msg_id, fingerprint, recipients from messages where app_id = ? and msg_id in (?)',
          params: [appId, chunk],
        });
        found.push(...(rows as unknown as ExistingMessage[]));
      }
      return found;
    },
    async incrementCounters(table, rows) {
      const ends = new Map<string, number>();
      for (const trip of chunks(sortedCounters(rows), COUNTER_ROWS_PER_TRIP)) {
        const counters = counterStatements(table, trip);
        const withHooks = delays === null;
        const results = await tx.run(...counters.statements, ...(withHooks ? [webhooks()] : []));
        counters.read(results, ends);
        if (withHooks) keepDelays(results[results.length - 1]);
      }
      return ends;
    },
    async insertMessages(rows) {
      // Deferred: with a batch of user pushes the messages travel with the counters' round
      // trip (persist-plan.ts writes them first when no topic offset is needed).
      const reads = [...chunks(rows, INSERT_ROWS)].map((chunk) =>
        tx.deferRead(
          {
            sql: `insert into messages (${MESSAGE_INSERT_COLUMNS}) values ?`,
            params: [chunk.map(messageValues)],
          },
          {
            // Auto-increment ids of a multi-row insert are only consecutive in some lock modes: read them back.
            sql: 'select pk, app_id, msg_id from messages where (app_id, msg_id) in (?)',
            params: [chunk.map((r) => [r.app_id, r.msg_id])],
          },
        ),
      );
      // A run started in this same turn (the counters') takes them along; else they go now.
      await Promise.resolve();
      if (tx.readsQueued) await tx.run();
      const pks = new Map<string, number>();
      for (const [, found] of await Promise.all(reads)) {
        for (const f of found as { pk: number; app_id: string; msg_id: string }[]) {
          pks.set(counterKey(f.app_id, f.msg_id), Number(f.pk));
        }
      }
      return pks;
    },
    insertDeliveries(rows) {
      tx.defer(...deliveryStatements(rows));
    },
    async webhookDelays(apps) {
      if (delays === null) keepDelays((await tx.run(webhooks()))[0]);
      const wanted = new Set(apps);
      return new Map([...delays!].filter(([app]) => wanted.has(app)));
    },
    insertHandoffs(rows: HandoffRow[]) {
      for (const chunk of chunks(rows, INSERT_ROWS)) {
        tx.defer({
          sql: 'insert into webhook_handoffs (app_id, user_id, seq, message_pk, due_at, give_up_at) values ?',
          params: [chunk.map((h) => [h.app_id, h.user_id, h.seq, h.message_pk, h.due_at, h.give_up_at])],
        });
      }
    },
  };
}

/**
 * Counter rows raised per round trip at most: a group batch of 2,000 members is one round
 * trip (four INSERT … ON DUPLICATE KEY UPDATE + SELECT pairs) instead of four.
 */
const COUNTER_ROWS_PER_TRIP = 5_000;

/** Key order: two batches never lock counter rows crosswise. */
export function sortedCounters(rows: readonly CounterNeed[]): CounterNeed[] {
  return [...rows].sort((a, b) => cmp(a.appId, b.appId) || cmp(a.name, b.name));
}

/**
 * Raises counters (rows already in key order) and reads their new values, as statements for
 * one round trip: per chunk an INSERT … ON DUPLICATE KEY UPDATE, which takes the rows' locks
 * (the read after it, in this transaction, sees the values this batch made, and another batch
 * waits until the COMMIT), and the SELECT of the ends. `read` takes the statements' results.
 */
export function counterStatements(
  table: 'user_state' | 'topic_state',
  sorted: readonly CounterNeed[],
): { statements: Statement[]; read(results: readonly StatementResult[], ends: Map<string, number>): void } {
  const nameCol = table === 'user_state' ? 'user_id' : 'topic';
  const counterCol = table === 'user_state' ? 'last_seq' : 'last_offset';
  const statements: Statement[] = [];
  for (const chunk of chunks(sorted, INSERT_ROWS)) {
    statements.push(
      {
        sql: `insert into ${table} (app_id, ${nameCol}, ${counterCol}) values ?
          on duplicate key update ${counterCol} = ${counterCol} + values(${counterCol})`,
        params: [chunk.map((r) => [r.appId, r.name, r.n])],
      },
      {
        sql: `select app_id, ${nameCol} as name, ${counterCol} as end from ${table}
          where (app_id, ${nameCol}) in (?)`,
        params: [chunk.map((r) => [r.appId, r.name])],
      },
    );
  }
  return {
    statements,
    read(results, ends) {
      for (let i = 1; i < statements.length; i += 2) {
        for (const r of results[i] as { app_id: string; name: string; end: number }[]) {
          ends.set(counterKey(r.app_id, r.name), Number(r.end));
        }
      }
    },
  };
}

/** Multi-row INSERTs of delivery rows. */
export function deliveryStatements(rows: readonly Insertable<DeliveriesTable>[]): Statement[] {
  return [...chunks(rows, INSERT_ROWS)].map((chunk) => ({
    sql: `insert into deliveries (app_id, user_id, seq, message_pk, devices, status, retries, sent_at,
      acked_at, next_retry_at, expires_at, live_only) values ?`,
    params: [chunk.map(deliveryValues)],
  }));
}

function deliveryValues(d: Insertable<DeliveriesTable>): SqlValue[] {
  return [
    d.app_id,
    d.user_id,
    d.seq,
    d.message_pk,
    d.devices ?? null,
    d.status,
    d.retries ?? 0,
    d.sent_at ?? null,
    d.acked_at ?? null,
    d.next_retry_at ?? null,
    d.expires_at ?? null,
    d.live_only ?? 0,
  ];
}

/** Device-targeted deliveries are acked only by their devices; a null device is the user as a whole. */
const DEVICE_MAY_ACK = '(d.devices is null or ? is null or json_contains(d.devices, json_quote(?)))';

/**
 * The statements of a batch of status updates (same rules as `SqlStore.applyDeliveryUpdates`),
 * and how to read each update's answer from their results: one round trip with the COMMIT.
 */
export function deliveryUpdateStatements(updates: readonly DeliveryUpdate[]): {
  statements: Statement[];
  answers: (results: readonly StatementResult[]) => number[];
} {
  const statements: Statement[] = [];
  const picks: ((results: readonly StatementResult[]) => number)[] = [];
  const affected = (i: number) => (results: readonly StatementResult[]) =>
    (results[i] as { affectedRows: number }).affectedRows;
  for (const u of updates) {
    switch (u.kind) {
      case 'sent': {
        // Pending → sent (with sent_at) and a first resend armed on sent rows that have none and
        // are not live-only, in one statement. MySQL assigns left to right: status goes last so
        // the CASEs still see the old one. Answers the rows either move changed.
        const first = statements.length;
        for (const seqs of chunks(u.seqs, INSERT_ROWS)) {
          statements.push({
            sql: `update deliveries d set
                d.sent_at = case when d.status = ${PENDING} then ? else d.sent_at end,
                d.next_retry_at = case when d.next_retry_at is null and d.live_only = 0 then ? else d.next_retry_at end,
                d.status = ${SENT}
              where d.app_id = ? and d.user_id = ? and d.seq in (?)
                and (d.status = ${PENDING} or (d.status = ${SENT} and d.next_retry_at is null and d.live_only = 0))`,
            params: [u.at, u.retryAt, u.appId, u.userId, seqs],
          });
        }
        const last = statements.length;
        picks.push((results) => {
          let n = 0;
          for (let i = first; i < last; i++) n += (results[i] as { affectedRows: number }).affectedRows;
          return n;
        });
        break;
      }
      case 'ack_upto':
        // An acked row needs no resend: next_retry_at cleared with it.
        picks.push(affected(statements.length));
        statements.push({
          sql: `update deliveries d set d.status = ${ACKED}, d.acked_at = ?, d.next_retry_at = null
            where d.app_id = ? and d.user_id = ? and d.seq <= ? and d.status in ${UNACKED}
              and (d.expires_at is null or d.expires_at > ?) and ${DEVICE_MAY_ACK}`,
          params: [u.at, u.appId, u.userId, u.seq, u.at, u.device, u.device],
        });
        break;
      case 'ack_ids':
        if (u.ids.length === 0) {
          picks.push(() => 0);
          break;
        }
        picks.push(affected(statements.length));
        statements.push({
          sql: `update deliveries d inner join messages m on m.pk = d.message_pk
            set d.status = ${ACKED}, d.acked_at = ?, d.next_retry_at = null
            where d.app_id = ? and d.user_id = ? and m.app_id = ? and m.msg_id in (?) and d.status in ${UNACKED}
              and (d.expires_at is null or d.expires_at > ?) and ${DEVICE_MAY_ACK}`,
          params: [u.at, u.appId, u.userId, u.appId, [...new Set(u.ids)], u.at, u.device, u.device],
        });
        break;
      case 'read': {
        // The read cursor never moves backwards and is clamped to the newest seq.
        statements.push({
          sql: `update user_state set last_read_seq = greatest(last_read_seq, least(?, last_seq))
            where app_id = ? and user_id = ?`,
          params: [u.seq, u.appId, u.userId],
        });
        const at = statements.length;
        picks.push((results) => Number((results[at] as { last_read_seq: number }[])[0]?.last_read_seq ?? 0));
        statements.push({
          sql: 'select last_read_seq from user_state where app_id = ? and user_id = ?',
          params: [u.appId, u.userId],
        });
        break;
      }
    }
  }
  return { statements, answers: (results) => picks.map((pick) => pick(results)) };
}

/** Opens as multi-row INSERTs and closes as one UPDATE per chunk (each row its own time). */
export function connectionStatements(changes: readonly ConnectionChange[]): Statement[] {
  const statements: Statement[] = [];
  const opens = changes.filter((c) => c.kind === 'open');
  for (const chunk of chunks(opens, INSERT_ROWS)) {
    statements.push({
      sql: `insert into connections (connection_id, app_id, user_id, device, platform, node, status,
        connected_at, last_heartbeat, disconnected_at) values ?`,
      params: [
        chunk.map((c) => [
          c.connectionId,
          c.appId,
          c.userId,
          c.device,
          c.platform,
          c.node,
          'online',
          c.at,
          c.at,
          null,
        ]),
      ],
    });
  }
  const closes = changes.filter((c) => c.kind === 'close');
  for (const chunk of chunks(closes, INSERT_ROWS)) {
    statements.push({
      sql: `update connections set status = 'offline',
        disconnected_at = case connection_id ${chunk.map(() => 'when ? then ?').join(' ')} end
        where connection_id in (?)`,
      params: [...chunk.flatMap((c) => [c.connectionId, c.at]), chunk.map((c) => c.connectionId)],
    });
  }
  return statements;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
