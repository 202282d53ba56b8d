import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';

describe('long-poll outlives the heartbeat', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ PUSH_HEARTBEAT_MS: '200' });
  });
  afterAll(() => t.stop());

  it('a poll held longer than two heartbeat intervals ends with an empty list at its timeout, not a dropped connection', async () => {
    const token = await t.token('patient');
    const started = Date.now();
    const res = await fetch(`${t.http}/v1/poll?app=a&timeout=1&since=0`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ messages: [] });
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  });
});
