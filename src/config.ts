import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { PushError } from './domain/errors.js';

/**
 * The only module that reads the environment. Later sources win:
 * named defaults → config file (`PUSH_CONFIG`, JSON) → `PUSH_*` env → CLI flags.
 * The result is validated once and frozen; each component receives its slice.
 */

export interface AppBootstrap {
  readonly appId: string;
  readonly secret: string;
}

export interface StoreConfig {
  /** `sqlite:<path>` or `mysql://…` */
  readonly url: string;
  /** SQLite `synchronous` pragma: `normal` survives process crashes (kill -9), `full` also power loss. */
  readonly sqliteSync: 'normal' | 'full';
}

export interface QueueConfig {
  /** Queue ingress URLs (`amqp://`, `nats://`, `redis://`); several may be enabled. */
  readonly urls: readonly string[];
  /** Messages taken from a broker before earlier ones are acked. */
  readonly prefetch: number;
  /** Deliveries of one message before it is dead-lettered (retryable failures only). */
  readonly maxDeliver: number;
}

export interface LimitsConfig {
  readonly maxConnectionsPerUser: number;
  readonly handshakesPerSecondPerIp: number;
  readonly framesPerSecond: number;
  readonly maxFrameBytes: number;
  readonly maxDataBytes: number;
  readonly maxSendBufferBytes: number;
  readonly headersTimeoutMs: number;
}

export interface DeliveryConfig {
  readonly resendMs: number;
  readonly maxRetries: number;
  readonly coalesceMs: number;
  readonly retentionMs: number;
  /** Per topic: at most this many messages are replayable … */
  readonly topicRetentionCount: number;
  /** … and none older than this. */
  readonly topicRetentionMs: number;
}

/** Protocol v2 (`push.v2.bin` on WebSocket, and the plain TCP listener). */
export interface BinaryProtocolConfig {
  /** Plain TCP listener for v2 clients; 0 = off. */
  readonly tcpPort: number;
  /** Bodies of at least this many bytes are compressed when the client accepts a compression. */
  readonly compressMin: number;
}

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly nodeId: string;
  readonly apps: readonly AppBootstrap[];
  readonly store: StoreConfig;
  readonly busUrl: string;
  /** Node processes `start` runs on one port (node:cluster); each is a full node. */
  readonly workers: number;
  readonly queue: QueueConfig;
  readonly heartbeatMs: number;
  readonly limits: LimitsConfig;
  readonly delivery: DeliveryConfig;
  readonly binary: BinaryProtocolConfig;
  /** Empty = any origin. Browsers send Origin; other clients usually don't and are always allowed. */
  readonly allowedOrigins: readonly string[];
  readonly trustProxy: boolean;
  readonly logLevel: string;
  readonly shutdownTimeoutMs: number;
  /** Bearer token of the dashboard and `/v1/admin/*`; null = both disabled. */
  readonly adminToken: string | null;
  /** `POST /v1/demo/token` and `/v1/demo/push` for the app `demo`; on by default only in the quickstart (no PUSH_APPS). */
  readonly demoTokens: boolean;
}

export const DEFAULT_PORT = 8080;
export const DEFAULT_HEARTBEAT_MS = 15_000;
/** Below this a body rarely shrinks by more than the compression's own overhead (docs/reference/protocol-v2.md). */
export const DEFAULT_BINARY_COMPRESS_MIN = 256;
export const DEFAULT_MAX_CONNECTIONS_PER_USER = 20;
export const DEFAULT_HANDSHAKES_PER_SECOND = 20;
export const DEFAULT_FRAMES_PER_SECOND = 100;
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024;
export const DEFAULT_MAX_DATA_BYTES = 64 * 1024;
export const DEFAULT_MAX_SEND_BUFFER_BYTES = 1024 * 1024;
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
export const DEFAULT_RESEND_MS = 5_000;
export const DEFAULT_MAX_RETRIES = 5;
export const DEFAULT_COALESCE_MS = 0;
export const DEFAULT_RETENTION_MS = 7 * 24 * 3600_000;
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 5_000;
export const DEFAULT_TOPIC_RETENTION_COUNT = 1000;
export const DEFAULT_QUEUE_PREFETCH = 64;
export const DEFAULT_QUEUE_MAX_DELIVER = 5;
export const DEFAULT_TOPIC_RETENTION_MS = 24 * 3600_000;

