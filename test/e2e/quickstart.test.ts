import { execFile, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, ROOT } from '../helpers/child-server.js';
import { TestClient } from '../helpers/client.js';
import { tempDir } from '../helpers/server.js';

const run = promisify(execFile);

/** The environment of a newcomer: none of our PUSH_* settings. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PUSH_')) env[k] = v;
  return { ...env, ...extra };
}

/**
 * `npm start` in its own process group, stopped as a terminal's Ctrl-C or a supervisor would:
 * a signal to the whole group. `exit` resolves with the output once every process has closed it.
 */
function npmStart(env: NodeJS.ProcessEnv) {
  const child = spawn('npm', ['start', '--silent'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  const exit = new Promise<string>((resolve) => child.once('close', () => resolve(out)));
  const stop = () => process.kill(-child.pid!, 'SIGTERM');
  const ready = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('"message-push listening"')) resolve(out);
    });
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    void exit.then((code) => reject(new Error(`npm start exited ${code}:\n${out}`)));
  });
  return { child, ready, exit, stop };
}

describe('quickstart: npm start with embedded defaults', () => {
  const dir = tempDir();
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('creates the demo app once, prints its credentials, serves /healthz, and the printed commands work', async () => {
    const port = await freePort();
    const env = cleanEnv({ PUSH_DATA_DIR: dir, PUSH_PORT: String(port) });
    const first = npmStart(env);
    const out = await first.ready;
    const secret = /secret:\s+(\S+)/.exec(out)?.[1];
    expect(out).toContain('Created app "demo"');
    expect(secret).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(out).toContain('node dist/cli.js token --app demo --user alice');
    // Demo mode on every interface (the default host): said loudly.
    expect(out).toMatch(/"level":40[^\n]*DEMO MODE ON A PUBLIC INTERFACE/);
    expect((await fetch(`http://127.0.0.1:${port}/demo`)).status).toBe(200);

    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);

    // The printed token command, against the same data directory.
    const { stdout: token } = await run(
      process.execPath,
      ['dist/cli.js', 'token', '--app', 'demo', '--user', 'alice'],
      {
        cwd: ROOT,
        env,
      },
    );
    const client = await TestClient.open(`ws://127.0.0.1:${port}/v1/ws`, {
      app: 'demo',
      token: token.trim(),
    });
    const res = await fetch(`http://127.0.0.1:${port}/v1/push`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`demo:${secret}`).toString('base64')}` },
      body: JSON.stringify({ to: { users: ['alice'] }, data: { title: 'hi' } }),
    });
    expect(res.status).toBe(202);
    const [m] = await client.messages(1);
    expect(m!.data).toEqual({ title: 'hi' });
    await client.close();

    first.stop();
    expect(await first.exit).toContain('"msg":"stopped"');

    // Second start on the same data: the demo app is kept, not re-created.
    const second = npmStart(env);
    const out2 = await second.ready;
    expect(out2).toContain('Using the existing "demo" app');
    expect(out2).not.toContain('Created app');
    second.stop();
    expect(await second.exit).toContain('"msg":"stopped"');
  });
});
