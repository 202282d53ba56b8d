import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpSender } from '../../../bench/http-sender.js';

const servers: Server[] = [];
const senders: HttpSender[] = [];
afterEach(async () => {
  for (const s of senders.splice(0)) s.close();
  await Promise.all(
    servers.splice(0).map((s) => {
      s.closeAllConnections();
      return new Promise((resolve) => s.close(resolve));
    }),
  );
});

interface Received {
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
  readonly remotePort: number;
  readonly res: ServerResponse;
}

/** A real HTTP server that hands each complete request to the test. */
async function server(onRequest: (r: Received) => void): Promise<string> {
  const s = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => onRequest({ headers: req.headers, body, remotePort: req.socket.remotePort!, res }));
  });
  servers.push(s);
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}/v1/push`;
}

/** With a length: `writeHead` would fix the headers before the body is known, and send it chunked. */
function reply(res: ServerResponse, status: number, body = '{}'): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(body);
}

function sender(url: string, connections: number): HttpSender {
  const s = new HttpSender(url, 'Basic YTpi', connections);
  senders.push(s);
  return s;
}

describe('bench HTTP sender', () => {
  it('sends each body whole with its headers and reports each response status', async () => {
    const url = await server(({ headers, body, res }) => {
      expect(headers.authorization).toBe('Basic YTpi');
      expect(headers['content-type']).toBe('application/json');
      const { status } = JSON.parse(body) as { status: number };
      reply(res, status, JSON.stringify({ echo: 'é'.repeat(50) }));
    });
    const s = sender(url, 4);
    const statuses = await Promise.all(
      [202, 400, 202, 503, 401].map((status) => s.post(JSON.stringify({ status, pad: 'ü'.repeat(300) }))),
    );
    expect(statuses).toEqual([202, 400, 202, 503, 401]);
  });

  it('never opens more connections than allowed: requests beyond them wait for a free one', async () => {
    const held: Received[] = [];
    const ports = new Set<number>();
    let releaseAll: (() => void) | null = null;
    const twoArrived = new Promise<void>((resolve) => {
      releaseAll = resolve;
    });
    const url = await server((r) => {
      ports.add(r.remotePort);
      held.push(r);
      if (held.length === 2) releaseAll!();
      if (held.length > 2) reply(r.res, 202);
    });
    const s = sender(url, 2);
    const all = Array.from({ length: 12 }, (_, i) => s.post(`{"i":${i}}`));
    await twoArrived;
    // Both connections are busy with unanswered requests: nothing else has reached the server.
    expect(held).toHaveLength(2);
    for (const r of held.slice(0, 2)) reply(r.res, 202);
    expect(await Promise.all(all)).toEqual(Array(12).fill(202));
    expect(ports.size).toBe(2);
    expect(held.map((r) => (JSON.parse(r.body) as { i: number }).i).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 12 }, (_, i) => i),
    );
  });

  it('a connection closed under a request reports 0, and the next request goes out on a new one', async () => {
    let first = true;
    const url = await server(({ res }) => {
      if (first) {
        first = false;
        res.socket!.destroy();
        return;
      }
      reply(res, 202);
    });
    const s = sender(url, 1);
    const [dropped, next] = await Promise.all([s.post('{}'), s.post('{}')]);
    expect(dropped).toBe(0);
    expect(next).toBe(202);
  });

  it('a response without Content-Length is reported, and its connection is not reused', async () => {
    const ports: number[] = [];
    const url = await server(({ remotePort, res }) => {
      ports.push(remotePort);
      if (ports.length === 1) {
        res.writeHead(500); // chunked: no length to find the end by
        res.write('part');
        res.end();
        return;
      }
      reply(res, 202);
    });
    const s = sender(url, 1);
    expect(await s.post('{}')).toBe(500);
    expect(await s.post('{}')).toBe(202);
    expect(new Set(ports).size).toBe(2);
  });
});