type Kind = 'string' | 'int' | 'duration' | 'bool' | 'list';

interface Setting {
  readonly key: string;
  readonly env: string;
  readonly kind: Kind;
  readonly doc: string;
  readonly secret?: boolean;
}

/** Every setting, its env name and kind. The README's configuration table mirrors this list. */
export const SETTINGS: readonly Setting[] = [
  { key: 'host', env: 'PUSH_HOST', kind: 'string', doc: 'interface to listen on (default: all)' },
  { key: 'port', env: 'PUSH_PORT', kind: 'int', doc: 'HTTP + WebSocket port' },
  { key: 'dataDir', env: 'PUSH_DATA_DIR', kind: 'string', doc: 'directory of the embedded SQLite file' },
  { key: 'dbUrl', env: 'PUSH_DB_URL', kind: 'string', doc: 'sqlite:<path> or mysql://…' },
  { key: 'sqliteSync', env: 'PUSH_SQLITE_SYNC', kind: 'string', doc: 'normal | full' },
  {
    key: 'busUrl',
    env: 'PUSH_BUS_URL',
    kind: 'string',
    doc: 'node-to-node bus: redis://… or nats://…; empty = in-process (one node)',
  },
  {
    key: 'workers',
    env: 'PUSH_WORKERS',
    kind: 'int',
    doc: 'node processes sharing the port (> 1 needs MySQL and a bus)',
  },
  { key: 'queueUrl', env: 'PUSH_QUEUE_URL', kind: 'list', doc: 'queue ingress URL(s), comma separated' },
  { key: 'queuePrefetch', env: 'PUSH_QUEUE_PREFETCH', kind: 'int', doc: 'unacked queue messages in flight' },
  {
    key: 'queueMaxDeliver',
    env: 'PUSH_QUEUE_MAX_DELIVER',
    kind: 'int',
    doc: 'deliveries before dead letter',
  },
  { key: 'apps', env: 'PUSH_APPS', kind: 'list', doc: 'app1:secret1,app2:secret2 bootstrap', secret: true },
  { key: 'nodeId', env: 'PUSH_NODE_ID', kind: 'string', doc: 'this node’s name in presence' },
  { key: 'heartbeatMs', env: 'PUSH_HEARTBEAT_MS', kind: 'duration', doc: 'server ping interval' },
  { key: 'maxConnectionsPerUser', env: 'PUSH_MAX_CONNECTIONS_PER_USER', kind: 'int', doc: '429 past it' },
  { key: 'handshakesPerSecondPerIp', env: 'PUSH_HANDSHAKES_PER_SECOND', kind: 'int', doc: 'per client IP' },
  { key: 'framesPerSecond', env: 'PUSH_FRAMES_PER_SECOND', kind: 'int', doc: 'client frames/s (4008)' },
  { key: 'maxFrameBytes', env: 'PUSH_MAX_FRAME', kind: 'int', doc: 'largest client frame (1009)' },
  { key: 'maxDataBytes', env: 'PUSH_MAX_DATA', kind: 'int', doc: 'largest message data (413)' },
  { key: 'tcpPort', env: 'PUSH_TCP_PORT', kind: 'int', doc: 'plain TCP listener for protocol v2; 0 = off' },
  {
    key: 'compressMin',
    env: 'PUSH_BINARY_COMPRESS_MIN',
    kind: 'int',
    doc: 'protocol v2: compress bodies of at least this many bytes',
  },
  {
    key: 'maxSendBufferBytes',
    env: 'PUSH_MAX_SEND_BUFFER',
    kind: 'int',
    doc: 'unsent bytes per connection (4009)',
  },
  {
    key: 'headersTimeoutMs',
    env: 'PUSH_HEADERS_TIMEOUT_MS',
    kind: 'duration',
    doc: 'time to send request headers',
  },
  { key: 'resendMs', env: 'PUSH_RESEND_MS', kind: 'duration', doc: 'first resend of an unacked message' },
  { key: 'maxRetries', env: 'PUSH_MAX_RETRIES', kind: 'int', doc: 'resends before `failed`' },
  { key: 'coalesceMs', env: 'PUSH_COALESCE_MS', kind: 'duration', doc: 'window for merging frames' },
  { key: 'retentionMs', env: 'PUSH_RETENTION', kind: 'duration', doc: 'how long messages are kept' },
  {
    key: 'topicRetentionCount',
    env: 'PUSH_TOPIC_RETENTION_COUNT',
    kind: 'int',
    doc: 'messages kept per topic',
  },
  {
    key: 'topicRetentionMs',
    env: 'PUSH_TOPIC_RETENTION',
    kind: 'duration',
    doc: 'age limit of topic messages',
  },
  { key: 'allowedOrigins', env: 'PUSH_ALLOWED_ORIGINS', kind: 'list', doc: 'browser origins; empty = any' },
  { key: 'trustProxy', env: 'PUSH_TRUST_PROXY', kind: 'bool', doc: 'take client IP from X-Forwarded-For' },
  { key: 'logLevel', env: 'PUSH_LOG_LEVEL', kind: 'string', doc: 'pino level' },
  { key: 'shutdownTimeoutMs', env: 'PUSH_SHUTDOWN_TIMEOUT_MS', kind: 'duration', doc: 'graceful stop bound' },
  {
    key: 'adminToken',
    env: 'PUSH_ADMIN_TOKEN',
    kind: 'string',
    doc: 'bearer token of /dashboard and /v1/admin/*; unset = disabled',
    secret: true,
  },
  {
    key: 'demoTokens',
    env: 'PUSH_DEMO_TOKENS',
    kind: 'bool',
    doc: 'demo page may mint tokens and push for the app "demo" (default: only without PUSH_APPS)',
  },
];

