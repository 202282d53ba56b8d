import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  attachRfc6455,
  RFC6455_OPCODES,
  type Rfc6455Connection,
  serverFrame,
} from '../../../bench/rfc6455.js';

const servers: Server[] = [];
const clients: WebSocket[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.terminate();
  await Promise.all(
    servers.splice(0).map((s) => {
      s.closeAllConnections();
      return new Promise((resolve) => s.close(resolve));
    }),
  );
});

/** The bench's hand-written server, echoing every message, on a real port. */
async function echoServer(): Promise<{ port: number; open: Set<Rfc6455Connection> }> {
  const http = createServer();
  servers.push(http);
  const open = new Set<Rfc6455Connection>();
  attachRfc6455(
    http,
    (c) => open.add(c),
    (c) => open.delete(c),
    (c, data, opcode) => c.write(serverFrame(opcode, data)),
  );
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return { port: (http.address() as AddressInfo).port, open };
}

/** A `ws` client (the reference implementation) connected to it. */
async function client(port: number): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
  clients.push(ws);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return ws;
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve) =>
    ws.once('message', (data: Buffer, isBinary) => resolve({ data, isBinary })),
  );
}

function closed(ws: WebSocket): Promise<number> {
  return new Promise((resolve) => ws.once('close', (code) => resolve(code)));
}

/** Writes raw bytes on a TCP connection; resolves with all the server sent once it closes. */
function rawExchange(port: number, ...chunks: (string | Buffer)[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const reply: Buffer[] = [];
    socket.on('data', (c: Buffer) => reply.push(c));
    socket.once('error', reject);
    socket.once('close', () => resolve(Buffer.concat(reply)));
    for (const c of chunks) socket.write(c);
  });
}

describe('bench RFC 6455 server', () => {
  it('echoes text and binary messages of every length encoding (7-bit, 16-bit)', async () => {
    const { port } = await echoServer();
    const ws = await client(port);
    for (const [payload, binary] of [
      ['hello', false],
      ['x'.repeat(1000), false],
      [Buffer.alloc(60_000, 7), true],
    ] as const) {
      const echoed = nextMessage(ws);
      ws.send(payload, { binary });
      const got = await echoed;
      expect(got.isBinary).toBe(binary);
      expect(got.data.equals(Buffer.from(payload))).toBe(true);
    }
  });

  it('reassembles a fragmented message', async () => {
    const { port } = await echoServer();
    const ws = await client(port);
    const echoed = nextMessage(ws);
    ws.send('frag', { fin: false });
    ws.send('men', { fin: false });
    ws.send('ted', { fin: true });
    expect((await echoed).data.toString()).toBe('fragmented');
  });

  it('answers a ping with a pong carrying its payload, and pings clients', async () => {
    const { port, open } = await echoServer();
    const ws = await client(port);
    const pong = new Promise<Buffer>((resolve) => ws.once('pong', resolve));
    ws.ping('are-you-there');
    expect((await pong).toString()).toBe('are-you-there');
    const ping = new Promise<void>((resolve) => ws.once('ping', () => resolve()));
    for (const c of open) c.ping();
    await ping;
  });

  it('writes one pre-built frame to every connection', async () => {
    const { port, open } = await echoServer();
    const a = await client(port);
    const b = await client(port);
    const both = Promise.all([nextMessage(a), nextMessage(b)]);
    const frame = serverFrame(RFC6455_OPCODES.text, Buffer.from('{"to":"all"}'));
    for (const c of open) c.write(frame);
    expect((await both).map((m) => m.data.toString())).toEqual(['{"to":"all"}', '{"to":"all"}']);
  });

  it('completes the close handshake with the client’s code and forgets the connection', async () => {
    const { port, open } = await echoServer();
    const ws = await client(port);
    const code = closed(ws);
    ws.close(4001, 'bye');
    expect(await code).toBe(4001);
    await new Promise<void>((resolve) => {
      const check = () => (open.size === 0 ? resolve() : setImmediate(check));
      check();
    });
    expect(open.size).toBe(0);
  });

  it('closes 1009 on a message over 64 KiB', async () => {
    const { port } = await echoServer();
    const ws = await client(port);
    const code = closed(ws);
    ws.send('y'.repeat(70_000));
    expect(await code).toBe(1009);
  });

  it('refuses a handshake without a version-13 key, and closes 1002 on an unmasked frame', async () => {
    const { port } = await echoServer();
    const refused = await rawExchange(
      port,
      'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n',
    );
    expect(refused.toString('latin1')).toMatch(/^HTTP\/1\.1 400 /);

    const all = await rawExchange(
      port,
      'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      Buffer.from([0x81, 0x02, 0x68, 0x69]), // "hi", not masked
    );
    const text = all.toString('latin1');
    expect(text).toContain('Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    const frame = all.subarray(text.indexOf('\r\n\r\n') + 4);
    expect(frame[0]).toBe(0x88); // FIN + close
    expect(frame.readUInt16BE(2)).toBe(1002);
  });
});
