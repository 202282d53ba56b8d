import { readFileSync, rmSync } from 'node:fs';
import { get } from 'node:https';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TestClient } from '../helpers/client.js';
import { startServer, type TestServer, tempDir } from '../helpers/server.js';
import { describeWithServices } from '../helpers/services.js';
import { freePort, TcpTestClient } from '../helpers/tcp-client.js';
import { makeCertificate } from '../helpers/tls-backends.js';

/** PUSH_TLS_CERT / PUSH_TLS_KEY: the port serves https and wss with a certificate made here. */
await describeWithServices(
  [],
  'TLS served directly (self-signed certificate made in the test)',
  () => {
    const dir = tempDir('mp-tls-');
    let cert: string;
    let key: string;
    let t: TestServer;
    let ca: string;
    let tcpPort: number;

    beforeAll(async () => {
      ({ cert, key } = makeCertificate(dir));
      ca = readFileSync(cert, 'utf8');
      tcpPort = await freePort();
      t = await startServer({ PUSH_TLS_CERT: cert, PUSH_TLS_KEY: key, PUSH_TCP_PORT: String(tcpPort) });
    });
    afterAll(async () => {
      await t.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('serves protocol v2 over TLS on PUSH_TCP_PORT with the same certificate', async () => {
      const c = await TcpTestClient.open(tcpPort, { app: 'a', token: await t.token('tls-tcp') }, { ca });
      try {
        expect(c.frames[0]).toMatchObject({ op: 'welcome', user_id: 'tls-tcp', version: 2 });
        expect(await fetchTls(t, ca, 'tls-tcp')).toBe(202);
        const m = await c.next((f) => f.op === 'message');
        expect(m).toMatchObject({ seq: 1, data: { over: 'tls' } });
      } finally {
        c.socket.destroy();
      }
      // A plain TCP client gets no welcome from the TLS listener.
      const plain = await TcpTestClient.connect(tcpPort, { app: 'a', token: await t.token('tls-plain') });
      await plain.closed();
      expect(plain.frames.some((f) => f.op === 'welcome')).toBe(false);
    });

    it('answers https with the certificate, and refuses plain http on the port', async () => {
      const body = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        get(`https://127.0.0.1:${t.port}/healthz`, { ca }, (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode!, text }));
        }).on('error', reject);
      });
      expect(body).toEqual({ status: 200, text: '{"status":"ok"}' });
      await expect(fetch(`http://127.0.0.1:${t.port}/healthz`)).rejects.toThrow();
    });

    it('a wss client connects and receives a push', async () => {
      const c = await TestClient.open(
        `wss://127.0.0.1:${t.port}/v1/ws`,
        { app: 'a', token: await t.token('tls-user') },
        { ca },
      );
      const res = await fetchTls(t, ca);
      expect(res).toBe(202);
      const [m] = await c.messages(1);
      expect(m!.data).toEqual({ over: 'tls' });
      await c.close();
    });
  },
  { binaries: ['openssl'] },
);

async function fetchTls(t: TestServer, ca: string, user = 'tls-user'): Promise<number> {
  const { request } = await import('node:https');
  const body = JSON.stringify({ to: { users: [user] }, data: { over: 'tls' } });
  return new Promise((resolve, reject) => {
    const req = request(
      `https://127.0.0.1:${t.port}/v1/push`,
      { method: 'POST', ca, headers: { authorization: t.auth(), 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
