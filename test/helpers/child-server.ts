import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { harness, type TestServer, testEnv } from './server.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const START_TIMEOUT_MS = 20_000;

/** Every child server still running; killed when the test worker exits, whatever happened. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export interface ChildServer extends TestServer {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited(): Promise<number | string>;
}

/**
 * Runs the built CLI (`node dist/cli.js start`) as a child process on `dataDir`, so tests
 * can kill -9 it and start it again on the same data. Resolves once it logs that it listens.
 * `env.PUSH_PORT` restarts it on a known port (clients reconnect to the same address).
 */
export async function startChild(dataDir: string, env: Record<string, string> = {}): Promise<ChildServer> {
  const port = env.PUSH_PORT ? Number(env.PUSH_PORT) : await freePort();
  const child = spawn(process.execPath, [CLI, 'start'], {
    env: { ...process.env, ...testEnv(dataDir, { PUSH_PORT: String(port), PUSH_LOG_LEVEL: 'info', ...env }) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let out = '';
  const exit = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve(code ?? signal ?? 'unknown');
    }),
  );
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`server did not listen within ${START_TIMEOUT_MS} ms:\n${out}`)),
        START_TIMEOUT_MS,
      );
      const onData = (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('"message-push listening"')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
      void exit.then((code) => reject(new Error(`server exited (${code}) before listening:\n${out}`)));
    });
  } catch (err) {
    child.kill('SIGKILL'); // never leave a half-started server behind
    throw err;
  }
  const h = harness(null, port, dataDir, async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exit;
  });
  return { ...h, child, stdout: () => out, exited: () => exit };
}
