import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startServer, type TestServer } from '../helpers/server.js';

/** Raw frames as they arrive, not flattened. */
async function rawClient(
  url: string,
): Promise<{ frames: unknown[]; waitFor: (n: number) => Promise<void>; ws: WebSocket }> {
  const frames: unknown[] = [];
  const ws = new WebSocket(url);
  let onFrame = () => {};
  ws.on('message', (d) => {
    frames.push(JSON.parse(d.toString()));
    onFrame();
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const count = () =>
    frames.flatMap((f) => (Array.isArray(f) ? f : [f])).filter((f: any) => f.op === 'message').length;
  return {
    frames,
    ws,
    waitFor: (n) =>
      new Promise<void>((resolve) => {
        onFrame = () => count() >= n && resolve();
        onFrame();
      }),
  };
}

describe('coalescing: messages for one connection within the window go out as one array frame', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ PUSH_COALESCE_MS: '20', PUSH_RESEND_MS: '60000' });
  });
  afterAll(() => t.stop());

  it('a batch of three to one user arrives as one JSON array of full message objects, in seq order', async () => {
    const c = await rawClient(`${t.ws}?app=a&token=${await t.token('coal')}`);
    const res = await t.api('POST', '/v1/push/batch', {
      messages: [1, 2, 3].map((i) => ({ to: { users: ['coal'] }, data: { i } })),
    });
    expect(res.status).toBe(200);
    await c.waitFor(3);
    const messageFrames = c.frames.filter((f: any) => Array.isArray(f) || f.op === 'message');
    expect(messageFrames).toHaveLength(1);
    const arr = messageFrames[0] as any[];
    expect(Array.isArray(arr)).toBe(true);
    expect(arr.map((m) => [m.op, m.seq, m.data.i])).toEqual([
      ['message', 1, 1],
      ['message', 2, 2],
      ['message', 3, 3],
    ]);
    c.ws.close();
  });
});