type Raw = Record<string, string | number | boolean | string[] | undefined>;

/** Parses `250`, `250ms`, `15s`, `5m`, `1h`, `7d` into milliseconds. */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') return value;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(value.trim());
  if (!m) throw new Error(`not a duration: ${value}`);
  const n = Number(m[1]);
  const unit = m[2] ?? 'ms';
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 }[unit]!;
  return Math.round(n * factor);
}

function convert(setting: Setting, value: unknown): unknown {
  const fail = (why: string): never => {
    throw new PushError('config_invalid', `${setting.env}: ${why}`);
  };
  switch (setting.kind) {
    case 'string':
      return String(value);
    case 'int': {
      const n = typeof value === 'number' ? value : Number(String(value).trim());
      if (!Number.isSafeInteger(n) || n < 0)
        fail(`expected a non-negative integer, got ${JSON.stringify(value)}`);
      return n;
    }
    case 'duration':
      try {
        return parseDuration(value as string | number);
      } catch {
        return fail(`expected a duration like 500ms, 15s, 7d; got ${JSON.stringify(value)}`);
      }
    case 'bool': {
      if (typeof value === 'boolean') return value;
      const s = String(value).toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(s)) return true;
      if (['0', 'false', 'no', 'off', ''].includes(s)) return false;
      return fail(`expected true/false, got ${JSON.stringify(value)}`);
    }
    case 'list':
      if (Array.isArray(value)) return value.map(String);
      return String(value)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
  }
}

