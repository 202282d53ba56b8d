import { describe, expect, it } from 'vitest';
import { fingerprintPush, type PushRequest } from '../../src/domain/message.js';
import type { PersistItem, Store } from '../../src/store/store.js';

let counter = 0;
/** A fresh app id per test keeps tests independent on a shared database. */
const freshApp = () => `app${Date.now().toString(36)}${(counter++).toString(36)}`;

function item(
  appId: string,
  req: Partial<PushRequest> & Pick<PushRequest, 'to'>,
  extra: Partial<PersistItem> = {},
): PersistItem {
  const data = req.data ?? { n: counter };
  const request: PushRequest = {
    id: null,
    type: 'message',
    platforms: null,
    ttl: null,
    ...req,
    data,
    dataJson: JSON.stringify(data),
  };
  return {
    appId,
    request,
    fingerprint: fingerprintPush(request),
    messageId: request.id ?? `gen-${counter++}-${Math.random()}`,
    timestamp: Date.now(),
    onlineUsers: null,
    connectionCount: 0,
    ...extra,
  };
}

/**
 * The store contract (src/store/store.ts), as a function of a driver factory: every driver
 * runs exactly this suite.
 */
export function storeContract(name: string, makeStore: () => Promise<Store>): void {
  describe(`store contract: ${name}`, () => {
    const withStore = async (fn: (store: Store, app: string) => Promise<void>) => {
      const store = await makeStore();
      try {
        await fn(store, freshApp());
      } finally {
        await store.close();
      }
    };

    it('assigns per-user seqs without gaps or duplicates, in item order, within and across batches', () =>
      withStore(async (store, app) => {
        const first = await store.persistPushes([
          item(app, { to: { users: ['u1', 'u2'] } }),
          item(app, { to: { users: ['u1'] } }),
          item(app, { to: { users: ['u2', 'u1'] } }),
        ]);
        const seqsOf = (o: (typeof first)[number], u: string) =>
          o.kind === 'stored' ? o.recipients.find((r) => r.user === u)?.seq : undefined;
        expect(first.map((o) => seqsOf(o, 'u1'))).toEqual([1, 2, 3]);
        expect(first.map((o) => seqsOf(o, 'u2'))).toEqual([1, undefined, 2]);
        const second = await store.persistPushes([item(app, { to: { users: ['u1'] } })]);
        expect(seqsOf(second[0]!, 'u1')).toBe(4);
        expect(await store.lastSeq(app, 'u1')).toBe(4);
        expect(await store.lastSeq(app, 'nobody')).toBe(0);
      }));

    it('user ids differing only in case are different users: own seqs, own backlog', () =>
      withStore(async (store, app) => {
        const out = await store.persistPushes([
          item(app, { to: { users: ['Ann'] }, data: { to: 'Ann' } }),
          item(app, { to: { users: ['ann', 'Ann'] }, data: { to: 'both' } }),
        ]);
        const seqs = out.map((o) =>
          o.kind === 'stored' ? o.recipients.map((r) => `${r.user}:${r.seq}`) : [],
        );
        expect(seqs).toEqual([['Ann:1'], ['ann:1', 'Ann:2']]);
        const backlog = async (user: string) =>
          (
            await store.readUserMessages({
              appId: app,
              userId: user,
              afterSeq: 0,
              unackedOnly: true,
              limit: 10,
              now: Date.now(),
            })
          ).map((m) => `${m.seq}:${m.message.dataJson}`);
        expect(await backlog('Ann')).toEqual(['1:{"to":"Ann"}', '2:{"to":"both"}']);
        expect(await backlog('ann')).toEqual(['1:{"to":"both"}']);
      }));

    it('is idempotent per (app, id): duplicate returns the first result, a different body conflicts', () =>
      withStore(async (store, app) => {
        const a = item(app, { id: 'same', to: { users: ['u1', 'u2'] }, data: { x: 1 } });
        const [stored] = await store.persistPushes([a]);
        expect(stored!.kind).toBe('stored');
        const [dup, conflict, inBatchDup] = await store.persistPushes([
          a,
          item(app, { id: 'same', to: { users: ['u1'] }, data: { x: 2 } }),
          a,
        ]);
        expect(dup).toEqual({ kind: 'duplicate', id: 'same', recipients: 2 });
        expect(conflict).toEqual({ kind: 'conflict', id: 'same' });
        expect(inBatchDup!.kind).toBe('duplicate');
        // Another app may use the same id.
        const [other] = await store.persistPushes([item(`${app}x`, { id: 'same', to: { users: ['u1'] } })]);
        expect(other!.kind).toBe('stored');
        expect(await store.lastSeq(app, 'u1')).toBe(1);
      }));

    it('dedupes duplicates inside one batch (concurrent pushes with one id store one message)', () =>
      withStore(async (store, app) => {
        const a = item(app, { id: 'c1', to: { users: ['u1'] } });
        const outcomes = await store.persistPushes([a, a, a]);
        expect(outcomes.map((o) => o.kind)).toEqual(['stored', 'duplicate', 'duplicate']);
        expect(await store.lastSeq(app, 'u1')).toBe(1);
      }));

    it('backlog: unacked messages in seq order; since: everything after a seq; acks are cumulative and per id', () =>
      withStore(async (store, app) => {
        const items = Array.from({ length: 5 }, (_, i) =>
          item(app, { id: `m${i + 1}`, to: { users: ['u'] } }),
        );
        await store.persistPushes(items);
        const read = (afterSeq: number, unackedOnly: boolean) =>
          store
            .readUserMessages({ appId: app, userId: 'u', afterSeq, unackedOnly, limit: 100, now: Date.now() })
            .then((rows) => rows.map((r) => r.seq));
        expect(await read(0, true)).toEqual([1, 2, 3, 4, 5]);
        const at = Date.now();
        const [acked] = await store.applyDeliveryUpdates([
          { kind: 'ack_upto', appId: app, userId: 'u', device: 'd', seq: 2, at },
        ]);
        expect(acked).toBe(2);
        const [byId] = await store.applyDeliveryUpdates([
          { kind: 'ack_ids', appId: app, userId: 'u', device: 'd', ids: ['m4', 'unknown'], at },
        ]);
        expect(byId).toBe(1);
        expect(await read(0, true)).toEqual([3, 5]);
        expect(await read(2, false)).toEqual([3, 4, 5]);
        // Acking again moves nothing: statuses never go back or double count.
        const [again] = await store.applyDeliveryUpdates([
          { kind: 'ack_upto', appId: app, userId: 'u', device: 'd', seq: 2, at },
        ]);
        expect(again).toBe(0);
      }));

    it('device-targeted deliveries are acked only by their devices', () =>
      withStore(async (store, app) => {
        await store.persistPushes([item(app, { to: { devices: [{ user: 'u', device: 'd2' }] } })]);
        const at = Date.now();
        const [n1] = await store.applyDeliveryUpdates([
          { kind: 'ack_upto', appId: app, userId: 'u', device: 'd1', seq: 1, at },
        ]);
        const [n2] = await store.applyDeliveryUpdates([
          { kind: 'ack_upto', appId: app, userId: 'u', device: 'd2', seq: 1, at },
        ]);
        expect([n1, n2]).toEqual([0, 1]);
      }));

    it('status: pending → sent → acked, shown per recipient with timestamps', () =>
      withStore(async (store, app) => {
        await store.persistPushes([item(app, { id: 's1', to: { users: ['u1', 'u2'] } })]);
        await store.applyDeliveryUpdates([
          { kind: 'sent', appId: app, userId: 'u1', seqs: [1], at: 1000, retryAt: 2000 },
        ]);
        await store.applyDeliveryUpdates([
          { kind: 'ack_upto', appId: app, userId: 'u1', device: 'd', seq: 1, at: 2000 },
        ]);
        await store.applyDeliveryUpdates([
          { kind: 'sent', appId: app, userId: 'u1', seqs: [1], at: 3000, retryAt: 4000 },
        ]);
        const status = await store.getMessageStatus(app, 's1', Date.now());
        expect(status?.recipients).toEqual([
          { user: 'u1', seq: 1, status: 'acked', retries: 0, sent_at: 1000, acked_at: 2000 },
          { user: 'u2', seq: 1, status: 'pending', retries: 0, sent_at: null, acked_at: null },
        ]);
        expect(await store.getMessageStatus(app, 'nope', Date.now())).toBeUndefined();
        expect(await store.getMessageStatus(`${app}x`, 's1', Date.now())).toBeUndefined();
      }));

    it('recent messages: newest first, per app or all, with status counts and the first recipients', () =>
      withStore(async (store, app) => {
        const other = `${app}o`;
        await store.persistPushes([
          item(app, { id: 'r1', to: { users: ['u3', 'u1', 'u2'] }, data: { n: 1 } }),
          item(app, { id: 'r2', to: { topic: 'room:1' } }),
        ]);
        await store.persistPushes([item(other, { id: 'r3', to: { users: ['u1'] } })]);
        await store.applyDeliveryUpdates([
          { kind: 'sent', appId: app, userId: 'u1', seqs: [1], at: 1000, retryAt: 2000 },
          { kind: 'sent', appId: app, userId: 'u2', seqs: [1], at: 1000, retryAt: 2000 },
          { kind: 'ack_upto', appId: app, userId: 'u2', device: 'd', seq: 1, at: 1500 },
        ]);
        const now = Date.now();
        const mine = await store.listRecentMessages({ appId: app, limit: 10, maxRecipients: 2, now });
        expect(mine.map((m) => m.id)).toEqual(['r2', 'r1']);
        const r1 = mine[1]!;
        expect(r1).toMatchObject({ app, type: 'message', data: { n: 1 }, to: { users: ['u3', 'u1', 'u2'] } });
        expect(r1.recipients_total).toBe(3);
        expect(r1.status_counts).toEqual({
          pending: 1,
          sent: 1,
          acked: 1,
          failed: 0,
          expired: 0,
          revoked: 0,
        });
        expect(r1.recipients).toEqual([
          { user: 'u1', seq: 1, status: 'sent', retries: 0, sent_at: 1000, acked_at: null },
          { user: 'u2', seq: 1, status: 'acked', retries: 0, sent_at: 1000, acked_at: 1500 },
        ]);
        expect(mine[0]).toMatchObject({ topic: 'room:1', offset: 1, recipients: [], recipients_total: 0 });
        expect((await store.listRecentMessages({ appId: app, limit: 1, maxRecipients: 5, now })).length).toBe(
          1,
        );
        expect(await store.listRecentMessages({ appId: app, limit: 0, maxRecipients: 5, now })).toEqual([]);
        const all = await store.listRecentMessages({ appId: null, limit: 3, maxRecipients: 5, now });
        expect(all.map((m) => [m.app, m.id])).toEqual([
          [other, 'r3'],
          [app, 'r2'],
          [app, 'r1'],
        ]);
      }));

    it('retries: sent deliveries come due at retryAt; resent, failed and disarmed as the scheduler says', () =>
      withStore(async (store, app) => {
        const t = Date.now();
        await store.persistPushes([1, 2, 3, 4].map((i) => item(app, { id: `r${i}`, to: { users: ['u'] } })));
        await store.applyDeliveryUpdates([
          { kind: 'sent', appId: app, userId: 'u', seqs: [1, 2, 3, 4], at: t, retryAt: t + 100 },
        ]);
        await store.applyDeliveryUpdates([
          { kind: 'ack_upto', appId: app, userId: 'u', device: 'd', seq: 1, at: t },
        ]);
        const mine = async (now: number) =>
          (await store.dueRetries(now, 1000))
            .filter((d) => d.message.appId === app)
            .map((d) => [d.seq, d.retries]);
        expect(await mine(t + 99)).toEqual([]);
        expect(await mine(t + 100)).toEqual([
          [2, 0],
          [3, 0],
          [4, 0],
        ]);
        await store.updateRetries([
          { kind: 'resent', appId: app, userId: 'u', seq: 2, nextRetryAt: t + 500 },
          { kind: 'failed', appId: app, userId: 'u', seq: 3 },
          { kind: 'disarm', appId: app, userId: 'u', seq: 4 },
        ]);
        expect(await mine(t + 499)).toEqual([]);
        expect(await mine(t + 500)).toEqual([[2, 1]]);
        const status = await store.getMessageStatus(app, 'r3', t);
        expect(status?.recipients[0]).toMatchObject({ status: 'failed' });
        // A disarmed delivery is re-armed when it is written again (reconnect backlog).
        await store.applyDeliveryUpdates([
          { kind: 'sent', appId: app, userId: 'u', seqs: [4], at: t + 600, retryAt: t + 700 },
        ]);
        expect(await mine(t + 700)).toEqual([
          [2, 1],
          [4, 0],
        ]);
        // Acked deliveries never come due, and a failed one is not moved back by a resend decision.
        await store.updateRetries([{ kind: 'resent', appId: app, userId: 'u', seq: 3, nextRetryAt: t }]);
        expect((await store.getMessageStatus(app, 'r3', t))?.recipients[0]).toMatchObject({
          status: 'failed',
          retries: 0,
        });
      }));

    it('ttl: expired deliveries are never read and show expired; ttl 0 expires offline recipients at once', () =>
      withStore(async (store, app) => {
        const past = Date.now() - 10_000;
        await store.persistPushes([
          item(app, { id: 't1', to: { users: ['u'] }, ttl: 1 }, { timestamp: past }),
          item(
            app,
            { id: 't0', to: { users: ['u', 'online'] }, ttl: 0 },
            { onlineUsers: new Set(['online']) },
          ),
          item(app, { id: 'keep', to: { users: ['u'] } }),
        ]);
        const now = Date.now();
        const rows = await store.readUserMessages({
          appId: app,
          userId: 'u',
          afterSeq: 0,
          unackedOnly: true,
          limit: 10,
          now,
        });
        expect(rows.map((r) => r.message.id)).toEqual(['keep']);
        expect((await store.getMessageStatus(app, 't1', now))?.recipients[0]?.status).toBe('expired');
        const t0 = await store.getMessageStatus(app, 't0', now);
        expect(t0?.recipients.map((r) => [r.user, r.status])).toEqual([
          ['online', 'pending'],
          ['u', 'expired'],
        ]);
        // ttl 0 deliveries are live-only: never part of a backlog.
        const online = await store.readUserMessages({
          appId: app,
          userId: 'online',
          afterSeq: 0,
          unackedOnly: true,
          limit: 10,
          now,
        });
        expect(online).toEqual([]);
        expect(await store.expireDue(now, 100)).toBeGreaterThanOrEqual(1);
      }));

    it('read cursor never moves back and is clamped to the newest seq; unread counts non-expired', () =>
      withStore(async (store, app) => {
        await store.persistPushes([1, 2, 3].map(() => item(app, { to: { users: ['u'] } })));
        expect(await store.readUnread(app, 'u', Date.now())).toEqual({ count: 3, last_read_seq: 0 });
        expect(await store.applyDeliveryUpdates([{ kind: 'read', appId: app, userId: 'u', seq: 2 }])).toEqual(
          [2],
        );
        expect(await store.applyDeliveryUpdates([{ kind: 'read', appId: app, userId: 'u', seq: 1 }])).toEqual(
          [2],
        );
        expect(
          await store.applyDeliveryUpdates([{ kind: 'read', appId: app, userId: 'u', seq: 99 }]),
        ).toEqual([3]);
        expect(await store.readUnread(app, 'u', Date.now())).toEqual({ count: 0, last_read_seq: 3 });
      }));

    it('topic and $all messages get per-topic offsets and no deliveries', () =>
      withStore(async (store, app) => {
        const out = await store.persistPushes([
          item(app, { to: { all: true } }, { connectionCount: 7 }),
          item(app, { to: { all: true } }),
          item(app, { id: 'room', to: { topic: 'room:1' } }),
        ]);
        const offsets = out.map((o) => (o.kind === 'stored' ? [o.message.topic, o.message.offset] : null));
        expect(offsets).toEqual([
          ['$all', 1],
          ['$all', 2],
          ['room:1', 1],
        ]);
        const dup = await store.persistPushes([item(app, { to: { all: true } }, { connectionCount: 7 })]);
        expect(dup[0]!.kind).toBe('stored');
        const status = await store.getMessageStatus(app, 'room', Date.now());
        expect(status).toMatchObject({ topic: 'room:1', offset: 1, recipients: [] });
      }));

    it('topic history pages by offset and honours retention by count and age, for readers and the pruner', () =>
      withStore(async (store, app) => {
        const now = Date.now();
        await store.persistPushes(
          Array.from({ length: 10 }, (_, i) =>
            item(app, { id: `t${i + 1}`, to: { topic: 'news' } }, { timestamp: i < 2 ? now - 100_000 : now }),
          ),
        );
        expect(await store.topicOffset(app, 'news')).toBe(10);
        const page = (q: Partial<Parameters<Store['readTopicHistory']>[0]>) =>
          store
            .readTopicHistory({
              appId: app,
              topic: 'news',
              keepCount: 1000,
              keepSince: 0,
              afterOffset: null,
              beforeOffset: null,
              limit: 3,
              forward: false,
              now,
              ...q,
            })
            .then((r) => [r.rows.map((m) => m.offset), r.hasMore]);
        expect(await page({})).toEqual([[8, 9, 10], true]);
        expect(await page({ beforeOffset: 3 })).toEqual([[1, 2], false]);
        expect(await page({ afterOffset: 6, forward: true })).toEqual([[7, 8, 9], true]);
        expect(await page({ afterOffset: 9, forward: true })).toEqual([[10], false]);
        // Retention: newest 5 by count, nothing older than 50 s by age.
        expect(await page({ keepCount: 5, limit: 100, forward: true, afterOffset: 0 })).toEqual([
          [6, 7, 8, 9, 10],
          false,
        ]);
        expect(await page({ keepSince: now - 50_000, limit: 100, forward: true, afterOffset: 0 })).toEqual([
          [3, 4, 5, 6, 7, 8, 9, 10],
          false,
        ]);
        expect(await store.pruneTopics(5, now - 50_000)).toBe(5);
        expect(await page({ limit: 100, forward: true, afterOffset: 0 })).toEqual([[6, 7, 8, 9, 10], false]);
      }));

    it('user history pages forward and backward with has_more, filters by time, and shows statuses', () =>
      withStore(async (store, app) => {
        const base = Date.now() - 10_000;
        await store.persistPushes(
          Array.from({ length: 6 }, (_, i) =>
            item(app, { id: `h${i + 1}`, to: { users: ['u'] } }, { timestamp: base + i * 1000 }),
          ),
        );
        await store.applyDeliveryUpdates([
          { kind: 'ack_upto', appId: app, userId: 'u', device: 'd', seq: 2, at: base },
        ]);
        const page = (q: Partial<Parameters<Store['readUserHistory']>[0]>) =>
          store
            .readUserHistory({
              appId: app,
              userId: 'u',
              afterSeq: null,
              beforeSeq: null,
              from: null,
              to: null,
              limit: 4,
              forward: false,
              includeExpired: true,
              now: Date.now(),
              ...q,
            })
            .then((r) => [r.rows.map((x) => x.seq), r.hasMore]);
        expect(await page({})).toEqual([[3, 4, 5, 6], true]);
        expect(await page({ beforeSeq: 3 })).toEqual([[1, 2], false]);
        expect(await page({ afterSeq: 1, forward: true, limit: 2 })).toEqual([[2, 3], true]);
        expect(await page({ afterSeq: 4, forward: true })).toEqual([[5, 6], false]);
        expect(await page({ from: base + 1000, to: base + 3000, limit: 100 })).toEqual([[2, 3, 4], false]);
        const rows = await store.readUserHistory({
          appId: app,
          userId: 'u',
          afterSeq: null,
          beforeSeq: 3,
          from: null,
          to: null,
          limit: 10,
          forward: false,
          includeExpired: true,
          now: Date.now(),
        });
        expect(rows.rows.map((r) => r.status)).toEqual(['acked', 'acked']);
      }));

    it('prunes messages past retention together with their deliveries', () =>
      withStore(async (store, app) => {
        const old = Date.now() - 100_000;
        await store.persistPushes([
          item(app, { id: 'old', to: { users: ['u'] } }, { timestamp: old }),
          item(app, { id: 'new', to: { users: ['u'] } }),
        ]);
        expect(await store.pruneBefore(Date.now() - 50_000, 1000)).toBeGreaterThanOrEqual(1);
        expect(await store.getMessageStatus(app, 'old', Date.now())).toBeUndefined();
        const rows = await store.readUserMessages({
          appId: app,
          userId: 'u',
          afterSeq: 0,
          unackedOnly: false,
          limit: 10,
          now: Date.now(),
        });
        expect(rows.map((r) => r.message.id)).toEqual(['new']);
      }));

    it('records connections online/offline and marks stale or dead-node rows offline', () =>
      withStore(async (store, app) => {
        const node = `node-${app}`;
        await store.recordConnections([
          {
            kind: 'open',
            connectionId: `${app}-c1`,
            appId: app,
            userId: 'u',
            device: 'd',
            platform: 'web',
            node,
            at: 1000,
          },
          {
            kind: 'open',
            connectionId: `${app}-c2`,
            appId: app,
            userId: 'u',
            device: 'd2',
            platform: 'web',
            node,
            at: 1000,
          },
        ]);
        await store.recordConnections([{ kind: 'close', connectionId: `${app}-c1`, at: 2000 }]);
        expect(await store.markNodeOffline(node, 3000)).toBe(1);
        expect(await store.markNodeOffline(node, 3000)).toBe(0);
        await store.ping();

        // Several closes in one batch (one statement), an open and its close among them.
        const open = (id: string, at: number) => ({
          kind: 'open' as const,
          connectionId: `${app}-${id}`,
          appId: app,
          userId: 'w',
          device: id,
          platform: 'web',
          node,
          at,
        });
        await store.touchNode(node, 4000);
        await store.recordConnections([open('c3', 4000), open('c4', 4000), open('c5', 4000)]);
        await store.recordConnections([
          { kind: 'close', connectionId: `${app}-c3`, at: 4100 },
          open('c6', 4150),
          { kind: 'close', connectionId: `${app}-c4`, at: 4200 },
          { kind: 'close', connectionId: `${app}-c6`, at: 4250 },
        ]);
        const online = await store.remoteConnections(app, ['w'], `${app}-elsewhere`, 0);
        expect(online.map((r) => r.connection_id)).toEqual([`${app}-c5`]);
        expect(await store.markNodeOffline(node, 5000)).toBe(1); // leaves no live node behind for other tests
      }));

    it('presence across nodes: online rows of other live nodes; dead nodes swept and forgotten, never this one', () =>
      withStore(async (store, app) => {
        const open = (id: string, userId: string, node: string, at: number) => ({
          kind: 'open' as const,
          connectionId: `${app}-${id}`,
          appId: app,
          userId,
          device: id,
          platform: 'web',
          node,
          at,
        });
        const [me, other, dead] = [`${app}-me`, `${app}-other`, `${app}-dead`];
        await store.touchNode(me, 5000);
        await store.touchNode(other, 4000);
        await store.touchNode(other, 5000); // a second heartbeat moves the same row
        await store.touchNode(dead, 1000);
        await store.recordConnections([
          open('m1', 'u', me, 5000),
          open('o1', 'u', other, 5000),
          open('o2', 'v', other, 5000),
          open('o3', 'u', other, 5000),
          open('d1', 'u', dead, 1000),
        ]);
        await store.recordConnections([{ kind: 'close', connectionId: `${app}-o3`, at: 5500 }]);
        const remote = await store.remoteConnections(app, ['u', 'v', 'w'], me, 4000);
        expect(remote.map((r) => [r.user_id, r.connection_id, r.node]).sort()).toEqual([
          ['u', `${app}-o1`, other],
          ['v', `${app}-o2`, other],
        ]);
        expect(remote[0]).toMatchObject({
          device: expect.any(String),
          platform: 'web',
          connected_at: 5000,
          last_heartbeat: 5000,
        });
        expect(await store.remoteConnections(app, [], me, 0)).toEqual([]);

        // A connection's heartbeat is its node's.
        await store.touchNode(other, 9000);
        expect((await store.remoteConnections(app, ['v'], me, 8000)).map((r) => r.last_heartbeat)).toEqual([
          9000,
        ]);

        // The dead node (heartbeat 1000) is swept once and forgotten; this node, as old, would not be.
        expect(await store.markStaleOffline(4000, 9500, me)).toBe(1);
        expect(await store.markStaleOffline(4000, 9500, me)).toBe(0);
        expect((await store.remoteConnections(app, ['u'], me, 0)).map((r) => r.node)).toEqual([other]);
        expect(await store.markStaleOffline(99_999, 9500, me)).toBe(2); // other's two rows, never me's
        expect(await store.remoteConnections(app, ['u', 'v'], other, 0)).toEqual([
          expect.objectContaining({ connection_id: `${app}-m1`, node: me, last_heartbeat: 5000 }),
        ]);

        // A swept node that comes back counts again for connections it opens from then on.
        await store.touchNode(other, 10_000);
        await store.recordConnections([open('o4', 'v', other, 10_000)]);
        expect((await store.remoteConnections(app, ['v'], me, 0)).map((r) => r.connection_id)).toEqual([
          `${app}-o4`,
        ]);

        // Shutdown: the node's rows go offline and the node is forgotten.
        expect(await store.markNodeOffline(me, 11_000)).toBe(1);
        expect(await store.remoteConnections(app, ['u'], other, 0)).toEqual([]);
        expect(await store.markStaleOffline(99_999, 11_000, other)).toBe(0);
      }));

    it('recall: unacked recipients become revoked (final), acked stay acked; gone from backlog, since, history, unread, resends; idempotent', () =>
      withStore(async (store, app) => {
        await store.persistPushes([
          item(app, { id: 'keep', to: { users: ['u', 'v'] } }),
          item(app, { id: 'gone', to: { users: ['u', 'v', 'w'] } }),
        ]);
        const at = Date.now();
        // v acked it; u has it written (a resend armed); w never had it.
        await store.applyDeliveryUpdates([
          { kind: 'sent', appId: app, userId: 'u', seqs: [1, 2], at, retryAt: at },
          { kind: 'ack_upto', appId: app, userId: 'v', device: null, seq: 2, at },
        ]);
        expect(await store.revokeMessage(app, 'missing', at)).toBeUndefined();
        const first = await store.revokeMessage(app, 'gone', at + 1);
        expect(first).toMatchObject({ id: 'gone', revoked: 2, first: true, topic: null });
        expect(first!.recipients.map((r) => `${r.user}:${r.seq}`).sort()).toEqual(['u:2', 'v:2', 'w:1']);
        const again = await store.revokeMessage(app, 'gone', at + 2);
        expect(again).toMatchObject({ id: 'gone', revoked: 0, first: false, recipients: [] });

        const status = await store.getMessageStatus(app, 'gone', at + 3);
        expect(status!.revoked_at).toBe(at + 1);
        expect((await store.getMessageStatus(app, 'keep', at + 3))!.revoked_at).toBeUndefined();
        expect(Object.fromEntries(status!.recipients.map((r) => [r.user, r.status]))).toEqual({
          u: 'revoked',
          v: 'acked',
          w: 'revoked',
        });
        const backlog = (user: string, unackedOnly: boolean) =>
          store
            .readUserMessages({ appId: app, userId: user, afterSeq: 0, unackedOnly, limit: 10, now: at + 3 })
            .then((rows) => rows.map((r) => r.message.id));
        expect(await backlog('u', true)).toEqual(['keep']);
        expect(await backlog('u', false)).toEqual(['keep']);
        expect(await backlog('w', true)).toEqual([]);
        // The acked recipient keeps it in its history.
        const history = (user: string) =>
          store
            .readUserHistory({
              appId: app,
              userId: user,
              afterSeq: null,
              beforeSeq: null,
              from: null,
              to: null,
              limit: 10,
              forward: false,
              includeExpired: true,
              now: at + 3,
            })
            .then((h) => h.rows.map((r) => r.message.id));
        expect(await history('u')).toEqual(['keep']);
        expect(await history('v')).toEqual(['keep', 'gone']);
        expect(await store.readUnread(app, 'u', at + 3)).toEqual({ count: 1, last_read_seq: 0 });
        expect(await store.readUnread(app, 'w', at + 3)).toEqual({ count: 0, last_read_seq: 0 });
        // No resend of the recalled message; the other one still has its resend armed.
        const due = (await store.dueRetries(at + 10, 100)).filter((r) => r.message.appId === app);
        expect(due.map((r) => r.message.id)).toEqual(['keep']);
        // Final: a late ack or the ttl sweep does not move it.
        await store.applyDeliveryUpdates([
          { kind: 'ack_upto', appId: app, userId: 'u', device: null, seq: 2, at },
        ]);
        expect((await store.getMessageStatus(app, 'gone', at + 4))!.recipients[0]!.status).toBe('revoked');
      }));

    it('recall of a topic message takes it out of the topic history', () =>
      withStore(async (store, app) => {
        await store.persistPushes([
          item(app, { id: 't1', to: { topic: 'room' } }),
          item(app, { id: 't2', to: { topic: 'room' } }),
        ]);
        const result = await store.revokeMessage(app, 't1', Date.now());
        expect(result).toMatchObject({ id: 't1', revoked: 0, first: true, topic: 'room', offset: 1 });
        const page = await store.readTopicHistory({
          appId: app,
          topic: 'room',
          keepCount: 100,
          keepSince: 0,
          afterOffset: 0,
          beforeOffset: null,
          limit: 10,
          forward: true,
          now: Date.now(),
        });
        expect(page.rows.map((m) => m.id)).toEqual(['t2']);
        expect((await store.revokeMessage(app, 't1', Date.now()))!.first).toBe(false);
      }));

    it('webhook config and the hand-off schedule: rows per recipient, one claimant, outcomes, status field', () =>
      withStore(async (store, app) => {
        const t = Date.now();
        await store.persistPushes([item(app, { id: 'before', to: { users: ['u'] } })]);
        const hook = {
          appId: app,
          url: 'https://x.test/h',
          afterMs: 1000,
          secret: 's',
          createdAt: t,
          updatedAt: t,
        };
        await store.saveWebhook(hook);
        await store.saveWebhook({ ...hook, afterMs: 500, updatedAt: t + 1 });
        expect(await store.getWebhook(app)).toEqual({ ...hook, afterMs: 500, updatedAt: t + 1 });
        expect((await store.listWebhooks()).some((w) => w.appId === app)).toBe(true);

        const ts = t + 10;
        await store.persistPushes([
          item(app, { id: 'h1', to: { users: ['u', 'v'] }, ttl: 60 }, { timestamp: ts }),
          item(app, { id: 'h2', to: { users: ['u'] } }, { timestamp: ts }),
          item(
            app,
            { id: 'live', to: { users: ['u'] }, ttl: 0 },
            { timestamp: ts, onlineUsers: new Set(['u']) },
          ),
          item(app, { id: 'topic', to: { topic: 'room' } }, { timestamp: ts }),
        ]);
        // Pushes before the webhook existed and live-only or topic pushes get no hand-off.
        const st = (id: string) =>
          store.getMessageStatus(app, id, ts).then((s) => s!.recipients.map((r) => r.webhook ?? null));
        expect(await st('before')).toEqual([null]);
        expect(await st('live')).toEqual([null]);
        expect(await st('h1')).toEqual(['pending', 'pending']);
        expect(await store.handoffCounts(app)).toEqual({ pending: 3, delivered: 0, failed: 0 });

        const mine = (c: Awaited<ReturnType<Store['claimHandoffs']>>) => c.filter((x) => x.appId === app);
        expect(
          mine(await store.claimHandoffs({ node: 'n1', now: ts + 499, leaseMs: 1000, limit: 100 })),
        ).toEqual([]);
        const claimed = mine(
          await store.claimHandoffs({ node: 'n1', now: ts + 500, leaseMs: 1000, limit: 100 }),
        );
        expect(claimed.map((c) => `${c.userId}:${c.rows.map((r) => r.id).join(',')}`).sort()).toEqual([
          'u:h1,h2',
          'v:h1',
        ]);
        expect(claimed[0]!.rows[0]).toMatchObject({ attempts: 0, deliveryStatus: 0 });
        // Held: nobody else gets them until the lease runs out.
        expect(
          mine(await store.claimHandoffs({ node: 'n2', now: ts + 600, leaseMs: 1000, limit: 100 })),
        ).toEqual([]);
        const u = claimed.find((c) => c.userId === 'u')!;
        const v = claimed.find((c) => c.userId === 'v')!;
        await store.finishHandoffs(u.token, [
          { appId: app, userId: 'u', seq: 2, kind: 'delivered' },
          { appId: app, userId: 'u', seq: 3, kind: 'retry', dueAt: ts + 5000 },
        ]);
        // v's claim lapsed and another node took it over: the first holder's outcome is ignored.
        const taken = mine(
          await store.claimHandoffs({ node: 'n2', now: ts + 1600, leaseMs: 1000, limit: 100 }),
        );
        expect(taken.map((c) => c.userId)).toEqual(['v']);
        await store.finishHandoffs(v.token, [{ appId: app, userId: 'v', seq: 1, kind: 'failed' }]);
        expect(await st('h1')).toEqual(['delivered', 'pending']);
        await store.finishHandoffs(taken[0]!.token, [{ appId: app, userId: 'v', seq: 1, kind: 'failed' }]);
        expect(await st('h1')).toEqual(['delivered', 'failed']);
        const retried = mine(
          await store.claimHandoffs({ node: 'n1', now: ts + 5000, leaseMs: 1000, limit: 100 }),
        );
        expect(retried[0]!.rows.map((r) => [r.id, r.attempts])).toEqual([['h2', 1]]);
        await store.finishHandoffs(retried[0]!.token, [{ appId: app, userId: 'u', seq: 3, kind: 'drop' }]);
        expect(await st('h2')).toEqual([null]);

        // Deleting the webhook drops what is still pending and stops new rows.
        await store.persistPushes([item(app, { id: 'h3', to: { users: ['w'] } })]);
        expect(await store.deleteWebhook(app)).toBe(true);
        expect(await store.deleteWebhook(app)).toBe(false);
        expect(await store.handoffCounts(app)).toEqual({ pending: 0, delivered: 1, failed: 1 });
        await store.persistPushes([item(app, { id: 'h4', to: { users: ['w'] } })]);
        expect(await st('h4')).toEqual([null]);
      }));

    it('cluster resends: a node sees due resends of users it holds or no live node holds, never of users only another node holds', () =>
      withStore(async (store, app) => {
        const [a, b, dead] = [`${app}-a`, `${app}-b`, `${app}-dead`];
        const t = Date.now();
        await store.touchNode(a, t);
        await store.touchNode(b, t);
        await store.touchNode(dead, t - 60_000);
        const open = (user: string, node: string) => ({
          kind: 'open' as const,
          connectionId: `${app}-${user}-${node}`,
          appId: app,
          userId: user,
          device: 'd',
          platform: 'web',
          node,
          at: t,
        });
        // onA: held by a; both: by a and b; gone: only by a dead node; nobody: no connection.
        await store.recordConnections([open('onA', a), open('both', a), open('both', b), open('gone', dead)]);
        const users = ['onA', 'both', 'gone', 'nobody'];
        await store.persistPushes(users.map((u) => item(app, { id: `cr-${u}`, to: { users: [u] } })));
        await store.applyDeliveryUpdates(
          users.map((u) => ({
            kind: 'sent' as const,
            appId: app,
            userId: u,
            seqs: [1],
            at: t,
            retryAt: t + 10,
          })),
        );
        const seen = async (node: string) =>
          (await store.dueRetries(t + 10, 1000, { node, freshSince: t - 1000 }))
            .filter((d) => d.message.appId === app)
            .map((d) => [d.userId, d.onlineElsewhere])
            .sort();
        expect(await seen(a)).toEqual([
          ['both', true],
          ['gone', false],
          ['nobody', false],
          ['onA', false],
        ]);
        expect(await seen(b)).toEqual([
          ['both', true],
          ['gone', false],
          ['nobody', false],
        ]);

        // Two nodes resending one user's message count it once: the second update finds it no longer due.
        await store.updateRetries([
          { kind: 'resent', appId: app, userId: 'both', seq: 1, nextRetryAt: t + 500, dueBy: t + 10 },
        ]);
        await store.updateRetries([
          { kind: 'resent', appId: app, userId: 'both', seq: 1, nextRetryAt: t + 600, dueBy: t + 11 },
          { kind: 'disarm', appId: app, userId: 'both', seq: 1, dueBy: t + 11 },
        ]);
        const status = await store.getMessageStatus(app, 'cr-both', t);
        expect(status?.recipients[0]).toMatchObject({ status: 'sent', retries: 1 });
        expect((await seen(a)).map(([u]) => u)).not.toContain('both');
      }));

    it('cluster topics: subscriptions and $all opt-outs of other live nodes count; closed connections and dead nodes do not', () =>
      withStore(async (store, app) => {
        const [me, other, dead] = [`${app}-me`, `${app}-other`, `${app}-dead`];
        const t = Date.now();
        await store.touchNode(me, t);
        await store.touchNode(other, t);
        await store.touchNode(dead, t - 60_000);
        const open = (id: string, user: string, node: string) => ({
          kind: 'open' as const,
          connectionId: `${app}-${id}`,
          appId: app,
          userId: user,
          device: id,
          platform: 'web',
          node,
          at: t,
        });
        const sub = (id: string, user: string, node: string, topic: string) => ({
          kind: 'subscribe' as const,
          connectionId: `${app}-${id}`,
          appId: app,
          userId: user,
          topic,
          node,
        });
        await store.recordConnections([
          open('m1', 'u1', me),
          open('o1', 'u1', other),
          open('o2', 'u2', other),
          open('o3', 'u3', other),
          open('d1', 'u4', dead),
        ]);
        await store.recordSubscriptions([
          sub('m1', 'u1', me, 'room'),
          sub('o1', 'u1', other, 'room'),
          sub('o2', 'u2', other, 'room'),
          sub('o2', 'u2', other, 'lobby'),
          { kind: 'unsubscribe', connectionId: `${app}-o2`, topic: 'lobby' },
          sub('o3', 'u3', other, '$all-muted'),
          sub('d1', 'u4', dead, 'room'),
        ]);
        const audience = (topic: string, users = true) =>
          store.remoteTopicAudience({ appId: app, topic, exceptNode: me, freshSince: t - 1000, users });
        const room = await audience('room');
        expect(room.connections).toBe(2);
        expect(room.users.sort()).toEqual(['u1', 'u2']);
        expect(await audience('lobby')).toEqual({ connections: 0, users: [] });
        // $all: every online connection of the other live nodes but the one that opted out.
        const all = await audience('$all');
        expect(all.connections).toBe(2);
        expect(all.users.sort()).toEqual(['u1', 'u2']);
        expect(await audience('room', false)).toEqual({ connections: 2, users: [] });

        // A closed connection stops counting at once (its rows go with the next batch).
        await store.recordConnections([{ kind: 'close', connectionId: `${app}-o1`, at: t + 1 }]);
        expect((await audience('room')).users).toEqual(['u2']);
        await store.recordSubscriptions([{ kind: 'close', connectionId: `${app}-o1` }]);
        expect((await audience('room')).connections).toBe(1);

        // A stopped node's subscriptions are forgotten.
        await store.markNodeOffline(other, t + 2);
        expect(await audience('room')).toEqual({ connections: 0, users: [] });
      }));

    it('cluster stats: each node keeps one row of figures; the others read the fresh ones', () =>
      withStore(async (store, app) => {
        const [a, b] = [`${app}-a`, `${app}-b`];
        await store.recordNodeStats(a, 1000, '{"n":1}');
        await store.recordNodeStats(a, 2000, '{"n":2}');
        await store.recordNodeStats(b, 2000, '{"n":3}');
        const mine = (rows: { node: string }[]) => rows.filter((r) => r.node.startsWith(app));
        expect(mine(await store.readNodeStats(b, 1500))).toEqual([{ node: a, at: 2000, stats: '{"n":2}' }]);
        expect(mine(await store.readNodeStats(b, 2500))).toEqual([]);
      }));

    it('apps: save, update and list', () =>
      withStore(async (store, app) => {
        const rec = {
          appId: app,
          secretHash: 'h',
          secretSalt: 's',
          jwtAlg: 'HS256',
          jwtKey: 'k',
          createdAt: 1,
          updatedAt: 1,
        };
        await store.saveApp(rec);
        await store.saveApp({ ...rec, secretHash: 'h2', updatedAt: 2 });
        expect(await store.getApp(app)).toEqual({ ...rec, secretHash: 'h2', updatedAt: 2 });
        expect((await store.listApps()).some((a) => a.appId === app)).toBe(true);
        expect(await store.getApp(`${app}-missing`)).toBeUndefined();
      }));

    it('groups: idempotent edits move the size by rows changed, pages by user id, groups of a user, deletion', () =>
      withStore(async (store, app) => {
        const g = store.groups;
        expect(await g.editMembers(app, 'g1', ['u3', 'u1', 'u2', 'u1'], [])).toBe(3);
        expect(await g.editMembers(app, 'g1', ['u2', 'u4'], ['u1', 'nobody'])).toBe(3);
        expect(await g.editMembers(app, 'g2', ['u2'], [])).toBe(1);
        expect(await g.listMembers(app, 'g1', null, 2)).toEqual(['u2', 'u3']);
        expect(await g.listMembers(app, 'g1', 'u3', 2)).toEqual(['u4']);
        expect(await g.groupsOf(app, 'u2')).toEqual(['g1', 'g2']);
        expect(await g.groupsOf(app, 'u1')).toEqual([]);
        expect(await g.listGroups(app, 10)).toEqual([
          { app, group: 'g1', members: 3 },
          { app, group: 'g2', members: 1 },
        ]);
        // Removing the last member leaves no size row behind.
        expect(await g.editMembers(app, 'g2', [], ['u2'])).toBe(0);
        await g.deleteGroup(app, 'g1');
        expect(await g.listMembers(app, 'g1', null, 10)).toEqual([]);
        expect(await g.listGroups(app, 10)).toEqual([]);
        expect(await g.editMembers(app, 'unknown', [], [])).toBe(0);
        // Groups are per app.
        await g.editMembers(app, 'g3', ['x'], []);
        expect(await g.listMembers(`${app}-other`, 'g3', null, 10)).toEqual([]);
      }));

    it('groups: deleting a group larger than one chunk removes every member', () =>
      withStore(async (store, app) => {
        const users = Array.from({ length: 12_000 }, (_, i) => `m${String(i).padStart(6, '0')}`);
        await store.groups.editMembers(app, 'big', users.slice(0, 10_000), []);
        expect(await store.groups.editMembers(app, 'big', users.slice(10_000), [])).toBe(12_000);
        await store.groups.deleteGroup(app, 'big');
        expect(await store.groups.listMembers(app, 'big', null, 10)).toEqual([]);
        expect(await store.groups.editMembers(app, 'big', [], [])).toBe(0);
      }));

    it('group pushes: batches take the next seq per member, the cursor guards the job, ids are idempotent', () =>
      withStore(async (store, app) => {
        const g = store.groups;
        await store.persistPushes([item(app, { to: { users: ['a'] } })]);
        const push = item(app, { id: 'gp', to: { groups: ['g'] }, data: { hi: 1 } });
        const started = await g.startGroupPush(push, ['g'], 'node-1');
        expect(started.kind).toBe('started');
        if (started.kind !== 'started') return;
        const job = started.job;
        expect(await g.startGroupPush(push, ['g'], 'node-2')).toEqual({ kind: 'running', id: 'gp' });
        expect(await g.groupPushResult(app, 'gp')).toBeNull();
        // A member written ahead of the walk (online first) leaves the cursor where it was.
        expect(await g.writeGroupBatch(job, ['z'], null, null)).toEqual([
          { user: 'z', seq: 1, devices: null },
        ]);
        expect(job.afterUser).toBeNull();
        expect(await g.writtenAhead(job)).toEqual(['z']);
        const first = await g.writeGroupBatch(job, ['a', 'b'], null, 'b');
        expect(first).toEqual([
          { user: 'a', seq: 2, devices: null },
          { user: 'b', seq: 1, devices: null },
        ]);
        const open = (await g.openGroupPushes()).find((j) => j.messagePk === job.messagePk)!;
        expect(open).toMatchObject({ node: 'node-1', afterUser: 'b', written: 3, groups: ['g'] });
        expect(await g.writtenAhead(open)).toEqual(['z']);
        expect(open.message.id).toBe('gp');
        // Another node adopts the job: the old writer's next batch is refused and writes nothing.
        expect(await g.claimGroupPush(job.messagePk, 'node-1', 'node-2')).toBe(true);
        expect(await g.claimGroupPush(job.messagePk, 'node-1', 'node-3')).toBe(false);
        await expect(g.writeGroupBatch(job, ['c'], null, 'c')).rejects.toThrow(/another node/);
        expect(await store.lastSeq(app, 'c')).toBe(0);
        open.node = 'node-2';
        expect(await g.writeGroupBatch(open, ['c'], null, 'c')).toEqual([
          { user: 'c', seq: 1, devices: null },
        ]);
        await g.finishGroupPush(open);
        expect((await g.openGroupPushes()).some((j) => j.messagePk === job.messagePk)).toBe(false);
        expect(await g.groupPushResult(app, 'gp')).toBe(4);
        expect(await g.startGroupPush(push, ['g'], 'node-1')).toEqual({
          kind: 'duplicate',
          id: 'gp',
          recipients: 4,
        });
        const other = item(app, { id: 'gp', to: { groups: ['g'] }, data: { hi: 2 } });
        expect(await g.startGroupPush(other, ['g'], 'node-1')).toEqual({ kind: 'conflict', id: 'gp' });
        // Members read it like any user message, in seq order.
        const backlog = await store.readUserMessages({
          appId: app,
          userId: 'a',
          afterSeq: 0,
          unackedOnly: true,
          limit: 10,
          now: Date.now(),
        });
        expect(backlog.map((m) => [m.seq, m.message.id === 'gp'])).toEqual([
          [1, false],
          [2, true],
        ]);
        const status = await store.getMessageStatus(app, 'gp', Date.now());
        expect(status?.recipients.map((r) => r.user)).toEqual(['a', 'b', 'c', 'z']);
        expect(status?.to).toEqual({ groups: ['g'] });
      }));

    it('group pushes: batches written ahead of the walk at once (aheadWriters) each commit whole', () =>
      withStore(async (store, app) => {
        const g = store.groups;
        expect(g.aheadWriters).toBeGreaterThanOrEqual(1);
        const started = await g.startGroupPush(item(app, { id: 'par', to: { groups: ['g'] } }), ['g'], 'n1');
        if (started.kind !== 'started') throw new Error(started.kind);
        const job = started.job;
        const users = Array.from({ length: 2_000 }, (_, i) => `m${String(i).padStart(4, '0')}`);
        const parts = Array.from({ length: 8 }, (_, k) => users.slice(k * 250, (k + 1) * 250));
        // As many at once as the store allows and more: a store that runs one transaction at
        // a time queues them; one that runs them in parallel must neither deadlock nor lose a count.
        const routed = await Promise.all(parts.map((part) => g.writeGroupBatch(job, part, null, null)));
        expect(routed.flat().map((r) => [r.user, r.seq])).toEqual(users.map((u) => [u, 1]));
        expect(job).toMatchObject({ afterUser: null, written: 2_000 });
        const open = (await g.openGroupPushes()).find((j) => j.messagePk === job.messagePk)!;
        expect(open).toMatchObject({ afterUser: null, written: 2_000 });
        expect((await g.writtenAhead(open)).sort()).toEqual(users);
        // An adopted job refuses the old writer's parallel batches, all of them, and none is written.
        expect(await g.claimGroupPush(job.messagePk, 'n1', 'n2')).toBe(true);
        const late = await Promise.allSettled(
          [['x1'], ['x2'], ['x3']].map((part) => g.writeGroupBatch(job, part, null, null)),
        );
        expect(late.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
        for (const u of ['x1', 'x2', 'x3']) expect(await store.lastSeq(app, u)).toBe(0);
      }));

    it('online members of groups: connections online on live nodes, each member once', () =>
      withStore(async (store, app) => {
        await store.groups.editMembers(app, 'g1', ['on1', 'on2', 'off', 'stale'], []);
        await store.groups.editMembers(app, 'g2', ['on2', 'on3'], []);
        await store.touchNode(`live-${app}`, 10_000);
        await store.touchNode(`dead-${app}`, 1_000);
        const open = (id: string, user: string, node: string) =>
          ({
            kind: 'open',
            connectionId: `${app}-${id}`,
            appId: app,
            userId: user,
            device: id,
            platform: 'p',
            node,
            at: 1,
          }) as const;
        await store.recordConnections([
          open('c1', 'on1', `live-${app}`),
          open('c2', 'on2', `live-${app}`),
          open('c3', 'on2', `live-${app}`),
          open('c4', 'on3', `live-${app}`),
          open('c5', 'off', `live-${app}`),
          open('c6', 'stale', `dead-${app}`),
          open('c7', 'stranger', `live-${app}`),
        ]);
        await store.recordConnections([{ kind: 'close', connectionId: `${app}-c5`, at: 2 }]);
        const online = await store.groups.onlineMembers(app, ['g1', 'g2'], 5_000);
        expect(online.sort()).toEqual(['on1', 'on2', 'on3']);
        expect((await store.groups.onlineMembers(app, ['g2'], 5_000)).sort()).toEqual(['on2', 'on3']);
        await store.markNodeOffline(`live-${app}`, 20_000);
        await store.markNodeOffline(`dead-${app}`, 20_000);
      }));

    it('group pushes with ttl 0 expire the members offline at once', () =>
      withStore(async (store, app) => {
        const started = await store.groups.startGroupPush(
          item(app, { to: { groups: ['g'] }, ttl: 0 }),
          ['g'],
          'n',
        );
        if (started.kind !== 'started') throw new Error(started.kind);
        const routed = await store.groups.writeGroupBatch(started.job, ['on', 'off'], new Set(['on']), 'on');
        expect(routed.map((r) => r.user)).toEqual(['on']);
        const status = await store.getMessageStatus(app, started.job.message.id, Date.now());
        expect(status?.recipients.map((r) => [r.user, r.status])).toEqual([
          ['off', 'expired'],
          ['on', 'pending'],
        ]);
      }));

    it('topic settings: saved per app and topic, 0 removes them', () =>
      withStore(async (store, app) => {
        await store.groups.saveTopicSettings(app, 'room', 250);
        await store.groups.saveTopicSettings(app, 'room', 1000);
        await store.groups.saveTopicSettings(app, 'other', 5);
        await store.groups.saveTopicSettings(app, 'other', 0);
        const mine = (await store.groups.listTopicSettings()).filter((s) => s.appId === app);
        expect(mine).toEqual([{ appId: app, topic: 'room', mergeMs: 1000 }]);
      }));
  });
}
