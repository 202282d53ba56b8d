import { describe, expect, it } from 'vitest';
import { STATUS_CODE, type Target } from '../../../src/domain/message.js';
import {
  buildDeliveries,
  buildHandoffs,
  buildMessages,
  counterKey,
  finishOutcomes,
  handoffApps,
  idsToCheck,
  planBatch,
} from '../../../src/store/sql/persist-plan.js';
import type { PersistItem } from '../../../src/store/store.js';

function item(
  to: Target,
  opts: {
    id?: string | null;
    app?: string;
    ttl?: number | null;
    online?: string[];
    connections?: number;
  } = {},
): PersistItem {
  const id = opts.id ?? null;
  return {
    appId: opts.app ?? 'a',
    request: { id, type: 't', to, platforms: null, data: 1, dataJson: '1', ttl: opts.ttl ?? null },
    fingerprint: id === null ? '' : `fp-${JSON.stringify(to)}`,
    messageId: id ?? `gen-${Math.random()}`,
    timestamp: 1000,
    onlineUsers: opts.online ? new Set(opts.online) : null,
    connectionCount: opts.connections ?? 0,
  };
}

/** The counters' values after the batch, as a driver would read them back from `start`. */
function ends(needs: readonly { appId: string; name: string; n: number }[], start = 0) {
  return new Map(needs.map((n) => [counterKey(n.appId, n.name), start + n.n]));
}

describe('persist planning', () => {
  it('looks up only client-chosen ids, by app', () => {
    const ids = idsToCheck([
      item({ users: ['u'] }, { id: 'm1' }),
      item({ users: ['u'] }),
      item({ users: ['u'] }, { id: 'm2', app: 'b' }),
    ]);
    expect([...ids]).toEqual([
      ['a', ['m1']],
      ['b', ['m2']],
    ]);
  });

  it('answers a stored id as duplicate or conflict by fingerprint, also within the batch', () => {
    const same = item({ users: ['u'] }, { id: 'm1' });
    const other = item({ users: ['v'] }, { id: 'm1' });
    const fresh = item({ users: ['u'] }, { id: 'm2' });
    const again = item({ users: ['u'] }, { id: 'm2' });
    const known = new Map([[counterKey('a', 'm1'), { fingerprint: same.fingerprint, recipients: 3 }]]);
    const plan = planBatch([same, other, fresh, again], known);
    expect(plan.outcomes[0]).toEqual({ kind: 'duplicate', id: 'm1', recipients: 3 });
    expect(plan.outcomes[1]).toEqual({ kind: 'conflict', id: 'm1' });
    expect(plan.outcomes[3]).toEqual({ kind: 'duplicate', id: 'm2', recipients: 1 });
    expect(plan.fresh.map((f) => f.index)).toEqual([2]);
    expect(known.size).toBe(1); // the caller's map is left alone
  });

  it('allocates consecutive seqs per user and offsets per topic, in item order', () => {
    const items = [
      item({ users: ['u', 'v', 'u'] }),
      item({ users: ['u'] }),
      item({ topic: 'news' }, { connections: 7 }),
      item({ topic: 'news' }),
    ];
    const plan = planBatch(items, new Map());
    expect(plan.seqNeeds).toEqual([
      { appId: 'a', name: 'u', n: 2 },
      { appId: 'a', name: 'v', n: 1 },
    ]);
    expect(plan.offsetNeeds).toEqual([{ appId: 'a', name: 'news', n: 2 }]);
    const { rows, stored } = buildMessages(items, plan, ends(plan.seqNeeds, 10), ends(plan.offsetNeeds, 4));
    expect(stored[0]!.recipients).toEqual([
      { user: 'u', devices: null, seq: 11 },
      { user: 'v', devices: null, seq: 11 },
    ]);
    expect(stored[1]!.recipients).toEqual([{ user: 'u', devices: null, seq: 12 }]);
    expect(stored.slice(2).map((s) => s.message.offset)).toEqual([5, 6]);
    expect(rows.map((r) => r.recipients)).toEqual([2, 1, 7, 0]);
  });

  it('stores ttl 0 deliveries of offline users as expired and routes only the online ones', () => {
    const items = [
      item({ users: ['on', 'off'] }, { ttl: 0, online: ['on'] }),
      item({ users: ['x'] }, { ttl: 60 }),
    ];
    const plan = planBatch(items, new Map());
    const { stored } = buildMessages(items, plan, ends(plan.seqNeeds), new Map());
    const pks = new Map(stored.map((s, i) => [counterKey('a', s.message.id), 100 + i]));
    const rows = buildDeliveries(stored, pks);
    expect(rows.map((r) => [r.user_id, r.status, r.live_only, r.expires_at, r.message_pk])).toEqual([
      ['on', STATUS_CODE.pending, 1, null, 100],
      ['off', STATUS_CODE.expired, 1, null, 100],
      ['x', STATUS_CODE.pending, 0, 61_000, 101],
    ]);
    const outcomes = finishOutcomes(plan, stored);
    expect(outcomes.map((o) => (o.kind === 'stored' ? o.recipients.map((r) => r.user) : o.kind))).toEqual([
      ['on'],
      ['x'],
    ]);
  });

  it('plans hand-offs only for durable messages of apps with a webhook', () => {
    const items = [
      item({ users: ['u'] }, { ttl: 0, online: ['u'] }),
      item({ users: ['u'] }),
      item({ users: ['w'] }, { app: 'b', ttl: 30 }),
      item({ topic: 't' }),
    ];
    const plan = planBatch(items, new Map());
    const { stored } = buildMessages(items, plan, ends(plan.seqNeeds), ends(plan.offsetNeeds));
    expect(handoffApps(stored)).toEqual(['a', 'b']);
    const pks = new Map(stored.map((s, i) => [counterKey(s.message.appId, s.message.id), i + 1]));
    const rows = buildHandoffs(stored, pks, new Map([['b', 500]]));
    expect(rows).toEqual([
      { app_id: 'b', user_id: 'w', seq: 1, message_pk: 3, due_at: 1500, give_up_at: 31_000 },
    ]);
  });
});
