import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './child-server.js';
import { tempDir } from './server.js';
import { waitUntil } from './wait.js';

export interface Haproxy {
  readonly port: number;
  readonly http: string;
  readonly ws: string;
  stop(): Promise<void>;
}

/**
 * Runs haproxy in the foreground with the repository's own `deploy/haproxy.cfg`, only its
 * listen port and server list rewritten, so the tests exercise the configuration we ship.
 * Resolves once a request through it reaches a node.
 */
export async function startHaproxy(port: number, backendPorts: readonly number[]): Promise<Haproxy> {
  const shipped = readFileSync(join(ROOT, 'deploy/haproxy.cfg'), 'utf8');
  const servers = backendPorts.map((p, i) => `    server node${i + 1} 127.0.0.1:${p} check`).join('\n');
  const cfg = `${shipped
    .replace(/^\s*bind 127\.0\.0\.1:\d+$/m, `    bind 127.0.0.1:${port}`)
    .replace(/^\s*server .*$\n?/gm, '')
    .replace(/^\s*maxconn \d+$/m, '    maxconn 4000')
    .trimEnd()}\n${servers}\n`;
  const file = join(tempDir('mp-haproxy-'), 'haproxy.cfg');
  writeFileSync(file, cfg);
  const child: ChildProcess = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.once('exit', () => child.kill('SIGKILL'));
  const http = `http://127.0.0.1:${port}`;
  try {
    await waitUntil(async () => {
      if (child.exitCode !== null) throw new Error(`haproxy exited: ${err}`);
      return (await fetch(`${http}/readyz`).catch(() => null))?.status === 200;
    });
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    port,
    http,
    ws: `ws://127.0.0.1:${port}/v1/ws`,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
