import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { PushError } from './domain/errors.js';
import { maskCredentials } from './observability/mask.js';

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
  /** The whole request (headers and body) within this long; 0 = no bound. */
  readonly bodyTimeoutMs: number;
  /** Open plain HTTP sockets (not upgraded); 0 = unlimited. */
  readonly maxHttpConnections: number;
  /** Client connections per process (503 at handshake, close 1013); 0 = limited by the OS only. */
  readonly maxConnections: number;
  /** Messages per second per app on the server API (429 + Retry-After); 0 = unlimited. */
  readonly appPushRate: number;
  /** Event-loop delay past which the process sheds new handshakes and pushes (503); 0 = never. */
  readonly overloadDelayMs: number;
  /** Topic subscriptions per connection (`$all` not counted). */
  readonly maxTopicsPerConnection: number;
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
  /** Members a group push writes per transaction. */
  readonly groupBatch: number;
}

/** Message lifecycle: topic join/leave events and the offline hand-off webhook. */
export interface LifecycleConfig {
  /** A topic leave is announced this late; a rejoin within it cancels both. */
  readonly presenceDebounceMs: number;
  /** Allow webhook URLs on private, loopback and link-local addresses (tests, private networks). */
  readonly webhookAllowPrivate: boolean;
  /** A webhook POST not answered within this is a failed attempt. */
  readonly webhookTimeoutMs: number;
  /** How often each node looks for due hand-offs. */
  readonly webhookPollMs: number;
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
  /** `interest`: a node receives from the bus only what its connections need; `broadcast`: everything. */
  readonly busRouting: 'interest' | 'broadcast';
  /** Prefix of this cluster's bus channels: clusters sharing one Redis or NATS never hear each other. */
  readonly busNamespace: string;
  /** WebSocket engine that owns the public port (src/gateway/engines/). */
  readonly engine: 'ws' | 'uws';
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
  /** Peers (CIDRs) whose X-Forwarded-For is believed; empty with trustProxy = loopback and private networks. */
  readonly trustedProxies: readonly string[];
  /** Client token checks for every app: allowed `aud` values (empty = not checked) and clock leeway. */
  readonly jwt: {
    readonly audience: readonly string[];
    readonly clockToleranceMs: number;
    /** Apps whose token key is a JWKS URL: how long its keys are kept, how soon an unknown kid fetches again. */
    readonly jwks: { readonly cacheMs: number; readonly cooldownMs: number; readonly timeoutMs: number };
  };
  /** PEM files: with both set the port serves https and wss directly. */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | null;
  readonly logLevel: string;
  readonly shutdownTimeoutMs: number;
  /** Bearer token of the dashboard and `/v1/admin/*`; null = both disabled. */
  readonly adminToken: string | null;
  /** Demo mode (`--demo`, PUSH_DEMO): the `demo` app, the `/demo` page and its token minting. Off by default. */
  readonly demo: boolean;
  /** `POST /v1/demo/token` and `/v1/demo/push` for the app `demo`; on whenever demo mode is. */
  readonly demoTokens: boolean;
  readonly lifecycle: LifecycleConfig;
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
export const DEFAULT_BODY_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_HTTP_CONNECTIONS = 16_384;
/** A loop stalled this long is in real trouble; shorter stalls (GC, a big fan-out) are ridden out. */
export const DEFAULT_OVERLOAD_DELAY_MS = 2000;
export const DEFAULT_MAX_TOPICS_PER_CONNECTION = 100;
export const DEFAULT_RESEND_MS = 5_000;
export const DEFAULT_MAX_RETRIES = 5;
export const DEFAULT_COALESCE_MS = 0;
export const DEFAULT_RETENTION_MS = 7 * 24 * 3600_000;
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 5_000;
export const DEFAULT_TOPIC_RETENTION_COUNT = 1000;
export const DEFAULT_QUEUE_PREFETCH = 64;
export const DEFAULT_QUEUE_MAX_DELIVER = 5;
export const DEFAULT_TOPIC_RETENTION_MS = 24 * 3600_000;
export const DEFAULT_GROUP_BATCH = 2_000;
export const DEFAULT_PRESENCE_DEBOUNCE_MS = 2_000;
export const DEFAULT_WEBHOOK_TIMEOUT_MS = 10_000;
export const DEFAULT_WEBHOOK_POLL_MS = 500;

type Kind = 'string' | 'int' | 'duration' | 'bool' | 'list';

interface Setting {
  readonly key: string;
  readonly env: string;
  readonly kind: Kind;
  readonly doc: string;
  /** The default as docs/configuration.md shows it (`npm run docs:config` renders this table). */
  readonly default?: string | number | boolean;
  readonly secret?: boolean;
}

/** Every setting, its env name, kind and default; docs/configuration.md is generated from this list. */
export const SETTINGS: readonly Setting[] = [
  {
    key: 'host',
    env: 'PUSH_HOST',
    kind: 'string',
    doc: 'interface to listen on',
    default: '`::` (all interfaces)',
  },
  { key: 'port', env: 'PUSH_PORT', kind: 'int', doc: 'HTTP + WebSocket port', default: '`8080`' },
  {
    key: 'engine',
    env: 'PUSH_ENGINE',
    kind: 'string',
    doc: 'WebSocket engine on the port: `ws` (portable, pure JavaScript) or `uws` (uWebSockets.js, native; needs the optional package `@trufflesuite/uws-js-unofficial`, Linux/macOS/Windows x64, arm64). See docs/engines.md',
    default: '`ws`',
  },
  {
    key: 'dataDir',
    env: 'PUSH_DATA_DIR',
    kind: 'string',
    doc: 'where the embedded SQLite file lives',
    default: '`./data`',
  },
  {
    key: 'dbUrl',
    env: 'PUSH_DB_URL',
    kind: 'string',
    doc: 'store: `sqlite:<path>` or `mysql://user:pass@host:3306/db` (MariaDB too; the database is created if missing; TLS: `?ssl=true`, `?ssl-ca=/path/ca.pem`)',
    default: '`sqlite:<dataDir>/push.db`',
  },
  {
    key: 'sqliteSync',
    env: 'PUSH_SQLITE_SYNC',
    kind: 'string',
    doc: '`normal`: commits survive process crashes (kill -9); `full`: also power loss, at an fsync per commit',
    default: '`normal`',
  },
  {
    key: 'busUrl',
    env: 'PUSH_BUS_URL',
    kind: 'string',
    doc: 'node-to-node bus: `redis://…` or `nats://…` (see docs/operations.md "Scaling out"); needs a MySQL store',
    default: 'in-process',
  },
  {
    key: 'busRouting',
    env: 'PUSH_BUS_ROUTING',
    kind: 'string',
    doc: 'interest (default: a node receives only what its connections need) | broadcast (every node everything; for a rolling upgrade from a version without routing)',
  },
  {
    key: 'busNamespace',
    env: 'PUSH_BUS_NAMESPACE',
    kind: 'string',
    doc: 'names this cluster on a shared bus (channels `message-push:<ns>:bus…`, subjects `message-push.<ns>.bus…`); 1..64 of [A-Za-z0-9_-]. Nodes of one cluster must agree',
    default: 'the database name of `PUSH_DB_URL`',
  },
  {
    key: 'workers',
    env: 'PUSH_WORKERS',
    kind: 'int',
    doc: 'node processes `start` runs on one port; more than 1 needs `PUSH_DB_URL=mysql://…` and `PUSH_BUS_URL`',
    default: '`1`',
  },
  {
    key: 'queueUrl',
    env: 'PUSH_QUEUE_URL',
    kind: 'list',
    doc: 'queue ingress, comma-separated: `amqp://…`, `nats://…`, `redis://…`',
    default: 'none',
  },
  {
    key: 'queuePrefetch',
    env: 'PUSH_QUEUE_PREFETCH',
    kind: 'int',
    doc: 'queue messages in flight per consumer before acks',
    default: '`64`',
  },
  {
    key: 'queueMaxDeliver',
    env: 'PUSH_QUEUE_MAX_DELIVER',
    kind: 'int',
    doc: 'deliveries of a message that keeps failing before it is dead-lettered',
    default: '`5`',
  },
  {
    key: 'apps',
    env: 'PUSH_APPS',
    kind: 'list',
    doc: "`app1:secret1,app2:secret2`; config is the source of truth for these apps' secrets",
    secret: true,
    default: 'none',
  },
  {
    key: 'nodeId',
    env: 'PUSH_NODE_ID',
    kind: 'string',
    doc: "this node's name in presence",
    default: '`<hostname>-<pid>`',
  },
  {
    key: 'heartbeatMs',
    env: 'PUSH_HEARTBEAT_MS',
    kind: 'duration',
    doc: 'server ping interval; silent clients are dropped after 2',
    default: '`15s`',
  },
  {
    key: 'maxConnectionsPerUser',
    env: 'PUSH_MAX_CONNECTIONS_PER_USER',
    kind: 'int',
    doc: '429 past it',
    default: '`20`',
  },
  {
    key: 'handshakesPerSecondPerIp',
    env: 'PUSH_HANDSHAKES_PER_SECOND',
    kind: 'int',
    doc: 'per client IP, refused handshakes included (429); `0` = unlimited',
    default: '`20`',
  },
  {
    key: 'framesPerSecond',
    env: 'PUSH_FRAMES_PER_SECOND',
    kind: 'int',
    doc: 'client frames per connection, sustained (close 4008)',
    default: '`100`',
  },
  {
    key: 'maxFrameBytes',
    env: 'PUSH_MAX_FRAME',
    kind: 'int',
    doc: 'largest client frame (close 1009)',
    default: '`65536`',
  },
  {
    key: 'maxDataBytes',
    env: 'PUSH_MAX_DATA',
    kind: 'int',
    doc: 'largest `data`, compact JSON (413)',
    default: '`65536`',
  },
  {
    key: 'tcpPort',
    env: 'PUSH_TCP_PORT',
    kind: 'int',
    doc: 'plain TCP listener for protocol v2; 0 = off',
    default: '`0`',
  },
  {
    key: 'compressMin',
    env: 'PUSH_BINARY_COMPRESS_MIN',
    kind: 'int',
    doc: 'protocol v2: compress bodies of at least this many bytes',
    default: '`256`',
  },
  {
    key: 'maxSendBufferBytes',
    env: 'PUSH_MAX_SEND_BUFFER',
    kind: 'int',
    doc: 'unsent bytes per connection; over it for 250 ms → close 4009',
    default: '`1048576`',
  },
  {
    key: 'headersTimeoutMs',
    env: 'PUSH_HEADERS_TIMEOUT_MS',
    kind: 'duration',
    doc: 'time to send request headers',
    default: '`10s`',
  },
  {
    key: 'resendMs',
    env: 'PUSH_RESEND_MS',
    kind: 'duration',
    doc: 'first resend of an unacked message; each next one waits 3× longer (5 s, 15 s, 45 s, …)',
    default: '`5s`',
  },
  {
    key: 'maxRetries',
    env: 'PUSH_MAX_RETRIES',
    kind: 'int',
    doc: 'resends on live connections before the delivery is `failed`',
    default: '`5`',
  },
  {
    key: 'coalesceMs',
    env: 'PUSH_COALESCE_MS',
    kind: 'duration',
    doc: 'frames for one connection within this window go out as one JSON array frame; `0`: those routed in the same task (a persisted batch routes all its pushes together), written right after it',
    default: '`0`',
  },
  {
    key: 'retentionMs',
    env: 'PUSH_RETENTION',
    kind: 'duration',
    doc: 'messages (and idempotency keys) are kept this long',
    default: '`7d`',
  },
  {
    key: 'bodyTimeoutMs',
    env: 'PUSH_BODY_TIMEOUT_MS',
    kind: 'duration',
    doc: 'time to send a whole request, body included (0 = unbounded)',
    default: '`30s`',
  },
  {
    key: 'maxHttpConnections',
    env: 'PUSH_MAX_HTTP_CONNECTIONS',
    kind: 'int',
    doc: 'open plain HTTP sockets (SSE and long-poll included, WebSockets not); 0 = unlimited',
    default: '`16384`',
  },
  {
    key: 'maxConnections',
    env: 'PUSH_MAX_CONNECTIONS',
    kind: 'int',
    doc: 'client connections per process (handshake 503, close 1013); 0 = limited by the OS only',
    default: '`0`',
  },
  {
    key: 'appPushRate',
    env: 'PUSH_APP_PUSH_RATE',
    kind: 'int',
    doc: 'messages/s per app on the server API (429 + Retry-After); 0 = unlimited',
    default: '`0`',
  },
  {
    key: 'overloadDelayMs',
    env: 'PUSH_OVERLOAD_DELAY_MS',
    kind: 'duration',
    doc: 'event-loop delay past which new handshakes and pushes get 503 overloaded; 0 = never shed',
    default: '`2s`',
  },
  {
    key: 'maxTopicsPerConnection',
    env: 'PUSH_MAX_TOPICS_PER_CONNECTION',
    kind: 'int',
    doc: 'topic subscriptions per connection (error frame rate_limited past it)',
    default: '`100`',
  },
  {
    key: 'topicRetentionCount',
    env: 'PUSH_TOPIC_RETENTION_COUNT',
    kind: 'int',
    doc: 'replayable messages per topic (also `$all`)',
    default: '`1000`',
  },
  {
    key: 'topicRetentionMs',
    env: 'PUSH_TOPIC_RETENTION',
    kind: 'duration',
    doc: 'topic messages older than this are not replayed',
    default: '`24h`',
  },
  {
    key: 'allowedOrigins',
    env: 'PUSH_ALLOWED_ORIGINS',
    kind: 'list',
    doc: 'browser origins (exact, comma-separated) admitted to the socket and answered CORS on the client HTTP API; `*` = any. Empty = none: only pages served by this server itself (same host) and clients that send no Origin',
    default: 'empty',
  },
  {
    key: 'trustProxy',
    env: 'PUSH_TRUST_PROXY',
    kind: 'bool',
    doc: 'believe X-Forwarded-For from loopback and private networks (when PUSH_TRUSTED_PROXIES is empty)',
    default: '`false`',
  },
  { key: 'logLevel', env: 'PUSH_LOG_LEVEL', kind: 'string', doc: 'pino level', default: '`info`' },
  {
    key: 'shutdownTimeoutMs',
    env: 'PUSH_SHUTDOWN_TIMEOUT_MS',
    kind: 'duration',
    doc: 'bound on graceful stop',
    default: '`5s`',
  },
  {
    key: 'groupBatch',
    env: 'PUSH_GROUP_BATCH',
    kind: 'int',
    doc: 'members a group push writes (and hands to delivery) per transaction',
    default: '`2000`',
  },
  {
    key: 'trustedProxies',
    env: 'PUSH_TRUSTED_PROXIES',
    kind: 'list',
    doc: 'CIDRs of proxies whose X-Forwarded-For is believed (read from the right); empty = none',
    default: 'empty',
  },
  {
    key: 'tlsCert',
    env: 'PUSH_TLS_CERT',
    kind: 'string',
    doc: 'PEM certificate (chain) file: serve https/wss directly (with PUSH_TLS_KEY)',
    default: 'unset',
  },
  {
    key: 'tlsKey',
    env: 'PUSH_TLS_KEY',
    kind: 'string',
    doc: 'PEM private key file for PUSH_TLS_CERT',
    secret: true,
    default: 'unset',
  },
  {
    key: 'jwtAudience',
    env: 'PUSH_JWT_AUDIENCE',
    kind: 'list',
    doc: 'client tokens must carry an aud naming one of these (comma separated); empty = aud not checked',
    default: 'empty',
  },
  {
    key: 'jwtClockToleranceMs',
    env: 'PUSH_JWT_CLOCK_TOLERANCE',
    kind: 'duration',
    doc: 'leeway for a client token’s exp and nbf when clocks disagree',
    default: '`0`',
  },
  {
    key: 'jwksCacheMs',
    env: 'PUSH_JWKS_CACHE_MS',
    kind: 'duration',
    doc: 'apps with a JWKS URL: its keys are fetched again after this long',
    default: '`10m`',
  },
  {
    key: 'jwksCooldownMs',
    env: 'PUSH_JWKS_COOLDOWN_MS',
    kind: 'duration',
    doc: 'apps with a JWKS URL: a token with an unknown kid fetches the set again at most this often',
    default: '`30s`',
  },
  {
    key: 'adminToken',
    env: 'PUSH_ADMIN_TOKEN',
    kind: 'string',
    doc: 'bearer token (≥ 16 chars) of `/dashboard` and `/v1/admin/*`; unset = both disabled (403)',
    secret: true,
    default: 'unset',
  },
  {
    key: 'demo',
    env: 'PUSH_DEMO',
    kind: 'bool',
    doc: 'demo mode (also `start --demo`): creates the app "demo", serves /demo and mints tokens for it; `npm start` turns it on',
    default: '`false`',
  },
  {
    key: 'demoTokens',
    env: 'PUSH_DEMO_TOKENS',
    kind: 'bool',
    doc: 'the demo page and its token minting and pushing for an existing app "demo", without creating it',
    default: 'as `PUSH_DEMO`',
  },
  {
    key: 'presenceDebounceMs',
    env: 'PUSH_PRESENCE_DEBOUNCE_MS',
    kind: 'duration',
    doc: 'topic leave events wait this long; a rejoin within it sends neither',
    default: '`2s`',
  },
  {
    key: 'webhookAllowPrivate',
    env: 'PUSH_WEBHOOK_ALLOW_PRIVATE',
    kind: 'bool',
    doc: 'allow hand-off webhook URLs on private/loopback addresses',
    default: '`false`',
  },
  {
    key: 'webhookTimeoutMs',
    env: 'PUSH_WEBHOOK_TIMEOUT_MS',
    kind: 'duration',
    doc: 'hand-off webhook POST timeout',
    default: '`10s`',
  },
  {
    key: 'webhookPollMs',
    env: 'PUSH_WEBHOOK_POLL_MS',
    kind: 'duration',
    doc: 'how often a node looks for due hand-offs',
    default: '`500ms`',
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
    if (secret.length < 24) {
      throw new PushError(
        'config_invalid',
        `PUSH_APPS: the secret of app "${appId}" is shorter than 24 characters; use a long random one (openssl rand -base64 32)`,
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
  const busRouting = get('busRouting', 'interest');
  if (busRouting !== 'interest' && busRouting !== 'broadcast') {
    throw new PushError(
      'config_invalid',
      `PUSH_BUS_ROUTING: expected interest or broadcast, got "${busRouting}"`,
    );
  }
  const busNamespace = get('busNamespace', defaultBusNamespace(dbUrl));
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(busNamespace)) {
    throw new PushError('config_invalid', 'PUSH_BUS_NAMESPACE: 1..64 of [A-Za-z0-9_-]');
  }
  const engine = get('engine', 'ws');
  if (engine !== 'ws' && engine !== 'uws') {
    throw new PushError('config_invalid', `PUSH_ENGINE: expected ws or uws, got "${engine}"`);
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
  const tlsCert = get<string | null>('tlsCert', null);
  const tlsKey = get<string | null>('tlsKey', null);
  if ((tlsCert === null) !== (tlsKey === null)) {
    throw new PushError('config_invalid', 'PUSH_TLS_CERT and PUSH_TLS_KEY: set both or neither');
  }
  const demo = get('demo', false);
  const config: Config = {
    host: get('host', '::'),
    port,
    dataDir,
    nodeId: get('nodeId', `${hostname()}-${process.pid}`),
    apps,
    store: { url: dbUrl, sqliteSync },
    busUrl,
    busRouting,
    busNamespace,
    engine,
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
      bodyTimeoutMs: get('bodyTimeoutMs', DEFAULT_BODY_TIMEOUT_MS),
      maxHttpConnections: get('maxHttpConnections', DEFAULT_MAX_HTTP_CONNECTIONS),
      maxConnections: get('maxConnections', 0),
      appPushRate: get('appPushRate', 0),
      overloadDelayMs: get('overloadDelayMs', DEFAULT_OVERLOAD_DELAY_MS),
      maxTopicsPerConnection: get('maxTopicsPerConnection', DEFAULT_MAX_TOPICS_PER_CONNECTION),
    },
    delivery: {
      resendMs: get('resendMs', DEFAULT_RESEND_MS),
      maxRetries: get('maxRetries', DEFAULT_MAX_RETRIES),
      coalesceMs: get('coalesceMs', DEFAULT_COALESCE_MS),
      retentionMs: get('retentionMs', DEFAULT_RETENTION_MS),
      topicRetentionCount: get('topicRetentionCount', DEFAULT_TOPIC_RETENTION_COUNT),
      topicRetentionMs: get('topicRetentionMs', DEFAULT_TOPIC_RETENTION_MS),
      groupBatch: Math.max(1, get('groupBatch', DEFAULT_GROUP_BATCH)),
    },
    binary: { tcpPort, compressMin: get('compressMin', DEFAULT_BINARY_COMPRESS_MIN) },
    allowedOrigins: get<string[]>('allowedOrigins', []),
    trustProxy: get('trustProxy', false),
    trustedProxies: get<string[]>('trustedProxies', []),
    jwt: {
      audience: get<string[]>('jwtAudience', []),
      clockToleranceMs: get('jwtClockToleranceMs', 0),
      jwks: {
        cacheMs: get('jwksCacheMs', 600_000),
        cooldownMs: get('jwksCooldownMs', 30_000),
        timeoutMs: 5_000,
      },
    },
    tls:
      tlsCert !== null && tlsKey !== null ? { certFile: resolve(tlsCert), keyFile: resolve(tlsKey) } : null,
    logLevel: get('logLevel', 'info'),
    shutdownTimeoutMs: get('shutdownTimeoutMs', DEFAULT_SHUTDOWN_TIMEOUT_MS),
    adminToken,
    demo,
    demoTokens: get('demoTokens', demo),
    lifecycle: {
      presenceDebounceMs: get('presenceDebounceMs', DEFAULT_PRESENCE_DEBOUNCE_MS),
      webhookAllowPrivate: get('webhookAllowPrivate', false),
      webhookTimeoutMs: Math.max(1, get('webhookTimeoutMs', DEFAULT_WEBHOOK_TIMEOUT_MS)),
      webhookPollMs: Math.max(10, get('webhookPollMs', DEFAULT_WEBHOOK_POLL_MS)),
    },
  };
  return deepFreeze(config);
}

/** The config as printed at startup: secrets and URL passwords masked. */
export function describeConfig(config: Config): Record<string, unknown> {
  const maskUrl = maskCredentials;
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

/**
 * Nodes that share a store are one cluster, so the store's database names its bus channels by
 * default: two deployments on one Redis or NATS, each with its own database, stay apart.
 */
function defaultBusNamespace(dbUrl: string): string {
  if (dbUrl.startsWith('sqlite:')) return 'default';
  let database: string;
  try {
    database = decodeURIComponent(new URL(dbUrl).pathname.slice(1));
  } catch {
    // Not echoed: the URL may carry a password.
    throw new PushError('config_invalid', 'PUSH_DB_URL: not a valid mysql:// or mariadb:// URL');
  }
  return database.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64) || 'default';
}
