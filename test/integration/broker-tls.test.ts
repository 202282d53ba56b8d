import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { jetstream } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PUSH_STREAM } from '../../src/ingest/redis-streams-consumer.js';
import { type ChildServer, startChild } from '../helpers/child-server.js';
import { TestClient } from '../helpers/client.js';
import { dropMysqlDatabase, withDatabase } from '../helpers/mysql.js';
import { tempDir } from '../helpers/server.js';
import { describeWithServices } from '../helpers/services.js';
import {
  type Backend,
  type Certificate,
  makeCertificate,
  startNatsTls,
  startRedisTls,
} from '../helpers/tls-backends.js';

/**
 * Bus and queue ingress over TLS, against TLS-only redis-server and nats-server processes of
 * this suite's own (self-signed certificate made here, trusted by the server process through
 * NODE_EXTRA_CA_CERTS). The server runs as the built CLI: `npm run build` first.
 */
await describeWithServices(
  ['mysql'],
  'Redis (rediss://) and NATS over TLS',
  ([mysql]) => {
    const dir = tempDir('mp-broker-tls-');
    // A bus needs a shared store; the plain shared MariaDB, a database of this suite's own.
    const db = withDatabase(mysql!, `mp_tls_${randomBytes(4).toString('hex')}`);
    let cert: Certificate;
    const backends: Backend[] = [];
    const servers: ChildServer[] = [];
    const clients: TestClient[] = [];

    beforeAll(() => {
      cert = makeCertificate(dir);
    });
    afterAll(async () => {
      for (const c of clients) await c.close();
      for (const s of servers) await s.stop();
      for (const b of backends) await b.stop();
      await dropMysqlDatabase(db);
      rmSync(dir, { recursive: true, force: true });
    });

    async function server(env: Record<string, string>): Promise<ChildServer> {
      const s = await startChild(tempDir(), { NODE_EXTRA_CA_CERTS: cert.cert, PUSH_DB_URL: db, ...env });
      servers.push(s);
      const ready = await s.api('GET', '/readyz');
      expect(ready.status, JSON.stringify(ready.body)).toBe(200);
      return s;
    }

    it('rediss:// carries the bus and the queue: ready, and an entry appended over TLS is delivered', async () => {
      const redis = await startRedisTls(dir, cert);
      backends.push(redis);
      const url = `rediss://127.0.0.1:${redis.port}`;
      const s = await server({ PUSH_BUS_URL: url, PUSH_QUEUE_URL: url });
      const c = await TestClient.open(s.ws, { app: 'a', token: await s.token('tls-u') });
      clients.push(c);
      const producer = new Redis(url, { tls: { ca: readFileSync(cert.cert) } });
      try {
        const body = { app: 'a', id: 'over-tls', to: { users: ['tls-u'] }, data: { via: 'rediss' } };
        await producer.xadd(PUSH_STREAM, '*', 'body', JSON.stringify(body));
      } finally {
        producer.disconnect();
      }
      const [m] = await c.messages(1);
      expect(m).toMatchObject({ id: 'over-tls', data: { via: 'rediss' } });
    }, 120_000);

    it('NATS with TLS required carries the bus and JetStream ingress', async () => {
      const nats = await startNatsTls(dir, cert);
      backends.push(nats);
      const url = `nats://127.0.0.1:${nats.port}`;
      const s = await server({ PUSH_BUS_URL: url, PUSH_QUEUE_URL: url });
      const c = await TestClient.open(s.ws, { app: 'a', token: await s.token('tls-n') });
      clients.push(c);
      const nc = await natsConnect({ servers: url, tls: { ca: readFileSync(cert.cert, 'utf8') } });
      try {
        const body = { app: 'a', id: 'nats-tls', to: { users: ['tls-n'] }, data: { via: 'nats' } };
        await jetstream(nc).publish('push.tls', JSON.stringify(body));
      } finally {
        await nc.close();
      }
      const [m] = await c.messages(1);
      expect(m).toMatchObject({ id: 'nats-tls', data: { via: 'nats' } });
    }, 120_000);
  },
  { binaries: ['openssl', 'redis-server', 'nats-server'] },
);
