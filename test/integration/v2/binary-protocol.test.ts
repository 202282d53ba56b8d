import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFrame, KIND } from '../../../client/src/protocol-v2.js';
import { TestClient, useProtocol } from '../../helpers/client.js';
import { startServer, type TestServer } from '../../helpers/server.js';
import { freePort, TcpTestClient } from '../../helpers/tcp-client.js';

/**
 * The published vectors (docs/reference/v2-vectors/) sent over real sockets, WebSocket and
 * TCP: valid client frames get their reply, invalid ones an error frame and the documented
 * close, and the server stays healthy. Also v2-only rules of the WebSocket transport.
 */
useProtocol('v2');

const dir = new URL('../../../docs/reference/v2-vectors/', import.meta.url);
const load = (name: string) => JSON.parse(readFileSync(new URL(name, dir), 'utf8'));
const clientVectors: { name: string; hex: string; meaning: Record<string, unknown> }[] =
  load('client-to-server.json');
const invalid: {
  fatal: { name: string; hex: string; error: string; close: number }[];
  in_sync: { name: string; hex: string; error: string; ref?: string }[];
} = load('invalid.json');

/** Shifts the Sequence of every well-formed frame: on TCP the hello took Sequence 1. */
function reseq(hex: string, by: number): Buffer {
  const b = Buffer.from(hex, 'hex');
  for (let at = 0; at + 16 <= b.length; at += 16 + b.readUInt32BE(at + 8)) {
    if (b.subarray(at, at + 4).toString('latin1') !== 'MPSH') break;
    b.writeUInt32BE(b.readUInt32BE(at + 12) + by, at + 12);
  }
  return b;
}

const pingAt = (seq: number, ref: string) =>
  Buffer.from(encodeFrame(KIND.ping, 0, seq, new TextEncoder().encode(JSON.stringify({ ref }))));

/** Vectors a live session can answer (hello is TCP's opening, refresh carries no real token). */
const answerable = clientVectors.filter((v) => !['hello', 'refresh'].includes(v.meaning.op as string));

