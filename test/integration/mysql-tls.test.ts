import { rmSync } from 'node:fs';
import { createConnection } from 'mysql2';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { serverOptions } from '../../src/store/mysql/mysql-store.js';
import { startServer, type TestServer, tempDir } from '../helpers/server.js';
import { describeWithServices } from '../helpers/services.js';
import { type Backend, type Certificate, makeCertificate, startMariadbTls } from '../helpers/tls-backends.js';

/**
 * `?ssl=`-style options of PUSH_DB_URL reach mysql2, against a MariaDB of this suite's own
 * (temp datadir, self-signed certificate made here) that refuses connections without TLS.
 */
await describeWithServices(
  [],
  'MySQL store over TLS (PUSH_DB_URL ?ssl-ca=, ?ssl=)',
  () => {
    const dir = tempDir('mp-mysql-tls-');
    let cert: Certificate;
    let mariadb: Backend;
    const servers: TestServer[] = [];
    const url = (db: string, query: string) => `mysql://root@127.0.0.1:${mariadb.port}/${db}${query}`;

    /** Opens one connection with the store's options for `u`: 'connected', or the error message. */
    function connectError(u: string): Promise<string> {
      return new Promise((resolve) => {
        const conn = createConnection(serverOptions(new URL(u)));
        conn.on('error', (err) => resolve(err.message));
        conn.connect((err) => {
          if (err) resolve(err.message);
          else conn.end(() => resolve('connected'));
        });
      });
    }

    beforeAll(async () => {
      cert = makeCertificate(dir);
      mariadb = await startMariadbTls(dir, cert);
    }, 120_000);
    afterAll(async () => {
      for (const s of servers) await s.stop();
      await mariadb?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('with ?ssl-ca= the store connects over TLS, checks the certificate, and messages are stored', async () => {
      const t = await startServer({
        PUSH_DB_URL: url('mp_tls_ca', `?ssl-ca=${encodeURIComponent(cert.cert)}`),
      });
      servers.push(t);
      expect((await t.api('GET', '/readyz')).status).toBe(200);
      const pushed = await t.push({ id: 'tls-1', to: { users: ['tls-u'] }, data: { over: 'tls' } });
      expect(pushed.status).toBe(202);
      const history = await t.api('GET', '/v1/users/tls-u/messages');
      expect(history.body.messages.map((m: { id: string }) => m.id)).toEqual(['tls-1']);
    }, 120_000);

    it('?ssl=skip-verify connects without the check; ?ssl=true refuses a certificate nobody vouches for; no ssl is refused by the server', async () => {
      const t = await startServer({ PUSH_DB_URL: url('mp_tls_skip', '?ssl=skip-verify') });
      servers.push(t);
      expect((await t.api('GET', '/readyz')).status).toBe(200);
      // The store's connection options, tried directly: the failures are mysql2's own.
      expect(await connectError(url('mp_tls_skip', '?ssl=true'))).toMatch(/self-signed certificate/);
      expect(await connectError(url('mp_tls_skip', ''))).toMatch(/denied|secure transport/i);
      expect(await connectError(url('mp_tls_skip', `?ssl-ca=${encodeURIComponent(cert.cert)}`))).toBe(
        'connected',
      );
      expect(() => serverOptions(new URL(url('x', '?ssl=maybe')))).toThrow(/ssl=maybe/);
    }, 120_000);
  },
  { binaries: ['openssl', 'mariadbd', 'mariadb-install-db'] },
);
