import { once } from 'node:events';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { startServer } from '../helpers/server.js';
import { poll, SseClient } from '../helpers/sse.js';
import { waitUntil } from '../helpers/wait.js';

describe('graceful stop with clients that hold HTTP connections', () => {
  it('ends SSE streams and held polls, and cuts a half-sent request instead of waiting for it', async () => {
    const t = await startServer({ PUSH_SHUTDOWN_TIMEOUT_MS: '1000' });
    const sse = await SseClient.open(t.http, { app: 'a', token: await t.token('held-sse') });
    const held = poll(t.http, { app: 'a', token: await t.token('held-poll'), timeout: 30 });
    await waitUntil(async () => (await t.api('GET', '/v1/users/held-poll/presence')).body.online === true);
    // A request whose body never finishes: only the shutdown bound can end it. `expect:
    // 100-continue` makes the server say when it has parsed the headers, so the request is
    // in flight (not an idle connection) when the stop begins.
    const raw = connect(t.port, '127.0.0.1');
    raw.on('error', () => {}); // a reset is as good as an end here
    const rawClosed = once(raw, 'close');
    await once(raw, 'connect');
    raw.write(
      `POST /v1/push HTTP/1.1\r\nhost: x\r\nauthorization: ${t.auth()}\r\nexpect: 100-continue\r\n` +
        'content-type: application/json\r\ncontent-length: 100\r\n\r\n',
    );
    const [interim] = (await once(raw, 'data')) as [Buffer];
    expect(interim.toString()).toMatch(/^HTTP\/1\.1 100 Continue/);
    raw.write('{"to":');
    await t.server.stop();

    await sse.whenEnded();
    expect(sse.events.map((e) => e.event)).toContain('welcome');
    const answer = await held;
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ messages: [] });
    await rawClosed;
    expect(raw.destroyed).toBe(true);
    await t.stop(); // idempotent: removes the data directory
  });
});
