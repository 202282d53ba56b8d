#!/usr/bin/env node
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { AppRegistry, keyIsSecret, type TokenKeyChange, tokenKeyKind } from './auth/app-registry.js';
import { signClientToken } from './auth/tokens.js';
import { type Config, describeConfig, loadConfig, parseDuration, SETTINGS } from './config.js';
import { isPushError } from './domain/errors.js';
import { WEBHOOK_USAGE, webhookCommand } from './lifecycle/webhook-command.js';
import { createLogger } from './observability/logger.js';
import { createServer } from './server.js';
import { createStore } from './store/create-store.js';
import type { AppRecord } from './store/store.js';

/** argv → commands. Each command is a few calls into the modules that do the work. */

const USAGE = `message-push — real-time message push service

Usage:
  message-push start [--demo] [--port 8080] [--db-url sqlite:./data/push.db] [--workers N] [--<setting> value …]
  message-push app create <app-id> [--secret S] [--jwt-alg RS256|ES256|HS256 (--jwt-key-file key.pem | --jwks-url URL)]
  message-push app list
  message-push app rotate <app-id> [--secret S] [--jwt-alg … --jwt-key-file … | --jwks-url …]
  message-push app update <app-id> [--jwt-alg ALG] [--jwt-key-file FILE | --jwks-url URL]
  ${WEBHOOK_USAGE}
  message-push token --app A --user U [--platform pc] [--ttl 1h] [--topics 'room:*,news']
  message-push send --app A --user U --data '{"title":"hi"}' [--type notification] [--url http://localhost:8080]

Settings (flags or PUSH_* environment variables): see docs/configuration.md.`;

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

const settingFlags = Object.fromEntries(
  SETTINGS.map((s) => [
    kebab(s.key),
    { type: s.key === 'demo' ? ('boolean' as const) : ('string' as const) },
  ]),
);

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...settingFlags,
      help: { type: 'boolean', short: 'h' },
      config: { type: 'string' },
      secret: { type: 'string' },
      'jwt-alg': { type: 'string' },
      'jwt-key-file': { type: 'string' },
      'jwks-url': { type: 'string' },
      app: { type: 'string' },
      user: { type: 'string' },
      platform: { type: 'string' },
      ttl: { type: 'string' },
      topics: { type: 'string' },
      data: { type: 'string' },
      type: { type: 'string' },
      url: { type: 'string' },
    },
  });
  const [command, sub, arg] = positionals;
  if (values.help || !command) {
    console.log(USAGE);
    return command ? 0 : 1;
  }
  const flags = Object.fromEntries(
    SETTINGS.map((s) => [s.key, values[kebab(s.key) as keyof typeof values] as string | boolean | undefined]),
  );
  // A worker of `start --workers` is named by the environment its primary gave it, not by
  // the --node-id flag every worker inherits.
  if (cluster.isWorker) delete flags.nodeId;
  const config = loadConfig({ flags, ...(values.config ? { file: values.config } : {}) });

  switch (command) {
    case 'start':
      return start(config);
    case 'app':
      return appCommand(config, sub, arg, values);
    case 'webhook':
      return webhookCommand(config, sub, arg, values);
    case 'token': {
      const { key, alg } = await tokenKeyFor(config, need(values.app, '--app'), values.secret);
      const token = await signClientToken({
        secret: key,
        alg,
        userId: need(values.user, '--user'),
        ttlSeconds: Math.round(parseDuration(values.ttl ?? '1h') / 1000),
        ...(values.platform ? { platform: values.platform } : {}),
        ...(values.topics ? { topics: values.topics.split(',') } : {}),
      });
      console.log(token);
      return 0;
    }
    case 'send':
      return send(config, values);
    default:
      console.error(`unknown command "${command}"\n\n${USAGE}`);
      return 1;
  }
}

