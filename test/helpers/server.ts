import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signClientToken } from '../../src/auth/tokens.js';
import { type Config, loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { createServer, type PushServer } from '../../src/server.js';

/** App secrets of at least 24 characters, as a configured secret must have. */
export const APPS = { a: 'secret-a-0123456789abcdef', b: 'secret-b-0123456789abcdef' } as const;

export interface TestServer {
  readonly server: PushServer;
  readonly port: number;
  readonly http: string;
  readonly ws: string;
  readonly dataDir: string;
  /** Basic auth header for an app. */
  auth(app?: keyof typeof APPS): string;
  token(
    user: string,
    options?: { app?: keyof typeof APPS; ttlSeconds?: number; platform?: string },
  ): Promise<string>;
  push(body: unknown, app?: keyof typeof APPS): Promise<{ status: number; body: any }>;
  api(
    method: string,
    path: string,
    body?: unknown,
    app?: keyof typeof APPS,
  ): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

/** The WebSocket engine this test run's servers use: PUSH_ENGINE of the run (ws when unset). */
export const TEST_ENGINE = process.env.PUSH_ENGINE === 'uws' ? 'uws' : 'ws';

/** Env for a server under test: two apps, generous handshake limits (tests open many sockets quickly). */
export function testEnv(dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PUSH_APPS: Object.entries(APPS)
      .map(([k, v]) => `${k}:${v}`)
      .join(','),
    PUSH_DATA_DIR: dataDir,
    PUSH_PORT: '0',
    PUSH_HOST: '127.0.0.1',
    PUSH_HANDSHAKES_PER_SECOND: '10000',
    PUSH_LOG_LEVEL: 'warn',
    // `npm test` runs the suite once per engine (see TEST_ENGINE).
    PUSH_ENGINE: TEST_ENGINE,
    ...extra,
  };
}

export function tempDir(prefix = 'mp-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Starts a whole server in this process on a free port with its own SQLite file. */
export async function startServer(env: Record<string, string> = {}): Promise<TestServer> {
  const dataDir = tempDir();
  const config: Config = loadConfig({ env: testEnv(dataDir, env) });
  const server = await createServer(config, { log: createLogger(config.logLevel) });
  const port = await server.start();
  return harness(server, port, dataDir, async () => {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
}

export function harness(
  server: PushServer | null,
  port: number,
  dataDir: string,
  stop: () => Promise<void>,
): TestServer {
  const http = `http://127.0.0.1:${port}`;
  const auth = (app: keyof typeof APPS = 'a') =>
    `Basic ${Buffer.from(`${app}:${APPS[app]}`).toString('base64')}`;
  const api = async (method: string, path: string, body?: unknown, app: keyof typeof APPS = 'a') => {
    const res = await fetch(http + path, {
      method,
      headers: {
        authorization: auth(app),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {}
    return { status: res.status, body: parsed as any };
  };
  return {
    server: server as PushServer,
    port,
    http,
    ws: `ws://127.0.0.1:${port}/v1/ws`,
    dataDir,
    auth,
    token: (user, o = {}) =>
      signClientToken({
        secret: APPS[o.app ?? 'a'],
        userId: user,
        ttlSeconds: o.ttlSeconds ?? 3600,
        ...(o.platform ? { platform: o.platform } : {}),
      }),
    push: (body, app = 'a') => api('POST', '/v1/push', body, app),
    api,
    stop,
  };
}
