import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';

describe('$all replay: subscribing with since replays, then live, each offset once and in order', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ PUSH_RESEND_MS: '60000' });
  });
  afterAll(() => t.stop());

  it('replays offsets after since and orders live broadcasts that race the replay', async () => {
    for (let i = 1; i <= 30; i++) expect((await t.push({ to: { all: true }, data: { i } })).status).toBe(202);
    const c = await TestClient.open(t.ws, { app: 'a', token: await t.token('all-replayer') });
    c.send({ op: 'subscribe', topic: '$all', since: 0, ref: 's' });
    // Live broadcasts while the replay is running.
    const live = Promise.all(
      Array.from({ length: 10 }, (_, i) => t.push({ to: { all: true }, data: { i: 31 + i } })),
    );
    const subscribed = await c.next((f) => f.ref === 's');
    expect(subscribed).toMatchObject({ op: 'subscribed', topic: '$all' });
    await live;
    const got = await c.messages(40);
    expect(got.map((m) => m.offset)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    await c.close();
  });
});