async function start(config: Config): Promise<number> {
  if (config.workers > 1 && cluster.isPrimary) return startWorkers(config);
  const server = await createServer(config);
  if (cluster.isPrimary) {
    server.log.info({ config: describeConfig(config) }, 'configuration');
    if (config.demo) await ensureDemoApp(server.apps, config);
  }
  await server.start();
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.log.info({ signal }, 'stopping');
    const timer = setTimeout(() => {
      server.log.error('graceful stop timed out; exiting (accepted messages are already durable)');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    timer.unref();
    server.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        server.log.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  return -1; // keep running
}

/**
 * `start --workers N`: N node processes on one port (node:cluster hands each accepted
 * connection to a worker). Each worker is a full node on the shared bus and store, named
 * `<node-id>-<i>` so a restarted worker reclaims its slot's connection rows. A worker that
 * dies is started again; SIGTERM/SIGINT drain every worker (close 1001) and then exit.
 */
async function startWorkers(config: Config): Promise<number> {
  const log = createLogger(config.logLevel).child({ role: 'primary' });
  log.info({ config: describeConfig(config) }, 'configuration');
  if (config.demo) {
    const store = await createStore(config.store);
    try {
      await ensureDemoApp(new AppRegistry(store), config);
    } finally {
      await store.close();
    }
  }
  let stopping = false;
  const slotOf = new Map<number, number>();
  const fork = (slot: number) => {
    const w = cluster.fork({ PUSH_NODE_ID: `${config.nodeId}-${slot}` });
    slotOf.set(w.id, slot);
  };
  cluster.on('exit', (w, code, signal) => {
    const slot = slotOf.get(w.id)!;
    slotOf.delete(w.id);
    if (stopping) {
      if (slotOf.size === 0) process.exit(0);
      return;
    }
    log.error({ slot, code, signal }, 'worker died; starting it again');
    setTimeout(() => fork(slot), 1000).unref();
  });
  for (let slot = 1; slot <= config.workers; slot++) fork(slot);
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, workers: slotOf.size }, 'stopping workers');
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    if (slotOf.size === 0) process.exit(0);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  return -1; // keep running
}

/** Demo mode (`npm start`, `start --demo`): create the `demo` app once and tell the newcomer how to use it. */
async function ensureDemoApp(apps: AppRegistry, config: Config): Promise<void> {
  const base = `http://localhost:${config.port}`;
  const tokenCmd = 'node dist/cli.js token --app demo --user alice';
  const demoPage = `Open the demo page: ${base}/demo`;
  if (await apps.find('demo')) {
    console.log(`Using the existing "demo" app. Mint a test token:  ${tokenCmd}\n${demoPage}`);
    return;
  }
  const { secret } = await apps.createOrRotate('demo');
  console.log(
    [
      'Created app "demo" (the secret is shown only this once):',
      '  app id:  demo',
      `  secret:  ${secret}`,
      `Mint a test token:  ${tokenCmd}`,
      `Connect a client:   ws://localhost:${config.port}/v1/ws?app=demo&token=<token>`,
      `Push a message:     curl -u demo:${secret} -d '{"to":{"users":["alice"]},"data":{"title":"hi"}}' ${base}/v1/push`,
      demoPage,
    ].join('\n'),
  );
}

async function appCommand(
  config: Config,
  sub: string | undefined,
  appId: string | undefined,
  values: { secret?: string; 'jwt-alg'?: string; 'jwt-key-file'?: string; 'jwks-url'?: string },
): Promise<number> {
  const store = await createStore(config.store);
  try {
    const apps = new AppRegistry(store);
    if (sub === 'list') {
      for (const a of await store.listApps()) {
        const kind = tokenKeyKind(a);
        const key = kind === 'jwks' ? `jwks ${a.jwtKey}` : kind;
        console.log(`${a.appId}\t${a.jwtAlg}\t${key}\tcreated ${new Date(a.createdAt).toISOString()}`);
      }
      return 0;
    }
    if (sub !== 'create' && sub !== 'rotate' && sub !== 'update')
      throw new Error('app: create | list | rotate | update');
    const id = need(appId, '<app-id>');
    const exists = await apps.find(id);
    if (sub === 'create' && exists) throw new Error(`app "${id}" exists; use "app rotate" or "app update"`);
    if (sub !== 'create' && !exists) throw new Error(`no app "${id}"`);
    const change = tokenKeyChange(values);
    if (sub === 'update') {
      if (values.secret) throw new Error('app update keeps the secret; use "app rotate --secret"');
      if (Object.keys(change).length === 0)
        throw new Error('app update: give --jwt-alg, --jwt-key-file or --jwks-url');
      const record = await apps.updateTokenKey(id, change);
      console.log(`app id:  ${record.appId}\ntoken:   ${record.jwtAlg} (${tokenKeyKind(record)})`);
      return 0;
    }
    const result = await apps.createOrRotate(id, {
      ...(values.secret ? { secret: values.secret } : {}),
      ...change,
    });
    console.log(`app id:  ${result.appId}\nsecret:  ${result.secret}`);
    return 0;
  } finally {
    await store.close();
  }
}

