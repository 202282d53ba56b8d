import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createSigner } from 'fast-jwt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildServer, ROOT, startChild } from '../helpers/child-server.js';
import { dropMysqlDatabase, withDatabase } from '../helpers/mysql.js';
import { tempDir } from '../helpers/server.js';
import { describeWithService } from '../helpers/services.js';

/**
 * `message-push app create|list|rotate|update` run as an operator would: the built CLI
 * (`npm run build` first) against a store, then a server started on that store honours what
 * the commands wrote. Once on a SQLite file, once on MariaDB.
 */

const run = promisify(execFile);
const CLI = join(ROOT, 'dist', 'cli.js');
/** Each command is a Node start: seconds apiece on a loaded machine. */
const CLI_TEST_MS = 240_000;

interface Result {
  code: number;
  out: string;
  err: string;
}

function appSuite(storeUrl: () => string, dir: () => string): void {
  const cli = async (...args: string[]): Promise<Result> => {
    try {
      const { stdout, stderr } = await run(process.execPath, [CLI, ...args], {
        env: { ...process.env, PUSH_DB_URL: storeUrl(), PUSH_DATA_DIR: dir(), PUSH_LOG_LEVEL: 'warn' },
      });
      return { code: 0, out: stdout, err: stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, out: e.stdout, err: e.stderr };
    }
  };
  const secretOf = (r: Result) => /^secret:\s+(\S+)$/m.exec(r.out)?.[1];
  /** `app list` as {app: [alg, key kind]}. */
  const list = async () => {
    const r = await cli('app', 'list');
    expect(r.code).toBe(0);
    return Object.fromEntries(
      r.out
        .trim()
        .split('\n')
        .map((line) => line.split('\t'))
        .map(([id, alg, key]) => [id, [alg, key]]),
    );
  };

  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  let webSecret = '';
  let server: ChildServer | undefined;
  afterAll(async () => server?.stop());

  it(
    'create: a generated secret of 256 bits; a second create of the same id, a short secret and a bad key are refused',
    async () => {
      const web = await cli('app', 'create', 'web');
      expect(web.code).toBe(0);
      webSecret = secretOf(web)!;
      expect(Buffer.from(webSecret, 'base64url').length).toBeGreaterThanOrEqual(32);
      expect((await cli('app', 'create', 'web')).err).toMatch(/exists/);
      const short = await cli('app', 'create', 'short', '--secret', 'secret1');
      expect(short.code).toBe(1);
      expect(short.err).toMatch(/24 characters/);
      const pem = join(dir(), 'rs.pem');
      writeFileSync(pem, rsa.publicKey.export({ type: 'spki', format: 'pem' }));
      const bad = join(dir(), 'bad.pem');
      writeFileSync(bad, 'not a key');
      expect((await cli('app', 'create', 'rs', '--jwt-alg', 'RS256', '--jwt-key-file', bad)).code).toBe(1);
      expect((await cli('app', 'create', 'rs', '--jwt-alg', 'RS256', '--jwt-key-file', pem)).code).toBe(0);
      const apps = await list();
      expect(apps).toMatchObject({ web: ['HS256', 'secret'], rs: ['RS256', 'own key'] });
      expect(apps).not.toHaveProperty('short');
    },
    CLI_TEST_MS,
  );

  it(
    'rotate: a new secret, the RS256 key kept',
    async () => {
      const r = await cli('app', 'rotate', 'rs');
      expect(r.code).toBe(0);
      expect(secretOf(r)).toMatch(/^[\w-]{43}$/);
      expect(await list()).toMatchObject({ rs: ['RS256', 'own key'] });
      expect((await cli('app', 'rotate', 'nope')).err).toMatch(/no app "nope"/);
    },
    CLI_TEST_MS,
  );

  it(
    'update: token key and algorithm change, the API secret stays; a JWKS URL is listed as such',
    async () => {
      const jwks = 'http://127.0.0.1:9/.well-known/jwks.json';
      expect((await cli('app', 'update', 'web', '--jwks-url', jwks, '--jwt-alg', 'ES256')).code).toBe(0);
      expect(await list()).toMatchObject({ web: ['ES256', `jwks ${jwks}`] });
      const hsKey = join(dir(), 'hs.key');
      writeFileSync(hsKey, `${randomBytes(48).toString('base64url')}\n`);
      // From RS/ES to HS needs a key: the secret is stored only as a hash.
      expect((await cli('app', 'update', 'web', '--jwt-alg', 'HS512')).err).toMatch(/needs a key/);
      expect((await cli('app', 'update', 'web', '--jwt-alg', 'HS512', '--jwt-key-file', hsKey)).code).toBe(0);
      expect(await list()).toMatchObject({ web: ['HS512', 'own key'] });
      expect((await cli('app', 'update', 'web')).code).toBe(1);
      expect((await cli('app', 'update', 'nope', '--jwt-alg', 'HS256')).err).toMatch(/no app "nope"/);
    },
    CLI_TEST_MS,
  );

  it(
    'a server on that store takes the apps as the CLI left them',
    async () => {
      server = await startChild(dir(), { PUSH_DB_URL: storeUrl() });
      const token = (await cli('token', '--app', 'web', '--user', 'cli-u')).out.trim();
      const me = (app: string, t: string) =>
        fetch(`${server!.http}/v1/me/unread`, {
          headers: { authorization: `Bearer ${t}`, 'auth-app-id': app },
        });
      expect((await me('web', token)).status).toBe(200);
      const rsToken = createSigner({
        key: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        algorithm: 'RS256',
        sub: 'cli-u',
        expiresIn: 600_000,
      })({});
      expect((await me('rs', rsToken)).status).toBe(200);
      // The API secret from `create` survived both updates.
      const push = await fetch(`${server.http}/v1/push`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`web:${webSecret}`).toString('base64')}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({ to: { users: ['cli-u'] }, data: 1 }),
      });
      expect(push.status).toBe(202);
    },
    CLI_TEST_MS,
  );
}

describe('CLI app commands on a SQLite file', () => {
  let dir = '';
  beforeAll(() => {
    dir = tempDir();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  appSuite(
    () => `sqlite:${join(dir, 'apps.db')}`,
    () => dir,
  );
});

await describeWithService('mysql', 'CLI app commands on MariaDB', (base) => {
  const url = withDatabase(base, `mp_cli_${randomBytes(4).toString('hex')}`);
  let dir = '';
  beforeAll(() => {
    dir = tempDir();
  });
  afterAll(async () => {
    await dropMysqlDatabase(url);
    rmSync(dir, { recursive: true, force: true });
  });
  appSuite(
    () => url,
    () => dir,
  );
});
