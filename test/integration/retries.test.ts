import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { waitUntil } from '../helpers/wait.js';

const RESEND_MS = 200;

describe('retry scheduler: unacked messages are resent with backoff, then failed', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ PUSH_RESEND_MS: String(RESEND_MS), PUSH_MAX_RETRIES: '2' });
  });
  afterAll(() => t.stop());

  it('resends an unacked message after resend_ms, then 3× later, then marks it failed and replays it on reconnect', async () => {
    const token = await t.token('rita');
    const c = await TestClient.open(t.ws, { app: 'a', token });
    const pushed = await t.push({ id: 'retry-me', to: { users: ['rita'] }, data: { n: 1 } });
    expect(pushed.status).toBe(202);

    const arrivals: number[] = [];
    for (let i = 0; i < 3; i++) {
      const m = await c.next((f) => f.op === 'message' && f.id === 'retry-me', 5000);
      expect(m.seq).toBe(1);
      arrivals.push(Date.now());
    }
    // When the server wrote it first (`sent_at`): the first resend is due resend_ms after that.
    // Measured from the client's first receipt instead, the gap shrank by however late this
    // loaded process read the first frame (169 ms once in CI).
    const sentAt = (await t.api('GET', '/v1/messages/retry-me')).body.recipients[0].sent_at as number;
    expect(sentAt).toBeLessThanOrEqual(arrivals[0]!);
    const gap1 = arrivals[1]! - sentAt;
    const gap2 = arrivals[2]! - arrivals[1]!;
    // First resend after resend_ms, the second ~3× later (the scheduler ticks every resend_ms/4).
    expect(gap1).toBeGreaterThanOrEqual(RESEND_MS);
    expect(gap2).toBeGreaterThanOrEqual(3 * RESEND_MS - 20);

    // After the last allowed resend the next due time marks it failed, with the retry count shown.
    const failed = await waitUntil(async () => {
      const s = await t.api('GET', '/v1/messages/retry-me');
      return s.body.recipients[0].status === 'failed' ? s.body.recipients[0] : null;
    }, 10_000);
    expect(failed.retries).toBe(2);
    await c.close();

    // Failed messages are replayed on the next connection.
    const again = await TestClient.open(t.ws, { app: 'a', token });
    const [m] = await again.messages(1);
    expect(m).toMatchObject({ id: 'retry-me', seq: 1 });
    await again.close();
  });

  it('does not resend an acked message (an unacked one is the clock)', async () => {
    const c = await TestClient.open(t.ws, { app: 'a', token: await t.token('ana') });
    const first = await t.push({ id: 'ana-1', to: { users: ['ana'] }, data: {} });
    await c.next((f) => f.id === 'ana-1');
    expect(await c.request({ op: 'ack', seq: 1 })).toMatchObject({ op: 'ok' });
    await t.push({ id: 'ana-2', to: { users: ['ana'] }, data: {} });
    await c.next((f) => f.id === 'ana-2');
    // Wait until ana-2 is resent: by then ana-1 would have been resent too.
    await c.next((f) => f.id === 'ana-2', 5000);
    expect(c.frames.filter((f) => f.id === 'ana-1')).toHaveLength(1);
    const status = await t.api('GET', `/v1/messages/${first.body.id}`);
    expect(status.body.recipients[0]).toMatchObject({ status: 'acked', retries: 0 });
    await c.close();
  });

  it('a user without a live connection is not resent to; the backlog on reconnect re-arms the resend', async () => {
    const token = await t.token('otto');
    const c = await TestClient.open(t.ws, { app: 'a', token });
    await t.push({ id: 'otto-1', to: { users: ['otto'] }, data: {} });
    await c.next((f) => f.id === 'otto-1');
    await c.close();
    const back = await TestClient.open(t.ws, { app: 'a', token });
    await back.next((f) => f.id === 'otto-1'); // backlog
    await back.next((f) => f.id === 'otto-1', 5000); // resent again on the new connection
    await back.close();
  });
});
