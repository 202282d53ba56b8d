import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawSocket } from '../helpers/raw-socket.js';
import { startServer, type TestServer } from '../helpers/server.js';

/**
 * How the port hands plain HTTP to the API, seen from the wire: on the ws engine Node's
 * server does, on the uws engine uWS parses and dispatches in-process (http-inprocess.ts).
 * Both must answer these the same way.
 */
describe('plain HTTP on the public port', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  /** A push request's head up to its framing header (Content-Length or Transfer-Encoding). */
  const push = () =>
    `POST /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: ${t.auth()}\r\nContent-Type: application/json\r\n`;

  /** One whole response off `text`: status, lower-cased headers, body by Content-Length. */
  function responses(text: string): { status: number; headers: Record<string, string>; body: string }[] {
    const out = [];
    let rest = text;
    while (rest.length > 0) {
      const end = rest.indexOf('\r\n\r\n');
      if (end < 0) break;
      const [line, ...lines] = rest.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      const length = Number(headers['content-length'] ?? 0);
      out.push({ status: Number(line!.split(' ')[1]), headers, body: rest.slice(end + 4, end + 4 + length) });
      rest = rest.slice(end + 4 + length);
    }
    return out;
  }

  it('answers pipelined requests on one connection, in order', async () => {
    const s = await RawSocket.open(t.port);
    s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n');
    await s.until('no route GET /nowhere');
    const [a, b] = responses(s.received.toString());
    expect(a!.status).toBe(200);
    expect(JSON.parse(a!.body)).toEqual({ status: 'ok' });
    expect(b!.status).toBe(404);
    expect(JSON.parse(b!.body).error.code).toBe('not_found');
    s.destroy();
  });

  it('HEAD carries the length of what GET would send, and no body', async () => {
    const s = await RawSocket.open(t.port);
    // The GET after it shows where the HEAD answer ended, and that it did end (uWS 20.30
    // left a HEAD answer open when told its length, and cut the connection at the next request).
    s.write('HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await s.until('{"status":"ok"}');
    const text = s.received.toString();
    const head = text.slice(0, text.indexOf('\r\n\r\n'));
    expect(head).toMatch(/^HTTP\/1\.1 200/);
    expect(head.toLowerCase()).toContain('content-length: 15');
    expect(text.slice(text.indexOf('\r\n\r\n') + 4)).toMatch(/^HTTP\/1\.1 200/);
    s.destroy();
  });

  it('reads a body that arrives in pieces and a chunked one', async () => {
    const body = JSON.stringify({ to: { users: ['pieces'] }, data: { n: 1 } });
    const s = await RawSocket.open(t.port);
    s.write(`${push()}Content-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`);
    // The server holds the request until the rest arrives: nothing is answered yet.
    s.write(body.slice(5, 20));
    s.write(body.slice(20));
    await s.until('"recipients"');
    const hex = body.length.toString(16);
    s.write(`${push()}Transfer-Encoding: chunked\r\n\r\n${hex}\r\n${body}\r\n0\r\n\r\n`);
    while (responses(s.received.toString()).filter((r) => r.body.length > 0).length < 2) await s.more();
    const answers = responses(s.received.toString());
    expect(answers.map((a) => a.status)).toEqual([202, 202]);
    s.destroy();
  });

  it('a body over the limit is 413 with the error body; the connection serves the next request', async () => {
    const big = `{"data":"${'x'.repeat(1024 * 1024)}"}`;
    const s = await RawSocket.open(t.port);
    s.write(`${push()}Content-Length: ${big.length}\r\n\r\n`);
    s.write(big);
    await s.until('payload_too_large');
    const [r] = responses(s.received.toString());
    expect(r!.status).toBe(413);
    expect(JSON.parse(r!.body).error.code).toBe('payload_too_large');
    s.destroy();
    // A fresh client is served as usual.
    const res = await fetch(`${t.http}/healthz`);
    expect(res.status).toBe(200);
  });

  it('a client that leaves mid-body does not disturb the next one', async () => {
    const s = await RawSocket.open(t.port);
    s.write(`${push()}Content-Length: 100\r\n\r\n{"to":`);
    s.destroy();
    await s.whenClosed();
    const res = await fetch(`${t.http}/v1/push`, {
      method: 'POST',
      headers: { authorization: t.auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ to: { users: ['after'] }, data: 1 }),
    });
    expect(res.status).toBe(202);
  });

  it('errors from the API keep its status, headers and body', async () => {
    const res = await fetch(`${t.http}/v1/push`, { method: 'DELETE' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toContain('POST');
    expect(await res.json()).toEqual({ error: { code: 'method_not_allowed', message: expect.any(String) } });
    const bad = await fetch(`${t.http}/v1/push`, {
      method: 'POST',
      headers: { authorization: t.auth() },
      body: '{not json',
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('bad_request');
  });
});
