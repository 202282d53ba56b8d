import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFrame, KIND } from '../../../client/src/protocol-v2.js';
import { startServer, type TestServer } from '../../helpers/server.js';
import { freePort, TcpTestClient } from '../../helpers/tcp-client.js';
import { waitUntil } from '../../helpers/wait.js';

/** Protocol v2 over plain TCP (PUSH_TCP_PORT): hello/welcome, the v1 operations, refusals and closes. */
describe('protocol v2 over TCP', () => {
  let t: TestServer;
  let port: number;
  const HEARTBEAT_MS = 400;

  beforeAll(async () => {
    port = await freePort();
    t = await startServer({
      PUSH_TCP_PORT: String(port),
      PUSH_HEARTBEAT_MS: String(HEARTBEAT_MS),
      PUSH_RESEND_MS: '60s',
      PUSH_MAX_DATA: String(1024 * 1024),
    });
  });
  afterAll(() => t.stop());

  const hello = async (user: string, extra: Record<string, unknown> = {}) => ({
    app: 'a',
    token: await t.token(user),
    codecs: ['snappy', 'gzip'],
    crc: true,
    ...extra,
  });

  it('hello → welcome with the chosen codec, threshold and heartbeat; then push, backlog, ack with ref, ping', async () => {
    const user = 'tcp-basic';
    const first = await t.push({ to: { users: [user] }, type: 'notification', data: { n: 1 } });
    expect(first.status).toBe(202);
    const c = await TcpTestClient.open(port, await hello(user, { device: 'dev-1' }));
    try {
      expect(c.frames[0]).toMatchObject({
        op: 'welcome',
        user_id: user,
        device_id: 'dev-1',
        heartbeat_ms: HEARTBEAT_MS,
        version: 2,
        compression: 'snappy',
        crc: true,
      });
      const [backlog] = await c.messages(1);
      expect(backlog).toMatchObject({ seq: 1, id: first.body.id, type: 'notification', data: { n: 1 } });
      const live = await t.push({ to: { users: [user] }, data: { n: 2 } });
      const [m] = await c.messages(1);
      expect(m).toMatchObject({ seq: 2, id: live.body.id, data: { n: 2 } });
      expect(await c.request({ op: 'ack', seq: 2 })).toMatchObject({ op: 'ok' });
      const status = await t.api('GET', `/v1/messages/${live.body.id}`);
      expect(status.body.recipients[0].status).toBe('acked');
      expect(await c.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
      expect(await c.request({ op: 'frobnicate' })).toMatchObject({ op: 'error', code: 'unknown_op' });
      expect(await c.request({ op: 'ack', seq: 'x' })).toMatchObject({ op: 'error', code: 'bad_request' });
    } finally {
      c.close();
    }
  });

  it('resume with since: only seqs after it; $all broadcasts arrive without subscribing', async () => {
    const user = 'tcp-since';
    for (let i = 0; i < 3; i++) await t.push({ to: { users: [user] }, data: { i } });
    const c = await TcpTestClient.open(port, await hello(user, { since: 2 }));
    try {
      const [m] = await c.messages(1);
      expect(m).toMatchObject({ seq: 3, data: { i: 2 } });
      const b = await t.push({ to: { all: true }, data: { everyone: true } });
      expect(b.status).toBe(202);
      const [all] = await c.messages(1);
      expect(all).toMatchObject({ topic: '$all', id: b.body.id, data: { everyone: true } });
    } finally {
      c.close();
    }
  });

  it('the server pings on TCP; a client that answers stays, one that does not is dropped after two intervals', async () => {
    const alive = await TcpTestClient.open(port, await hello('tcp-ping-a'));
    const mute = await TcpTestClient.connect(port, await hello('tcp-ping-b'), { answerPings: false });
    try {
      await alive.next((f) => f.op === 'ping', 5 * HEARTBEAT_MS);
      await mute.closed(10 * HEARTBEAT_MS + 5000);
      expect(mute.frames.map((f) => f.op)).toContain('ping');
      // Dropped for silence: no error, no CLOSE frame (as a WebSocket gets no close frame).
      expect(mute.frames.map((f) => f.op)).not.toContain('error');
      expect(alive.ended).toBe(false);
      expect(await alive.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    } finally {
      alive.close();
      mute.close();
    }
  });

  it('a bad token gets an error frame with the status a handshake would get, then the socket closes', async () => {
    const c = await TcpTestClient.connect(port, { app: 'a', token: 'not-a-jwt' });
    const err = await c.next();
    expect(err).toMatchObject({ op: 'error', code: 'unauthorized', status: 401 });
    await c.closed();
  });

  it('a client offering only versions the server lacks gets an error naming the versions it has, then the close', async () => {
    const c = await TcpTestClient.connect(port, { ...(await hello('tcp-v3')), versions: [3] });
    const err = await c.next();
    expect(err).toMatchObject({ op: 'error', code: 'bad_request', versions: [2] });
    await c.closed();
  });

  it('a first frame that is not a hello, and bytes that are not frames, get an error frame and the close', async () => {
    const c = await TcpTestClient.connect(port, null);
    c.send({ op: 'ping' });
    expect(await c.next()).toMatchObject({ op: 'error', code: 'bad_request' });
    await c.closed();
    const raw = net.connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    raw.on('data', (b) => got.push(b));
    const ended = new Promise((resolve) => raw.on('close', resolve));
    raw.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await ended;
    // An error frame (kind 0x2f) before the end.
    expect(Buffer.concat(got).subarray(0, 4).toString()).toBe('MPSH');
    expect(Buffer.concat(got)[7]).toBe(KIND.error);
  });

  it('a kick closes with a CLOSE frame carrying 4003', async () => {
    const c = await TcpTestClient.open(port, await hello('tcp-kick'));
    const res = await t.api('DELETE', '/v1/users/tcp-kick/connections');
    expect(res.body).toEqual({ closed: 1 });
    expect(await c.next((f) => f.op === 'close')).toMatchObject({ code: 4003 });
    await c.closed();
  });

  it('a 1 MiB message is fragmented and reassembled over TCP (no compression)', async () => {
    const user = 'tcp-big';
    const c = await TcpTestClient.open(port, await hello(user, { codecs: [] }));
    try {
      const big = 'x'.repeat(1024 * 1024 - 200);
      const res = await t.push({ to: { users: [user] }, data: big });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      const [m] = await c.messages(1);
      expect(m!.data).toBe(big);
      // Still in step after it: the next message arrives too.
      await t.push({ to: { users: [user] }, data: 'after' });
      expect((await c.messages(1))[0]!.data).toBe('after');
    } finally {
      c.close();
    }
  });

  it('frames split across TCP reads byte by byte are reassembled', async () => {
    const c = await TcpTestClient.connect(port, null);
    const token = await t.token('tcp-bytes');
    const body = new TextEncoder().encode(JSON.stringify({ app: 'a', token, versions: [2] }));
    const frames = Buffer.concat([
      encodeFrame(KIND.hello, 0, 1, body),
      encodeFrame(KIND.ping, 0, 2, new TextEncoder().encode('{"ref":"slow"}')),
    ]);
    for (const b of frames) {
      c.socket.write(Buffer.of(b));
      await new Promise((r) => setImmediate(r));
    }
    expect(await c.next((f) => f.op === 'welcome')).toBeTruthy();
    expect(await c.next((f) => f.ref === 'slow')).toMatchObject({ op: 'pong' });
    await waitUntil(() => c.frames.length >= 2, 1000);
    c.close();
  });
});
