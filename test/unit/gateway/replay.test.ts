import { describe, expect, it } from 'vitest';
import { Gateway, type GatewayDeps, type GatewayOptions } from '../../../src/gateway/gateway.js';
import { Hub } from '../../../src/gateway/hub.js';
import { LIVE, Session } from '../../../src/gateway/session.js';
import { createLogger } from '../../../src/observability/logger.js';
import { createMetrics } from '../../../src/observability/metrics.js';
import type { BacklogQuery } from '../../../src/store/store.js';
import { message, noEvents } from './fixtures.js';

/**
 * A gateway over a store that holds one user's seqs 1..`last`, recording the backlog reads
 * the replay makes; the session's socket records what it was sent.
 */
function setup(last: number) {
  const reads: BacklogQuery[] = [];
  const sent: string[] = [];
  const store = {
    lastSeq: async () => last,
    readUserMessages: async (q: BacklogQuery) => {
      reads.push(q);
      return Array.from({ length: Math.max(0, last - q.afterSeq) }, (_, i) => ({
        seq: q.afterSeq + i + 1,
        devices: null,
        message: message(`m${q.afterSeq + i + 1}`),
      }));
    },
  };
  const hub = new Hub('n1', { coalesceMs: 0, maxSendBufferBytes: 1 << 20 }, noEvents);
  const deps = {
    hub,
    store,
    status: { markSent: () => {} },
    metrics: createMetrics(),
    log: createLogger('silent'),
  } as unknown as GatewayDeps;
  const options = { nodeId: 'n1', heartbeatMs: 15_000, limits: { handshakesPerSecondPerIp: 100 } };
  const gateway = new Gateway(options as unknown as GatewayOptions, deps);
  const transport = {
    send: (d: string | Buffer, cb?: (err?: Error) => void) => {
      sent.push(String(d));
      cb?.();
    },
    bufferedAmount: 0,
    ping: () => {},
    close: () => {},
    terminate: () => {},
  };
  const session = new Session('c1', 'a', 'u', 'd', 'web', transport, Date.now() + 60_000, null, 0, 100);
  hub.register(session);
  return { gateway, session, reads, sent };
}

describe('backlog replay', () => {
  it('reads the backlog when the user has messages past the resume point, and sends them', async () => {
    const { gateway, session, reads, sent } = setup(3);
    await gateway.replay(session, 1);
    expect(reads.map((q) => q.afterSeq)).toEqual([1]);
    expect(sent.join()).toContain('"seq":2');
    expect(sent.join()).toContain('"seq":3');
    expect(session.state).toBe(LIVE);
    expect(session.lastSeq).toBe(3);
  });

  it('without since, reads the unacked backlog from the start', async () => {
    const { gateway, session, reads } = setup(2);
    await gateway.replay(session, null);
    expect(reads).toMatchObject([{ afterSeq: 0, unackedOnly: true }]);
  });

  it('makes no backlog read when nothing is past the resume point, and goes live at the newest seq', async () => {
    for (const [last, since] of [
      [0, null], // a user who was never sent anything
      [5, 5], // a resume with since = the newest seq
      [5, 9], // since ahead of the store (nothing newer either)
    ] as const) {
      const { gateway, session, reads, sent } = setup(last);
      await gateway.replay(session, since);
      expect(reads, `last ${last}, since ${since}`).toEqual([]);
      expect(sent).toEqual([]);
      expect(session.state).toBe(LIVE);
      expect(session.lastSeq).toBe(Math.max(last, since ?? 0));
    }
  });
});