/** `--jwt-alg`, `--jwt-key-file` (an HS key file's trailing newline is not part of the key), `--jwks-url`. */
function tokenKeyChange(values: {
  'jwt-alg'?: string;
  'jwt-key-file'?: string;
  'jwks-url'?: string;
}): TokenKeyChange {
  const file = values['jwt-key-file'];
  const url = values['jwks-url'];
  if (file && url) throw new Error('give --jwt-key-file or --jwks-url, not both');
  const alg = values['jwt-alg'] ?? (url ? 'RS256' : undefined);
  let key = url;
  if (file) {
    const text = readFileSync(file, 'utf8');
    key = alg?.startsWith('HS') ? text.replace(/\r?\n$/, '') : text;
  }
  return { ...(alg ? { jwtAlg: alg } : {}), ...(key !== undefined ? { jwtKey: key } : {}) };
}

async function send(config: Config, values: Record<string, string | boolean | undefined>): Promise<number> {
  const appId = need(values.app as string | undefined, '--app');
  const secret = await apiSecretFor(config, appId, values.secret as string | undefined);
  const body = {
    to: { users: [need(values.user as string | undefined, '--user')] },
    type: (values.type as string | undefined) ?? 'notification',
    data: JSON.parse((values.data as string | undefined) ?? 'null'),
  };
  const url = (values.url as string | undefined) ?? `http://localhost:${config.port}`;
  const res = await fetch(`${url}/v1/push`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Basic ${Buffer.from(`${appId}:${secret}`).toString('base64')}`,
    },
    body: JSON.stringify(body),
  });
  console.log(res.status, await res.text());
  return res.ok ? 0 : 1;
}

/** The API secret for `send`: --secret, else PUSH_APPS, else the stored HS key when it is the secret. */
async function apiSecretFor(config: Config, appId: string, given: string | undefined): Promise<string> {
  if (given) return given;
  const configured = config.apps.find((a) => a.appId === appId);
  if (configured) return configured.secret;
  const app = await storedApp(config, appId);
  if (!app) throw new Error(`no app "${appId}" in ${config.store.url}`);
  if (!keyIsSecret(app)) throw new Error(`app "${appId}": give its API secret with --secret`);
  return app.jwtKey;
}

/** The signing key for `token`: --secret, else the stored HS key and algorithm, else PUSH_APPS. */
async function tokenKeyFor(
  config: Config,
  appId: string,
  given: string | undefined,
): Promise<{ key: string; alg: string }> {
  if (given) return { key: given, alg: 'HS256' };
  const app = await storedApp(config, appId);
  if (!app) {
    const configured = config.apps.find((a) => a.appId === appId);
    if (configured) return { key: configured.secret, alg: 'HS256' };
    throw new Error(`no app "${appId}" in ${config.store.url}`);
  }
  if (!app.jwtAlg.startsWith('HS'))
    throw new Error(`app "${appId}" uses ${app.jwtAlg}: sign tokens with its private key`);
  return { key: app.jwtKey, alg: app.jwtAlg };
}

async function storedApp(config: Config, appId: string): Promise<AppRecord | undefined> {
  const store = await createStore(config.store);
  try {
    return await store.getApp(appId);
  } finally {
    await store.close();
  }
}

function need(value: string | undefined, name: string): string {
  if (!value) throw new Error(`${name} is required`);
  return value;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    console.error(isPushError(err) ? `${err.code}: ${err.message}` : `error: ${(err as Error).message}`);
    process.exitCode = 1;
  },
);
