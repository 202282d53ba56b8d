import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startServer, type TestServer } from '../helpers/server.js';

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
}

/** One raw HTTP exchange with exact headers (fetch would add or refuse some); the body is dropped. */
function exchange(
  s: TestServer,
  method: string,
  path: string,
  headers: Record<string, string>,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${s.http}${path}`, { method, headers }, (res) => {
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
      res.destroy();
    });
    req.on('error', reject);
    req.end();
  });
}

/** The status of a socket handshake with `origin` (101 when it opened). */
function socketStatus(s: TestServer, token: string, origin?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${s.ws}?app=a&token=${token}`, origin === undefined ? {} : { origin });
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.destroy();
    });
    ws.once('error', (err) => {
      if (!/Unexpected server response/.test(err.message)) reject(err);
    });
  });
}

describe('PUSH_ALLOWED_ORIGINS unset: no cross-origin page is admitted', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.stop());

  it('refuses a socket from another origin with 403, admits the same host and clients without Origin', async () => {
    const token = await s.token('u1');
    expect(await socketStatus(s, token, 'https://evil.example')).toBe(403);
    expect(await socketStatus(s, token, `http://127.0.0.1:${s.port}`)).toBe(101);
    expect(await socketStatus(s, token)).toBe(101);
  });

  it('answers no CORS to a cross-origin preflight or request on the client API', async () => {
    const preflight = await exchange(s, 'OPTIONS', '/v1/poll?app=a', {
      origin: 'https://evil.example',
      'access-control-request-method': 'GET',
    });
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
    const token = await s.token('u1');
    const poll = await exchange(s, 'GET', '/v1/me/unread?app=a', {
      origin: 'https://evil.example',
      authorization: `Bearer ${token}`,
    });
    expect(poll.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('PUSH_ALLOWED_ORIGINS names an origin', () => {
  const page = 'https://app.example';
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({ PUSH_ALLOWED_ORIGINS: page });
  });
  afterAll(() => s.stop());

  it('admits sockets from that origin only', async () => {
    const token = await s.token('u2');
    expect(await socketStatus(s, token, page)).toBe(101);
    expect(await socketStatus(s, token, 'https://app.example.evil')).toBe(403);
  });

  it('answers a preflight on the client API with the origin, methods and headers a page needs', async () => {
    const res = await exchange(s, 'OPTIONS', '/v1/me/ack?app=a', {
      origin: page,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization, content-type',
    });
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe(page);
    expect(String(res.headers['access-control-allow-methods'])).toContain('POST');
    expect(String(res.headers['access-control-allow-headers']).toLowerCase()).toContain('authorization');
  });

  it('sends the CORS header on a client API reply and on the SSE stream', async () => {
    const token = await s.token('u2');
    const unread = await exchange(s, 'GET', '/v1/me/unread?app=a', {
      origin: page,
      authorization: `Bearer ${token}`,
    });
    expect(unread.status).toBe(200);
    expect(unread.headers['access-control-allow-origin']).toBe(page);
    const sse = await exchange(s, 'GET', `/v1/sse?app=a&token=${token}`, { origin: page });
    expect(sse.status).toBe(200);
    expect(sse.headers['content-type']).toContain('text/event-stream');
    expect(sse.headers['access-control-allow-origin']).toBe(page);
  });

  it('never answers CORS on the server API, even for an allowed origin', async () => {
    const preflight = await exchange(s, 'OPTIONS', '/v1/push', {
      origin: page,
      'access-control-request-method': 'POST',
    });
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
    const push = await exchange(s, 'GET', '/v1/users/u2/presence', { origin: page, authorization: s.auth() });
    expect(push.headers['access-control-allow-origin']).toBeUndefined();
  });
});
