import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { warnIfDemoExposed } from '../../src/api/routes/demo.js';
import { ROOT, startChild } from '../helpers/child-server.js';
import { tempDir } from '../helpers/server.js';

const run = promisify(execFile);

/** `message-push start` as an operator runs it: no PUSH_APPS, no demo settings. */
const BARE = { PUSH_APPS: '', PUSH_DEMO: '', PUSH_DEMO_TOKENS: '' };

describe('demo only when asked for', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('`message-push start` without --demo creates no app, serves no /demo and mints no tokens', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const s = await startChild(dir, BARE);
    try {
      for (const path of ['/demo', '/demo/demo.js', '/']) {
        const res = await fetch(s.http + path);
        expect(res.status).toBe(404);
        expect(await res.json()).toEqual({ error: { code: 'not_found', message: expect.any(String) } });
      }
      const minted = await fetch(`${s.http}/v1/demo/token`, { method: 'POST', body: '{}' });
      expect(minted.status).toBe(404);
      expect(s.stdout()).not.toContain('Created app');
      expect(s.stdout()).not.toContain('DEMO MODE');
    } finally {
      await s.stop();
    }
    const { stdout } = await run(process.execPath, ['dist/cli.js', 'app', 'list'], {
      cwd: ROOT,
      env: { ...process.env, PUSH_DATA_DIR: dir, PUSH_APPS: '' },
    });
    expect(stdout).not.toMatch(/\bdemo\b/);
  });

  it('`start --demo` creates the demo app and serves /demo; on loopback only it does not warn', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const s = await startChild(dir, { ...BARE, PUSH_DEMO: 'true', PUSH_HOST: '127.0.0.1' });
    try {
      expect(s.stdout()).toContain('Created app "demo"');
      expect((await fetch(`${s.http}/demo`)).status).toBe(200);
      const minted = await fetch(`${s.http}/v1/demo/token`, { method: 'POST', body: '{"user":"dee"}' });
      expect(minted.status).toBe(200);
      expect(s.stdout()).not.toContain('DEMO MODE ON A PUBLIC INTERFACE');
    } finally {
      await s.stop();
    }
  });

  it('warns when demo mode listens beyond loopback', () => {
    const warned: string[] = [];
    const log = { warn: (_o: object, msg: string) => void warned.push(msg) };
    expect(warnIfDemoExposed({ demo: true, host: '::' }, log)).toBe(true);
    expect(warnIfDemoExposed({ demo: true, host: '0.0.0.0' }, log)).toBe(true);
    expect(warnIfDemoExposed({ demo: true, host: '10.0.0.5' }, log)).toBe(true);
    expect(warnIfDemoExposed({ demo: true, host: '127.0.0.1' }, log)).toBe(false);
    expect(warnIfDemoExposed({ demo: true, host: '::1' }, log)).toBe(false);
    expect(warnIfDemoExposed({ demo: false, host: '::' }, log)).toBe(false);
    expect(warned).toHaveLength(3);
    expect(warned[0]).toContain('DEMO MODE');
  });
});
