import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newMessageId } from '../src/domain/ids.js';
import { parsePushRequest } from '../src/ingest/push-request.js';
import { createSqliteStore, type SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { DeliveryUpdate, PersistItem } from '../src/store/store.js';

/** One table row per transaction size (the bench's row shape). */
export interface StoreWriteRow {
  scenario: string;
  server: string;
  connections: number;
  [metric: string]: string | number;
}

const USERS = 10_000;
const RESEND_MS = 60_000;

/**
 * The SQLite write path alone, in this process: one-user pushes persisted in transactions of
 * 1, 20 and 100 (what the group commit forms at low, moderate and high load), then each
 * batch's "sent" marks in a transaction of their own, as the status writer does, then the
 * clients' cumulative acks in another. CPU time
 * per push includes the checkpoint thread. A warm-up fills the tables first, so B-tree
 * pages are not all in one place.
 */
export async function storeWrite(quick: boolean): Promise<StoreWriteRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'mp-bench-store-'));
  const store = await createSqliteStore({ url: `sqlite:${join(dir, 'push.db')}`, sqliteSync: 'normal' });
  const rows: StoreWriteRow[] = [];
  try {
    await run(store, 50, quick ? 10_000 : 30_000);
    for (const batch of [1, 20, 100]) {
      const n = batch === 1 ? (quick ? 2_000 : 5_000) : quick ? 10_000 : 30_000;
      const r = await run(store, batch, n);
      rows.push({
        scenario: 'store-write',
        server: 'message-push (SQLite)',
        connections: 0,
        'batch size': batch,
        'persist µs/push': round(r.persistUs / n),
        'sent mark µs/push': round(r.sentUs / n),
        'ack µs/push': round(r.ackUs / n),
        'durable msg/s': Math.round((n / r.wallMs) * 1000),
      });
    }
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

async function run(
  store: SqliteStore,
  batch: number,
  n: number,
): Promise<{ persistUs: number; sentUs: number; ackUs: number; wallMs: number }> {
  let persistUs = 0;
  let sentUs = 0;
  let ackUs = 0;
  const started = performance.now();
  for (let done = 0; done < n; done += batch) {
    const items = Array.from({ length: batch }, pushItem);
    const c0 = process.cpuUsage();
    const outcomes = await store.persistPushes(items);
    const c1 = process.cpuUsage(c0);
    const at = Date.now();
    const marks: Extract<DeliveryUpdate, { kind: 'sent' }>[] = [];
    for (const o of outcomes) {
      if (o.kind !== 'stored') continue;
      for (const r of o.recipients) {
        marks.push({
          kind: 'sent',
          appId: 'bench',
          userId: r.user,
          seqs: [r.seq],
          at,
          retryAt: at + RESEND_MS,
        });
      }
    }
    const c2 = process.cpuUsage();
    await store.applyDeliveryUpdates(marks);
    const c3 = process.cpuUsage(c2);
    // Each client acks what it got, cumulatively, as a WebSocket ack frame does.
    const acks: DeliveryUpdate[] = marks.map((m) => ({
      kind: 'ack_upto',
      appId: m.appId,
      userId: m.userId,
      device: 'bench',
      seq: m.seqs[0]!,
      at,
    }));
    const c4 = process.cpuUsage();
    await store.applyDeliveryUpdates(acks);
    const c5 = process.cpuUsage(c4);
    persistUs += c1.user + c1.system;
    sentUs += c3.user + c3.system;
    ackUs += c5.user + c5.system;
  }
  return { persistUs, sentUs, ackUs, wallMs: performance.now() - started };
}

function pushItem(): PersistItem {
  const request = parsePushRequest(
    {
      to: { users: [`u${Math.floor(Math.random() * USERS)}`] },
      data: { t: Date.now(), pad: 'x'.repeat(160) },
    },
    64 * 1024,
  );
  return {
    appId: 'bench',
    request,
    fingerprint: '',
    messageId: newMessageId(),
    timestamp: Date.now(),
    onlineUsers: null,
    connectionCount: 1,
  };
}

const round = (v: number) => Math.round(v * 10) / 10;