describe('protocol v2 on real sockets', () => {
  let t: TestServer;
  let tcpPort: number;

  beforeAll(async () => {
    tcpPort = await freePort();
    t = await startServer({ PUSH_TCP_PORT: String(tcpPort), PUSH_MAX_DATA: String(1024 * 1024) });
  });
  afterAll(() => t.stop());

  const ws = async (user: string) => TestClient.open(t.ws, { app: 'a', token: await t.token(user) });
  // Vectors are written with fixed Sequences: a PONG the client sent to a heartbeat PING
  // that came early would take one of them.
  const tcp = async (user: string) =>
    TcpTestClient.open(tcpPort, { app: 'a', token: await t.token(user) }, { answerPings: false });

  it.each(answerable.map((v) => [v.name, v] as const))(
    'client vector "%s" over WebSocket and TCP',
    async (_, v) => {
      const w = await ws('vec-ws');
      const c = await tcp('vec-tcp');
      try {
        w.ws.send(Buffer.from(v.hex, 'hex'));
        c.socket.write(reseq(v.hex, 1));
        // A ping right behind it proves the stream is still in step.
        w.ws.send(pingAt(2, 'after'));
        c.socket.write(pingAt(3, 'after'));
        for (const client of [w, c]) {
          // The reply may come before or after the pong (an ack waits for the store).
          await client.next((f) => f.ref === 'after');
          const ref = v.meaning.ref as string | undefined;
          if (ref === undefined) continue;
          const reply = client.frames.find((f) => f.ref === ref) ?? (await client.next((f) => f.ref === ref));
          // subscribe: the token has no topics claim, so it is refused (with the ref).
          const expected = { ping: { op: 'pong' }, subscribe: { op: 'error', code: 'forbidden' } }[
            v.meaning.op as string
          ] ?? { op: 'ok' };
          expect(reply).toMatchObject(expected);
        }
      } finally {
        await w.close();
        c.close();
      }
    },
  );

  it.each(invalid.fatal.map((v) => [v.name, v] as const))(
    'invalid "%s": error frame, then close',
    async (_, v) => {
      const w = await ws('bad-ws');
      const c = await tcp('bad-tcp');
      w.ws.send(Buffer.from(v.hex, 'hex'));
      c.socket.write(reseq(v.hex, 1));
      expect(await w.next((f) => f.op === 'error')).toMatchObject({ code: v.error });
      expect(await w.closed()).toBe(v.close);
      expect(await c.next((f) => f.op === 'error')).toMatchObject({ code: v.error });
      expect(await c.next((f) => f.op === 'close')).toMatchObject({ code: v.close });
      await c.closed();
    },
  );

  it.each(invalid.in_sync.map((v) => [v.name, v] as const))(
    'in-step error "%s": error frame, connection stays',
    async (_, v) => {
      const w = await ws('soft-ws');
      const c = await tcp('soft-tcp');
      try {
        w.ws.send(Buffer.from(v.hex, 'hex'));
        c.socket.write(reseq(v.hex, 1));
        w.ws.send(pingAt(2, 'after'));
        c.socket.write(pingAt(3, 'after'));
        for (const client of [w, c]) {
          expect(await client.next((f) => f.op === 'error')).toMatchObject({
            code: v.error,
            ...(v.ref ? { ref: v.ref } : {}),
          });
          expect(await client.next((f) => f.ref === 'after')).toMatchObject({ op: 'pong' });
        }
      } finally {
        await w.close();
        c.close();
      }
    },
  );

  it('fuzz over a real socket: mutated frame streams end in an error frame and a documented close, never a crash', async () => {
    const valid = Buffer.concat([
      pingAt(1, 'a'),
      pingAt(2, 'b'),
      Buffer.from(encodeFrame(KIND.ack, 8, 3, new TextEncoder().encode('{"seq":1}'), true)),
    ]);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        async (flips) => {
          const b = Buffer.from(valid);
          for (const [at, value] of flips) b[at] = value;
          const w = await ws('fuzz-ws');
          w.ws.send(b);
          // Whatever the mutation left valid, bytes that are not a frame end the stream.
          w.ws.send(Buffer.from('not a frame at all'));
          expect([1002, 1008, 1009]).toContain(await w.closed());
          expect(w.frames.some((f) => f.op === 'error')).toBe(true);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('after all of the above the server is healthy: /healthz 200 and fresh v2 clients on both transports receive a push', async () => {
    expect((await fetch(`${t.http}/healthz`)).status).toBe(200);
    const w = await ws('healthy');
    const c = await tcp('healthy');
    const res = await t.push({ to: { users: ['healthy'] }, data: { ok: true } });
    expect((await w.messages(1))[0]).toMatchObject({ id: res.body.id, data: { ok: true } });
    expect((await c.messages(1))[0]).toMatchObject({ id: res.body.id, data: { ok: true } });
    await w.close();
    c.close();
  });

  it('a text message on push.v2.bin → error bad_request, connection stays', async () => {
    const w = await ws('text-on-v2');
    w.send('{"op":"ping"}');
    expect(await w.next((f) => f.op === 'error')).toMatchObject({ code: 'bad_request' });
    expect(await w.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    await w.close();
  });

  it('a WebSocket message ending inside a frame → error, close 1002', async () => {
    const w = await ws('half-frame');
    w.ws.send(pingAt(1, 'half').subarray(0, 20));
    expect(await w.next((f) => f.op === 'error')).toMatchObject({ code: 'bad_request' });
    expect(await w.closed()).toBe(1002);
  });

  it('data is delivered byte-exact: __proto__ keys, emoji and RTL text as sent', async () => {
    const w = await ws('exact-v2');
    const text = '{"__proto__":{"polluted":true},"constructor":1,"s":"😀 مرحبا","n":1.5}';
    const res = await t.api('POST', '/v1/push', `{"to":{"users":["exact-v2"]},"data":${text}}`);
    expect(res.status).toBe(202);
    const [m] = await w.messages(1);
    expect(JSON.stringify(m!.data)).toBe(text);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    await w.close();
  });

  // The whole slow-consumer suite on v2 starves its v1 twin of CPU when both run at once on
  // two cores; this is its core case on v2, over both transports.
  it('a v2 client that stops reading is cut with 4009 (WebSocket close, TCP CLOSE frame) and resumes without loss', async () => {
    const pad = 'z'.repeat(48 * 1024);
    const w = await TestClient.connect(
      `${t.ws}?app=a&token=${await t.token('slow-v2')}&codecs=none`,
      {},
      'v2',
    );
    const c = await TcpTestClient.open(tcpPort, { app: 'a', token: await t.token('slow-v2'), codecs: [] });
    w.ws.pause();
    c.socket.pause();
    // Far more than loopback buffers and the 1 MiB send limit hold, in batches.
    for (let b = 0; b < 20 && !(w.closeCode !== null && c.ended); b++) {
      const messages = Array.from({ length: 16 }, () => ({ to: { users: ['slow-v2'] }, data: pad }));
      expect((await t.api('POST', '/v1/push/batch', { messages })).status).toBe(200);
    }
    w.ws.resume();
    c.socket.resume();
    expect(await w.closed()).toBe(4009);
    expect(await c.next((f) => f.op === 'close')).toMatchObject({ code: 4009 });
    const seen = w.frames.filter((f) => f.op === 'message').map((f) => f.seq as number);
    const resumed = await TestClient.open(t.ws, {
      app: 'a',
      token: await t.token('slow-v2'),
      since: seen.at(-1) ?? 0,
    });
    const [next] = await resumed.messages(1);
    expect(next!.seq).toBe((seen.at(-1) ?? 0) + 1);
    await resumed.close();
    c.close();
  });

  // Sizes around the engine's choices: one copied buffer (≤ 16 KiB), corked parts, and the
  // largest single frame; with and without CRC and compression, on both transports.
  it('broadcasts of every size reach WebSocket and TCP v2 clients intact, with CRCs and compression', async () => {
    const open = async (user: string, query: string) =>
      TestClient.connect(`${t.ws}?app=a&token=${await t.token(user)}&${query}`, {}, 'v2');
    const clients = [
      await open('fan-plain', 'codecs=none'),
      await open('fan-crc', 'codecs=none&crc=1'),
      await open('fan-gzip', 'codecs=gzip&crc=1'),
      await open('fan-snappy', 'codecs=snappy'),
    ];
    for (const c of clients) await c.next((f) => f.op === 'welcome');
    const tcpClients = [
      await TcpTestClient.open(tcpPort, { app: 'a', token: await t.token('fan-tcp'), codecs: [], crc: true }),
      await TcpTestClient.open(tcpPort, { app: 'a', token: await t.token('fan-tcp-gz'), codecs: ['gzip'] }),
    ];
    const sizes = [10, 100, 4_000, 16_000, 20_000, 60_000];
    const sent = sizes.map((n, i) => `${i}:${'abcdefghij'.repeat(n / 10)}`);
    for (const data of sent) expect((await t.push({ to: { all: true }, data })).status).toBe(202);
    const isBroadcast = (f: Record<string, unknown>) => f.op === 'message' && f.topic === '$all';
    for (const c of [...clients, ...tcpClients]) {
      const got: unknown[] = [];
      for (let i = 0; i < sent.length; i++) got.push((await c.next(isBroadcast)).data);
      expect(got).toEqual(sent);
    }
    for (const c of clients) await c.close();
    for (const c of tcpClients) c.close();
  });

  it('a 1 MiB message is fragmented and reassembled over WebSocket (no compression)', async () => {
    const c = await TestClient.connect(
      `${t.ws}?app=a&token=${await t.token('big-ws')}&codecs=none`,
      {},
      'v2',
    );
    await c.next((f) => f.op === 'welcome');
    const big = 'y'.repeat(1024 * 1024 - 200);
    const res = await t.push({ to: { users: ['big-ws'] }, data: big });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const [m] = await c.messages(1);
    expect(m!.data).toBe(big);
    await c.close();
  });
});
