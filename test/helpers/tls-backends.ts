import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './child-server.js';
import { waitUntil } from './wait.js';

/**
 * TLS-speaking backends of the test's own, on free loopback ports, with a self-signed
 * certificate made in the test: the shared services are never reconfigured. A server
 * process trusts the certificate through NODE_EXTRA_CA_CERTS, as an operator with a
 * private CA would.
 */

export interface Certificate {
  /** Self-signed: it is its own CA. */
  readonly cert: string;
  readonly key: string;
}

/** A self-signed EC certificate for 127.0.0.1 and localhost, written under `dir`. */
export function makeCertificate(dir: string): Certificate {
  const cert = join(dir, 'tls-cert.pem');
  const key = join(dir, 'tls-key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

export interface Backend {
  readonly port: number;
  stop(): Promise<void>;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Spawns `command`, waits for `port` to accept, and stops it (SIGTERM) with `stop`. */
async function serve(command: string, args: string[], port: number): Promise<Backend> {
  const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitUntil(async () => child.exitCode === null && (await portOpen(port)), 20_000);
  } catch {
    child.kill('SIGKILL');
    throw new Error(`${command} did not listen on ${port}:\n${out}`);
  }
  return {
    port,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** redis-server with only a TLS port (no plain one). */
export async function startRedisTls(dir: string, c: Certificate): Promise<Backend> {
  const port = await freePort();
  return serve(
    'redis-server',
    [
      '--port',
      '0',
      '--tls-port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--tls-cert-file',
      c.cert,
      '--tls-key-file',
      c.key,
      '--tls-ca-cert-file',
      c.cert,
      '--tls-auth-clients',
      'no',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
    ],
    port,
  );
}

/** nats-server with JetStream whose clients must speak TLS. */
export async function startNatsTls(dir: string, c: Certificate): Promise<Backend> {
  const port = await freePort();
  const conf = join(dir, 'nats-tls.conf');
  writeFileSync(
    conf,
    [
      `host: 127.0.0.1`,
      `port: ${port}`,
      `jetstream { store_dir: ${JSON.stringify(join(dir, 'jetstream'))} }`,
      `tls { cert_file: ${JSON.stringify(c.cert)}, key_file: ${JSON.stringify(c.key)} }`,
    ].join('\n'),
  );
  return serve('nats-server', ['-c', conf], port);
}

/** A TLS endpoint (socat) in front of a plain TCP service, e.g. the shared RabbitMQ. */
export async function startTlsProxy(
  c: Certificate,
  target: { host: string; port: number },
): Promise<Backend> {
  const port = await freePort();
  return serve(
    'socat',
    [
      `OPENSSL-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork,cert=${c.cert},key=${c.key},verify=0`,
      `TCP:${target.host}:${target.port}`,
    ],
    port,
  );
}

/** A MariaDB server of the test's own on a temp datadir that accepts TLS connections only (root, no password). */
export async function startMariadbTls(dir: string, c: Certificate): Promise<Backend> {
  const data = join(dir, 'mariadb');
  const user = userInfo().username;
  execFileSync(
    'mariadb-install-db',
    [
      '--no-defaults',
      `--datadir=${data}`,
      `--user=${user}`,
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
    ],
    { stdio: 'ignore' },
  );
  const port = await freePort();
  return serve(
    'mariadbd',
    [
      '--no-defaults',
      `--datadir=${data}`,
      `--user=${user}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--socket=${join(dir, 'mariadb.sock')}`,
      `--pid-file=${join(dir, 'mariadb.pid')}`,
      `--ssl-cert=${c.cert}`,
      `--ssl-key=${c.key}`,
      '--require-secure-transport=ON',
      '--skip-log-bin',
      '--skip-name-resolve',
      '--innodb-buffer-pool-size=16M',
    ],
    port,
  );
}

/** A plain nats-server of a test's own that admits only clients presenting `token`. */
export async function startNatsWithToken(token: string): Promise<Backend> {
  const port = await freePort();
  return serve('nats-server', ['-a', '127.0.0.1', '-p', String(port), '--auth', token], port);
}