function parseApps(entries: string[]): AppBootstrap[] {
  return entries.map((entry) => {
    const i = entry.indexOf(':');
    const appId = i > 0 ? entry.slice(0, i) : '';
    const secret = i > 0 ? entry.slice(i + 1) : '';
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(appId) || secret.length < 1) {
      throw new PushError(
        'config_invalid',
        `PUSH_APPS: expected app:secret pairs, got an entry "${appId || entry}"`,
      );
    }
    return { appId, secret };
  });
}

export interface LoadConfigOptions {
  env?: NodeJS.ProcessEnv;
  /** CLI flags, keyed by setting key (`port`, `dbUrl`, …). */
  flags?: Raw;
  /** Path of a JSON config file; defaults to `PUSH_CONFIG`. */
  file?: string;
}

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const raw: Raw = {};
  const file = options.file ?? env.PUSH_CONFIG;
  if (file) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new PushError('config_invalid', `PUSH_CONFIG: cannot read ${file}: ${(err as Error).message}`);
    }
    if (!parsed || typeof parsed !== 'object')
      throw new PushError('config_invalid', 'PUSH_CONFIG: not an object');
    for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
      if (!SETTINGS.some((s) => s.key === k))
        throw new PushError('config_invalid', `PUSH_CONFIG: unknown key "${k}"`);
      raw[k] = v as Raw[string];
    }
  }
  for (const s of SETTINGS) {
    const v = env[s.env];
    if (v !== undefined && v !== '') raw[s.key] = v;
  }
  for (const [k, v] of Object.entries(options.flags ?? {})) if (v !== undefined) raw[k] = v;

  const values: Record<string, unknown> = {};
  for (const s of SETTINGS) if (raw[s.key] !== undefined) values[s.key] = convert(s, raw[s.key]);
  const get = <T>(key: string, fallback: T): T => (values[key] ?? fallback) as T;

  const dataDir = resolve(get('dataDir', './data'));
  const dbUrl = get('dbUrl', `sqlite:${join(dataDir, 'push.db')}`);
  if (!/^(sqlite:|mysql:\/\/|mariadb:\/\/)/.test(dbUrl)) {
    throw new PushError(
      'config_invalid',
      `PUSH_DB_URL: unsupported scheme in "${dbUrl}" (sqlite:… or mysql://…)`,
    );
  }
  const sqliteSync = get('sqliteSync', 'normal');
  if (sqliteSync !== 'normal' && sqliteSync !== 'full') {
    throw new PushError('config_invalid', `PUSH_SQLITE_SYNC: expected normal or full, got "${sqliteSync}"`);
  }
  const port = get('port', DEFAULT_PORT);
  if (port > 65535) throw new PushError('config_invalid', `PUSH_PORT: ${port} is not a port`);
  const tcpPort = get('tcpPort', 0);
  if (tcpPort > 65535) throw new PushError('config_invalid', `PUSH_TCP_PORT: ${tcpPort} is not a port`);
  const heartbeatMs = get('heartbeatMs', DEFAULT_HEARTBEAT_MS);
  if (heartbeatMs < 100) throw new PushError('config_invalid', 'PUSH_HEARTBEAT_MS: at least 100 ms');

  const busUrl = get('busUrl', '');
  if (busUrl !== '' && !/^(redis|rediss|nats):\/\//.test(busUrl)) {
    throw new PushError(
      'config_invalid',
      `PUSH_BUS_URL: unsupported scheme in "${busUrl}" (redis://… or nats://…)`,
    );
  }
  const workers = get('workers', 1);
  if (workers < 1) throw new PushError('config_invalid', 'PUSH_WORKERS: at least 1');
  // Several nodes must share one store and hear each other's messages. SQLite is one file
  // owned by one process, so a cluster of them would silently split users' histories.
  if ((workers > 1 || busUrl !== '') && dbUrl.startsWith('sqlite:')) {
    throw new PushError(
      'config_invalid',
      `${workers > 1 ? `PUSH_WORKERS=${workers}` : 'PUSH_BUS_URL'} needs a shared store: SQLite serves one process only; set PUSH_DB_URL=mysql://…`,
    );
  }
  if (workers > 1 && busUrl === '') {
    throw new PushError(
      'config_invalid',
      `PUSH_WORKERS=${workers} needs PUSH_BUS_URL (redis://… or nats://…) so the workers hear each other's messages`,
    );
  }

  const apps = parseApps(get<string[]>('apps', []));
  const adminToken = get<string | null>('adminToken', null);
  if (adminToken !== null && adminToken.length < 16) {
    throw new PushError('config_invalid', 'PUSH_ADMIN_TOKEN: at least 16 characters');
  }
  const config: Config = {
    host: get('host', '::'),
    port,
    dataDir,
    nodeId: get('nodeId', `${hostname()}-${process.pid}`),
    apps,
    store: { url: dbUrl, sqliteSync },
    busUrl,
    workers,
    queue: {
      urls: get<string[]>('queueUrl', []),
      prefetch: Math.max(1, get('queuePrefetch', DEFAULT_QUEUE_PREFETCH)),
      maxDeliver: Math.max(1, get('queueMaxDeliver', DEFAULT_QUEUE_MAX_DELIVER)),
    },
    heartbeatMs,
    limits: {
      maxConnectionsPerUser: get('maxConnectionsPerUser', DEFAULT_MAX_CONNECTIONS_PER_USER),
      handshakesPerSecondPerIp: get('handshakesPerSecondPerIp', DEFAULT_HANDSHAKES_PER_SECOND),
      framesPerSecond: get('framesPerSecond', DEFAULT_FRAMES_PER_SECOND),
      maxFrameBytes: get('maxFrameBytes', DEFAULT_MAX_FRAME_BYTES),
      maxDataBytes: get('maxDataBytes', DEFAULT_MAX_DATA_BYTES),
      maxSendBufferBytes: get('maxSendBufferBytes', DEFAULT_MAX_SEND_BUFFER_BYTES),
      headersTimeoutMs: get('headersTimeoutMs', DEFAULT_HEADERS_TIMEOUT_MS),
    },
    delivery: {
      resendMs: get('resendMs', DEFAULT_RESEND_MS),
      maxRetries: get('maxRetries', DEFAULT_MAX_RETRIES),
      coalesceMs: get('coalesceMs', DEFAULT_COALESCE_MS),
      retentionMs: get('retentionMs', DEFAULT_RETENTION_MS),
      topicRetentionCount: get('topicRetentionCount', DEFAULT_TOPIC_RETENTION_COUNT),
      topicRetentionMs: get('topicRetentionMs', DEFAULT_TOPIC_RETENTION_MS),
    },
    binary: { tcpPort, compressMin: get('compressMin', DEFAULT_BINARY_COMPRESS_MIN) },
    allowedOrigins: get<string[]>('allowedOrigins', []),
    trustProxy: get('trustProxy', false),
    logLevel: get('logLevel', 'info'),
    shutdownTimeoutMs: get('shutdownTimeoutMs', DEFAULT_SHUTDOWN_TIMEOUT_MS),
    adminToken,
    demoTokens: get('demoTokens', apps.length === 0),
  };
  return deepFreeze(config);
}

/** The config as printed at startup: secrets and URL passwords masked. */
export function describeConfig(config: Config): Record<string, unknown> {
  const maskUrl = (u: string) => u.replace(/\/\/([^:/@]+):([^@]+)@/, '//$1:***@');
  return {
    ...config,
    apps: config.apps.map((a) => `${a.appId}:***`),
    store: { ...config.store, url: maskUrl(config.store.url) },
    busUrl: maskUrl(config.busUrl),
    queue: { ...config.queue, urls: config.queue.urls.map(maskUrl) },
    adminToken: config.adminToken === null ? null : '***',
  };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
