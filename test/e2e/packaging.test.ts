import { execFile, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, ROOT } from '../helpers/child-server.js';
import { TestClient } from '../helpers/client.js';
import { tempDir } from '../helpers/server.js';

const run = promisify(execFile);

/** Installing from the registry takes minutes on a cold npm cache. */
const INSTALL_TIMEOUT_MS = 15 * 60_000;
const SECRET = 'packaging-secret-0123456789abcdef';

/** The environment of a stranger's shell: none of our PUSH_* settings. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PUSH_')) env[k] = v;
  return { ...env, ...extra };
}

/**
 * What `npm publish` would ship, installed as a user would (`--omit=dev`, in an empty
 * folder): the bin starts, answers /healthz, and delivers a push. `npm test` builds first, so
 * the pack skips `prepare` (a rebuild here would rewrite dist/ under other suites' servers).
 */
describe('packaging: npm pack, then install the tarball without dev dependencies', () => {
  const dir = tempDir('mp-pack-');
  const app = join(dir, 'app');
  let child: ReturnType<typeof spawn> | undefined;
  afterAll(async () => {
    if (child && child.exitCode === null) {
      const gone = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it(
    'installs a working message-push start without the bench or dev dependencies',
    async () => {
      const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
        cwd: ROOT,
        maxBuffer: 16 * 1024 * 1024,
      });
      const [packed] = JSON.parse(stdout) as [{ filename: string; files: { path: string }[] }];
      const paths = packed.files.map((f) => f.path);
      expect(paths).toContain('dist/cli.js');
      expect(paths).toContain('dist/web/client.js');
      expect(paths).toContain('LICENSE');
      expect(paths.filter((p) => /(^|\/)bench\/|^src\/|^test\//.test(p))).toEqual([]);

      mkdirSync(app);
      // npm 11 asks the installing project to allow dependencies' install scripts.
      writeFileSync(
        join(app, 'package.json'),
        JSON.stringify({
          name: 'pack-check',
          private: true,
          allowScripts: { 'better-sqlite3': true, bufferutil: true },
        }),
      );
      await run(
        'npm',
        ['install', '--omit=dev', '--no-audit', '--no-fund', '--loglevel=error', join(dir, packed.filename)],
        { cwd: app, maxBuffer: 16 * 1024 * 1024, timeout: INSTALL_TIMEOUT_MS },
      );
      const installed = readdirSync(join(app, 'node_modules'));
      expect(installed).toContain('message-push');
      for (const devOnly of ['socket.io', 'socket.io-client', 'vitest', 'typescript']) {
        expect(installed).not.toContain(devOnly);
      }

      const port = await freePort();
      const env = cleanEnv({
        PUSH_PORT: String(port),
        PUSH_HOST: '127.0.0.1',
        PUSH_DATA_DIR: join(app, 'data'),
        PUSH_APPS: `shop:${SECRET}`,
      });
      const bin = join(app, 'node_modules', '.bin', 'message-push');
      child = spawn(bin, ['start'], { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      await new Promise<void>((resolve, reject) => {
        child!.stdout!.on('data', (c: Buffer) => {
          out += c.toString();
          if (out.includes('"message-push listening"')) resolve();
        });
        child!.stderr!.on('data', (c: Buffer) => (out += c.toString()));
        child!.once('exit', (code) => reject(new Error(`message-push start exited ${code}:\n${out}`)));
      });

      const base = `http://127.0.0.1:${port}`;
      const health = await fetch(`${base}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok' });

      const { stdout: token } = await run(bin, ['token', '--app', 'shop', '--user', 'alice'], {
        cwd: app,
        env,
      });
      const client = await TestClient.open(`ws://127.0.0.1:${port}/v1/ws`, {
        app: 'shop',
        token: token.trim(),
      });
      try {
        const res = await fetch(`${base}/v1/push`, {
          method: 'POST',
          headers: { authorization: `Basic ${Buffer.from(`shop:${SECRET}`).toString('base64')}` },
          body: JSON.stringify({ to: { users: ['alice'] }, data: { title: 'from the tarball' } }),
        });
        expect(res.status).toBe(202);
        const [message] = await client.messages(1);
        expect(message).toMatchObject({ op: 'message', seq: 1, data: { title: 'from the tarball' } });
      } finally {
        await client.close();
      }
    },
    INSTALL_TIMEOUT_MS + 60_000,
  );
});
