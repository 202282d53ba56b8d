import { describe, expect, it } from 'vitest';
import type { Bus, Envelope } from '../../src/bus/bus.js';
import type { StoredMessage } from '../../src/domain/message.js';

const message = (i: number): StoredMessage => ({
  appId: 'a',
  id: `m${i}`,
  type: 'message',
  timestamp: 1000 + i,
  ttl: null,
  expiresAt: null,
  dataJson: JSON.stringify({ i, text: 'héllo "quoted"' }),
  platforms: null,
  topic: null,
  offset: null,
});

const envelope = (i: number): Envelope => ({
  kind: 'users',
  message: message(i),
  recipients: [{ user: 'u', seq: i, devices: null }],
});

/** The message id of a message envelope; the user of a kick. */
const idOf = (e: Envelope) => (e.kind === 'kick' || e.kind === 'revoke' ? e.userId : e.message.id);

/** Collects what a handler receives and resolves when `n` have arrived. */
function collector() {
  const got: Envelope[] = [];
  let waiter: { n: number; resolve: () => void } | null = null;
  return {
    got,
    handler: (e: Envelope) => {
      got.push(e);
      if (waiter && got.length >= waiter.n) waiter.resolve();
    },
    until: (n: number) =>
      new Promise<void>((resolve, reject) => {
        if (got.length >= n) return resolve();
        const timer = setTimeout(() => reject(new Error(`only ${got.length}/${n} envelopes arrived`)), 5000);
        waiter = {
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
      }),
  };
}

/**
 * The bus contract (src/bus/bus.ts) for a pair of nodes built by `makeNode(nodeId)`: the
 * publisher's own handlers get an envelope at once and exactly once (no echo), every other
 * node gets it once, in publish order, with the message intact.
 */
export function busContract(name: string, makeNode: (nodeId: string) => Promise<Bus>, shared = true): void {
  describe(`bus contract: ${name}`, () => {
    it('delivers to the publishing node synchronously and exactly once', async () => {
      const a = await makeNode(`a-${Math.random()}`);
      try {
        const mine = collector();
        a.subscribe(mine.handler);
        await a.ready();
        a.publish(envelope(1));
        a.publish(envelope(2));
        expect(mine.got.map(idOf)).toEqual(['m1', 'm2']);
      } finally {
        await a.close();
      }
    });

    if (!shared) return;
    it('reaches every other node once, in publish order, intact', async () => {
      const a = await makeNode(`a-${Math.random()}`);
      const b = await makeNode(`b-${Math.random()}`);
      try {
        const atA = collector();
        const atB = collector();
        a.subscribe(atA.handler);
        b.subscribe(atB.handler);
        await b.ready();
        for (let i = 1; i <= 500; i++) a.publish(envelope(i));
        await atB.until(500);
        expect(atB.got.map((e) => (e.kind === 'users' ? e.recipients[0]!.seq : -1))).toEqual(
          Array.from({ length: 500 }, (_, i) => i + 1),
        );
        expect(atB.got[0]).toEqual(envelope(1));
        // A got its own 500 exactly once (echoes dropped): publish a marker from B and wait for it at A.
        b.publish(envelope(999));
        await atA.until(501);
        expect(atA.got.filter((e) => idOf(e) === 'm1')).toHaveLength(1);
        expect(atA.got).toHaveLength(501);
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('carries topic messages and kicks to the other nodes', async () => {
      const a = await makeNode(`a-${Math.random()}`);
      const b = await makeNode(`b-${Math.random()}`);
      try {
        const atB = collector();
        b.subscribe(atB.handler);
        await b.ready();
        const topic: Envelope = { kind: 'topic', message: { ...message(7), topic: 'room:1', offset: 3 } };
        const kick: Envelope = { kind: 'kick', appId: 'a', userId: 'u', device: 'phone' };
        a.publish(topic);
        a.publish(kick);
        await atB.until(2);
        expect(atB.got).toEqual([topic, kick]);
      } finally {
        await a.close();
        await b.close();
      }
    });
  });
}
