import { describe, expect, it } from 'vitest';
import type { Bus, Envelope } from '../../src/bus/bus.js';
import { SPLIT_MAX_RECIPIENTS } from '../../src/bus/interest.js';
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

const envelope = (i: number, user = 'u'): Envelope => ({
  kind: 'users',
  message: message(i),
  recipients: [{ user, seq: i, devices: null }],
});

/** The message id of a message envelope; the user of a kick; the topic of a room notice; the kind of any other. */
const idOf = (e: Envelope) =>
  e.kind === 'kick' || e.kind === 'revoke_tokens'
    ? e.userId
    : e.kind === 'room'
      ? e.topic
      : e.kind === 'users' || e.kind === 'topic'
        ? e.message.id
        : e.kind;

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
 * node that listens for it gets it once, in publish order, with the message intact; a node
 * gets only what it listens for (routing by interest) and what goes to every node.
 */
export function busContract(
  name: string,
  makeNode: (nodeId: string, namespace: string) => Promise<Bus>,
  shared = true,
  routed = true,
): void {
  // Each run its own namespace: suites running at once on one broker never hear each other.
  const namespace = `contract-${Math.random().toString(36).slice(2, 10)}`;
  const node = (nodeId: string) => makeNode(nodeId, namespace);
  describe(`bus contract: ${name}`, () => {
    it('delivers to the publishing node synchronously and exactly once', async () => {
      const a = await node(`a-${Math.random()}`);
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
    it('never crosses into another namespace (another cluster on the same broker)', async () => {
      const other = `${namespace}-other`;
      const a = await node(`a-${Math.random()}`);
      const sameCluster = await node(`c-${Math.random()}`);
      const otherCluster = await makeNode(`b-${Math.random()}`, other);
      const otherPublisher = await makeNode(`d-${Math.random()}`, other);
      try {
        const atSame = collector();
        const atOther = collector();
        sameCluster.subscribe(atSame.handler);
        otherCluster.subscribe(atOther.handler);
        await Promise.all([sameCluster.ready(), otherCluster.ready(), otherPublisher.ready()]);
        const notice = (topic: string): Envelope => ({ kind: 'room', appId: 'a', topic, mergeMs: 0 });
        a.publish(notice('from-a'));
        await atSame.until(1);
        // Published after A's reached the broker's subscribers: had A's leaked into the other
        // namespace, the other cluster would have received it before this one.
        otherPublisher.publish(notice('from-other'));
        await atOther.until(1);
        expect(atSame.got.map(idOf)).toEqual(['from-a']);
        expect(atOther.got.map(idOf)).toEqual(['from-other']);
      } finally {
        await Promise.all([a, sameCluster, otherCluster, otherPublisher].map((b) => b.close()));
      }
    });

    it('reaches every other node once, in publish order, intact', async () => {
      const a = await node(`a-${Math.random()}`);
      const b = await node(`b-${Math.random()}`);
      try {
        const atA = collector();
        const atB = collector();
        a.subscribe(atA.handler);
        b.subscribe(atB.handler);
        await b.ready();
        await a.listen([{ kind: 'user', appId: 'a', userId: 'u' }]);
        await b.listen([{ kind: 'user', appId: 'a', userId: 'u' }]);
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

    it('carries topic messages, kicks and room notices to the other nodes', async () => {
      const a = await node(`a-${Math.random()}`);
      const b = await node(`b-${Math.random()}`);
      try {
        const atB = collector();
        b.subscribe(atB.handler);
        await b.ready();
        await b.listen([
          { kind: 'topic', appId: 'a', topic: 'room:1' },
          { kind: 'user', appId: 'a', userId: 'u' },
        ]);
        const topic: Envelope = { kind: 'topic', message: { ...message(7), topic: 'room:1', offset: 3 } };
        const kick: Envelope = { kind: 'kick', appId: 'a', userId: 'u', device: 'phone' };
        const room: Envelope = { kind: 'room', appId: 'a', topic: 'room:1', mergeMs: 250 };
        a.publish(topic);
        a.publish(kick);
        a.publish(room);
        await atB.until(3);
        expect(atB.got).toEqual([topic, kick, room]);
      } finally {
        await a.close();
        await b.close();
      }
    });

    if (!routed) return;
    it('routes by interest: a node gets the users, topics and apps it listens to, and what goes to every node', async () => {
      const a = await node(`a-${Math.random()}`);
      const b = await node(`b-${Math.random()}`);
      try {
        const atB = collector();
        b.subscribe(atB.handler);
        await b.ready();
        // Ids with every kind of character an id may hold (user ids are any Unicode text).
        const mine = 'ü.s*e>r 1:ok';
        await b.listen([
          { kind: 'user', appId: 'a', userId: mine },
          { kind: 'topic', appId: 'a', topic: 'room:b' },
          { kind: 'app', appId: 'a' },
        ]);
        const topic = (t: string, i: number): Envelope => ({
          kind: 'topic',
          message: { ...message(i), topic: t, offset: i },
        });
        const many = Array.from({ length: SPLIT_MAX_RECIPIENTS + 1 }, (_, i) => ({
          user: `other-${i}`,
          seq: 1,
          devices: null,
        }));
        a.publish(envelope(1, 'someone-else'));
        a.publish(envelope(2, mine));
        a.publish(topic('room:a', 3));
        a.publish(topic('room:b', 4));
        a.publish(topic('$all', 5));
        a.publish({
          kind: 'topic',
          message: { ...message(6), appId: 'other-app', topic: '$all', offset: 6 },
        });
        // A short list is split per user: B gets its user's share only.
        a.publish({
          kind: 'users',
          message: message(7),
          recipients: [
            { user: 'x', seq: 1, devices: null },
            { user: mine, seq: 7, devices: ['d'] },
          ],
        });
        // A long one goes to every node once, whole.
        a.publish({ kind: 'users', message: message(8), recipients: many });
        a.publish({ kind: 'kick', appId: 'a', userId: 'nobody-here' });
        a.publish({ kind: 'kick', appId: 'a', userId: mine });
        await atB.until(6);
        expect(atB.got.map((e) => (e.kind === 'kick' ? `kick:${e.userId}` : idOf(e)))).toEqual([
          'm2',
          'm4',
          'm5',
          'm7',
          'm8',
          `kick:${mine}`,
        ]);
        expect(atB.got[3]).toMatchObject({ recipients: [{ user: mine, seq: 7, devices: ['d'] }] });
        expect(atB.got[4]).toMatchObject({ recipients: many });
        expect(b.framesReceived).toBe(6);

        // After unlisten only what goes to every node arrives (the marker proves nothing else came first).
        b.unlisten([{ kind: 'user', appId: 'a', userId: mine }]);
        await b.ready();
        a.publish(envelope(9, mine));
        a.publish({ kind: 'users', message: message(10), recipients: many });
        await atB.until(7);
        expect(atB.got.at(-1)).toMatchObject({ message: { id: 'm10' } });
        expect(atB.got).toHaveLength(7);
      } finally {
        await a.close();
        await b.close();
      }
    });
  });
}
