/**
 * `npm run bench` / `message-push bench`: starts the servers under test (message-push, and the
 * raw `ws` and Socket.IO peers for idle and broadcast), drives them from client worker
 * processes (≤ 15k sockets each, spread over 127.0.0.x source addresses), and prints one
 * markdown table per scenario (also written as JSON under bench/results/). Every phase has a
 * deadline: a run always ends by itself.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dropMysqlDatabase } from '../test/helpers/mysql.js';
import { freePort } from './group-push.js';
import { HttpSender } from './http-sender.js';
import type { PeerStats } from './peer.js';
import { publishBodies, queueKind } from './queue-publishers.js';
import type { PeerKind, Protocol, WorkerCommand, WorkerReport } from './worker.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
// The bench runs from dist-bench/bench/; the server under test is the product's own build.
const CLI = join(HERE, '..', '..', 'dist', 'cli.js');
const MAX_SOCKETS_PER_WORKER = 15_000;
/** `$all` + group push pairs per group run: the row shows medians and each round's ratio. */
const GROUP_ROUNDS = 5;
const APP = 'bench';
const SECRET = randomBytes(16).toString('hex');

/** The raw peers (`bench/peer.ts`), by their `--peers` names, and how the tables name them. */
export const PEERS = {
  ws: 'raw ws',
  socketio: 'Socket.IO',
  uws: 'raw uWS (trufflesuite 20.30)',
  'uws-btc': 'raw uWS (btc-vision 20.57)',
  rfc6455: 'raw RFC 6455 (node:http)',
} as const;
export type PeerName = keyof typeof PEERS;

export interface BenchOptions {
  quick: boolean;
  /** PUSH_ENGINE of the server under test. */
  engine: 'ws' | 'uws';
  connections: number[];
  scenarios: string[];
  /** Peers that idle, broadcast and direct also run against (none with `--no-peers`). */
  peers: PeerName[];
  /** Protocols message-push is measured on, side by side (`--protocol v1,v2`). */
  protocols: Protocol[];
  target: string | null;
  app: string;
  secret: string;
  sourceAddresses: number;
  out: string;
  /**
   * Server processes: > 1 runs message-push as `start --workers N` (on `dbUrl`, a MySQL server
   * URL — the bench creates and drops its own database — and `busUrl`) and the raw ws floor
   * sharded the same way. Socket.IO has no sharded peer here (it would need an adapter).
   */
  shards: number;
  dbUrl: string;
  busUrl: string;
  /** Brokers for the queue-ingest scenario. */
  queueUrls: string[];
  /** Where the message-push server processes write V8 CPU profiles (`--cpu-prof`), or null. */
  cpuProfDir: string | null;
  /** Offered rates of the direct scenario's steps (msg/s), or null for the default steps. */
  rates: number[] | null;
  /** The room scenario's load (`--room 15000,1000,10,1000`: subscribers, msg/s, seconds, merge_ms). */
  room: { subscribers: number; rate: number; seconds: number; mergeMs: number };
  /** The group scenario's group sizes (`--members 100000`). */
  groupMembers: number[];
}

interface Row {
  scenario: string;
  server: string;
  connections: number;
  [metric: string]: string | number;
}

// ---------- processes under test ----------

interface Target {
  name: string;
  kind: PeerKind;
  url: string;
  /** message-push: the protocol its clients speak. */
  protocol?: Protocol;
  /** A raw peer's `POST /direct` (one message to a random connection). */
  directUrl?: string;
  pid: number | null;
  broadcast(): Promise<number>;
  /**
   * Event-loop delay since the last call (and heap); for message-push also the cumulative
   * `push_delivery_seconds` buckets (upper bound in ms → count).
   */
  loop(): Promise<{ p99: number; max: number; heap: number; delivery?: Map<number, number> }>;
  resetLoop(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * CPU time and RSS of a process and its children (the workers of a sharded server). CPU is
 * the sum of its threads' schedstat run time (ns): /proc/PID/stat counts in 10 ms ticks,
 * too coarse for a broadcast to 5k sockets (≈ 50 ms of CPU in all).
 */
function procStats(pid: number): { cpuMs: number; rss: number } {
  let cpuMs = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      cpuMs += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
    } catch {} // the thread ended meanwhile
  }
  let rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  for (const child of children ? children.split(' ').map(Number) : []) {
    try {
      const c = procStats(child);
      cpuMs += c.cpuMs;
      rss += c.rss;
    } catch {} // exited meanwhile
  }
  return { cpuMs, rss };
}

const agent = new Agent({ keepAlive: true, maxSockets: 64 });
/**
 * Connections the direct scenario pushes over: its offered rate is capped at this many over
 * the response time (which includes the durable commit), so the cap must sit well above the
 * highest step — a backend pushing thousands a second runs a pool of that order too.
 */
const SENDER_CONNECTIONS = 256;

function httpJson(
  url: string,
  method: string,
  body: unknown,
  auth: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      url,
      { method, agent, headers: { authorization: auth, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

function payload(): { t: number; pad: string } {
  return { t: Date.now(), pad: 'x'.repeat(160) }; // ≈ 200 bytes on the wire with framing fields
}

/** How the tables name message-push on a protocol: plain for v1, as every earlier run did. */
const pushName = (protocol: Protocol) => (protocol === 'v1' ? 'message-push' : `message-push ${protocol}`);

async function startPush(
  options: BenchOptions,
  extraEnv: Record<string, string> = {},
  protocol: Protocol = 'v1',
): Promise<Target> {
  const named = await startPushServer(options, extraEnv);
  return protocol === 'v1'
    ? named
    : { ...named, protocol, name: named.name.replace('message-push', pushName(protocol)) };
}

async function startPushServer(options: BenchOptions, extraEnv: Record<string, string>): Promise<Target> {
  if (options.target) return remoteTarget(options);
  const dir = mkdtempSync(join(tmpdir(), 'mp-bench-'));
  const port = await freePort();
  const sharded = options.shards > 1;
  const dbUrl = sharded ? benchDatabase(options.dbUrl) : '';
  const prof = options.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProfDir] : [];
  const child = spawn(process.execPath, [...prof, CLI, 'start'], {
    env: {
      ...process.env,
      PUSH_APPS: `${APP}:${SECRET}`,
      PUSH_DATA_DIR: dir,
      PUSH_PORT: String(port),
      PUSH_HOST: '127.0.0.1',
      PUSH_HANDSHAKES_PER_SECOND: '0',
      // Info in a sharded run: each worker's "listening" line tells when all are up.
      PUSH_LOG_LEVEL: sharded ? 'info' : 'warn',
      PUSH_RESEND_MS: '60s',
      PUSH_ENGINE: options.engine,
      ...(sharded
        ? { PUSH_WORKERS: String(options.shards), PUSH_DB_URL: dbUrl, PUSH_BUS_URL: options.busUrl }
        : {}),
      ...extraEnv,
    },
    stdio: ['ignore', sharded ? 'pipe' : 'ignore', 'inherit'],
  });
  let listening = 0;
  child.stdout?.on('data', (c: Buffer) => {
    listening += (c.toString().match(/"message-push listening"/g) ?? []).length;
  });
  const base = `http://127.0.0.1:${port}`;
  await waitFor(
    async () =>
      (!sharded || listening >= options.shards) &&
      (await httpJson(`${base}/healthz`, 'GET', undefined, '').catch(() => null))?.status === 200,
    60_000,
  );
  const t = pushTarget(base, child.pid!, APP, SECRET);
  return {
    ...t,
    // /metrics answers for whichever worker took the request: heap is not the cluster's.
    ...(sharded
      ? {
          name: `message-push ×${options.shards}`,
          loop: async () => ({ ...(await t.loop()), heap: Number.NaN }),
        }
      : {}),
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
      if (sharded) await dropMysqlDatabase(dbUrl);
    },
  };
}

/** A database of its own on the given MySQL server, so runs never see each other's rows. */
function benchDatabase(serverUrl: string): string {
  if (!/^(mysql|mariadb):\/\//.test(serverUrl)) {
    throw new Error('--shards > 1 needs --db-url mysql://… (SQLite serves one process only)');
  }
  const u = new URL(serverUrl);
  u.pathname = `/mp_bench_${randomBytes(4).toString('hex')}`;
  return u.toString();
}

function remoteTarget(options: BenchOptions): Target {
  return {
    ...pushTarget(options.target!.replace(/\/$/, ''), null, options.app, options.secret),
    stop: async () => {},
  };
}

function pushTarget(base: string, pid: number | null, app: string, secret: string): Omit<Target, 'stop'> {
  const auth = `Basic ${Buffer.from(`${app}:${secret}`).toString('base64')}`;
  const scrape = async () => {
    const text = (await httpJson(`${base}/metrics`, 'GET', undefined, '')).text;
    const metric = (name: string) =>
      Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
    const delivery = new Map<number, number>();
    for (const m of text.matchAll(/^push_delivery_seconds_bucket\{le="([0-9.e+-]+|\+Inf)"\} (\d+)$/gm)) {
      delivery.set(m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]) * 1000, Number(m[2]));
    }
    return {
      p99: metric('push_process_nodejs_eventloop_lag_p99_seconds') * 1000,
      max: metric('push_process_nodejs_eventloop_lag_max_seconds') * 1000,
      heap: metric('push_process_nodejs_heap_size_used_bytes'),
      delivery,
    };
  };
  return {
    name: 'message-push',
    kind: 'push',
    url: `${base.replace(/^http/, 'ws')}/v1/ws`,
    pid,
    async broadcast() {
      const t0 = Date.now();
      const res = await httpJson(`${base}/v1/push`, 'POST', { to: { all: true }, data: payload() }, auth);
      if (res.status !== 202) throw new Error(`broadcast refused: ${res.status} ${res.text}`);
      return t0;
    },
    loop: scrape,
    resetLoop: async () => void (await scrape()), // prom-client resets the lag histogram on each scrape
  };
}

/** A raw peer as a child process; rejects (the run goes on without it) if it cannot start. */
async function startPeer(kind: PeerName, shards = 1): Promise<Target> {
  const child = fork(join(HERE, 'peer.js'), [kind, String(shards)], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) =>
    child.once('message', (m: { op: string; port?: number; error?: string }) =>
      m.op === 'listening' ? resolve(m.port!) : reject(new Error(m.error ?? 'peer failed')),
    ),
  );
  const ask = <T>(cmd: object, reply: string) =>
    new Promise<T>((resolve) => {
      const on = (m: { op: string; stats?: PeerStats }) => {
        if (m.op === reply) {
          child.off('message', on);
          resolve(m as T);
        }
      };
      child.on('message', on);
      child.send(cmd);
    });
  return {
    name: PEERS[kind] + (shards > 1 ? ` ×${shards}` : ''),
    kind: kind === 'socketio' ? 'socketio' : 'ws',
    url: kind === 'socketio' ? `http://127.0.0.1:${port}` : `ws://127.0.0.1:${port}`,
    directUrl: `http://127.0.0.1:${port}/direct`,
    pid: child.pid!,
    async broadcast() {
      const p = payload();
      child.send({ op: 'broadcast', payload: JSON.stringify(p) });
      return p.t;
    },
    async loop() {
      const { stats } = await ask<{ stats: PeerStats }>({ op: 'stats' }, 'stats');
      return { p99: stats.loopP99Ms, max: stats.loopMaxMs, heap: stats.heapUsed };
    },
    async resetLoop() {
      child.send({ op: 'reset-stats' });
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

// ---------- client workers ----------

class Workers {
  private readonly procs: ChildProcess[] = [];

  constructor(count: number) {
    for (let i = 0; i < count; i++) {
      this.procs.push(fork(join(HERE, 'worker.js'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }));
    }
  }

  private all<T extends WorkerReport>(
    cmd: (i: number) => WorkerCommand,
    reply: T['op'],
    onOther?: (r: WorkerReport, worker: number) => void,
  ) {
    return Promise.all(
      this.procs.map(
        (p, i) =>
          new Promise<T>((resolve) => {
            const on = (m: WorkerReport) => {
              if (m.op === reply) {
                p.off('message', on);
                resolve(m as T);
              } else onOther?.(m, i);
            };
            p.on('message', on);
            p.send(cmd(i));
          }),
      ),
    );
  }

  async connect(target: Target, total: number, options: BenchOptions, ack = false, topic?: string) {
    const per = Math.ceil(total / this.procs.length);
    const addresses = Array.from({ length: options.sourceAddresses }, (_, i) => `127.0.0.${i + 1}`);
    const progress = new Map<number, number>();
    let lastPrint = 0;
    const started = Date.now();
    const reports = await this.all<Extract<WorkerReport, { op: 'connected' }>>(
      (i) => ({
        op: 'connect',
        kind: target.kind,
        url: target.url,
        first: i * per,
        count: Math.max(0, Math.min(per, total - i * per)),
        localAddresses: addresses,
        app: options.target ? options.app : APP,
        secret: options.target ? options.secret : SECRET,
        concurrency: 64,
        ack,
        protocol: target.protocol ?? 'v1',
        ...(topic ? { topic } : {}),
      }),
      'connected',
      (r, worker) => {
        if (r.op !== 'progress') return;
        progress.set(worker, r.open);
        const now = Date.now();
        if (now - lastPrint > 1000) {
          lastPrint = now;
          process.stderr.write(
            `\r  connecting to ${target.name}: ${[...progress.values()].reduce((a, b) => a + b, 0)}/${total}   `,
          );
        }
      },
    );
    const open = reports.reduce((n, r) => n + r.open, 0);
    const failed = reports.reduce((n, r) => n + r.failed, 0);
    const seconds = (Date.now() - started) / 1000;
    process.stderr.write(
      `\r  connected to ${target.name}: ${open}/${total} in ${seconds.toFixed(1)} s${failed ? `, ${failed} failed` : ''}\n`,
    );
    return { open, failed, rate: open / seconds };
  }

  reset(): void {
    for (const p of this.procs) p.send({ op: 'reset' } satisfies WorkerCommand);
  }

  /** CPU ms the client processes have used so far (all their threads). */
  cpuMs(): number {
    return this.procs.reduce((ms, p) => ms + (p.pid ? procStats(p.pid).cpuMs : 0), 0);
  }

  /** What the clients received since the last reset (`latencies` false: counts only, a cheap poll). */
  async collect(latencies = true) {
    const reports = await this.all<Extract<WorkerReport, { op: 'collected' }>>(
      () => ({ op: 'collect', latencies }),
      'collected',
    );
    const rooms = reports.flatMap((r) => (r.room ? [r.room] : []));
    return {
      latencies: reports.flatMap((r) => r.latencies),
      received: reports.reduce((n, r) => n + r.received, 0),
      lastAt: Math.max(...reports.map((r) => r.lastAt)),
      room: {
        frames: rooms.reduce((n, r) => n + r.frames, 0),
        bytes: rooms.reduce((n, r) => n + r.bytes, 0),
        outOfOrder: rooms.reduce((n, r) => n + r.outOfOrder, 0),
        minCount: Math.min(...rooms.map((r) => r.minCount)),
      },
    };
  }

  async close(): Promise<void> {
    await Promise.race([this.all(() => ({ op: 'close' }), 'closed'), sleep(5000)]);
    for (const p of this.procs) p.kill();
  }
}

// ---------- scenarios ----------

async function idleAndBroadcast(
  target: Target,
  n: number,
  options: BenchOptions,
  rows: Row[],
): Promise<void> {
  const workers = new Workers(Math.max(2, Math.ceil(n / MAX_SOCKETS_PER_WORKER)));
  try {
    await sleep(500);
    const before = target.pid ? procStats(target.pid) : null;
    const heapBefore = (await target.loop()).heap;
    const conn = await workers.connect(target, n, options);
    await sleep(2000); // let allocation settle
    await target.resetLoop();
    const idleStart = target.pid ? procStats(target.pid) : null;
    const idleMs = options.quick ? 10_000 : 20_000;
    await sleep(idleMs);
    const idleEnd = target.pid ? procStats(target.pid) : null;
    const loop = await target.loop();
    const perConn = before && idleEnd ? (idleEnd.rss - before.rss) / conn.open : Number.NaN;
    rows.push({
      scenario: 'idle',
      server: target.name,
      connections: conn.open,
      'connect/s': Math.round(conn.rate),
      'RSS/conn KiB': round(perConn / 1024, 2),
      'heap/conn KiB': round((loop.heap - heapBefore) / conn.open / 1024, 2),
      'idle CPU %':
        idleStart && idleEnd ? round(((idleEnd.cpuMs - idleStart.cpuMs) / idleMs) * 100, 2) : Number.NaN,
      'loop p99 ms': round(loop.p99, 1),
      'loop max ms': round(loop.max, 1),
    });

    const runs: { last: number; p50: number; p99: number; cpu: number }[] = [];
    for (let r = 0; r < (options.quick ? 3 : 5); r++) {
      workers.reset();
      await sleep(200);
      const cpu0 = target.pid ? procStats(target.pid).cpuMs : Number.NaN;
      const t0 = await target.broadcast();
      const got = await waitFor(async () => {
        const c = await workers.collect();
        return c.received >= conn.open ? c : null;
      }, 30_000);
      const cpu1 = target.pid ? procStats(target.pid).cpuMs : Number.NaN;
      const sorted = got.latencies.sort((a, b) => a - b);
      runs.push({
        last: got.lastAt - t0,
        p50: pct(sorted, 50),
        p99: pct(sorted, 99),
        cpu: ((cpu1 - cpu0) * 1000) / conn.open,
      });
      await sleep(300);
    }
    rows.push({
      scenario: 'broadcast',
      server: target.name,
      connections: conn.open,
      'to last client ms': median(runs.map((r) => r.last)),
      'p50 ms': median(runs.map((r) => r.p50)),
      'p99 ms': median(runs.map((r) => r.p99)),
      'CPU µs/delivery': round(median(runs.map((r) => r.cpu)), 2),
    });
  } finally {
    await workers.close();
  }
}

/**
 * Pushes at fixed rates to random connected users through the HTTP API; latency is ingest →
 * client. On a raw peer (`target.directUrl`) the same steps go to its `POST /direct`, which
 * hands the message to a random connection from memory: the floor of the path, no store.
 */
async function direct(target: Target, options: BenchOptions, rows: Row[]): Promise<void> {
  const users = options.quick ? 5000 : 10_000;
  const workers = new Workers(2);
  let sender: HttpSender | null = null;
  try {
    const isPush = target.kind === 'push';
    const conn = await workers.connect(target, users, options, isPush);
    const base = target.url.replace(/^ws/, 'http').replace(/\/v1\/ws$/, '');
    const auth = `Basic ${Buffer.from(`${options.target ? options.app : APP}:${options.target ? options.secret : SECRET}`).toString('base64')}`;
    const rates = options.rates ?? (options.quick ? [1000, 2500, 5000] : [1000, 2500, 5000, 7500, 10_000]);
    const stepMs = options.quick ? 4000 : 8000;
    const body = isPush
      ? () =>
          JSON.stringify({ to: { users: [`u${Math.floor(Math.random() * conn.open)}`] }, data: payload() })
      : () => JSON.stringify(payload());
    const pushSender = new HttpSender(target.directUrl ?? `${base}/v1/push`, auth, SENDER_CONNECTIONS);
    sender = pushSender; // closed in finally
    const pushOne = () => pushSender.post(body());
    // Steady state, not a cold start: 3 s at 1000/s first, unmeasured. The first step used
    // to start with a few hundred ms of queueing while the push path was still unoptimised.
    await pace(1000, 3000, pushOne);
    let held10 = 0;
    let held50 = 0;
    for (const rate of rates) {
      // After the connects the server still writes connection rows and reads backlogs for a
      // while: a step started then measured that work too.
      if (target.pid) await settle(target.pid);
      workers.reset();
      const before = await target.loop(); // also starts the step's event-loop window
      const cpu0 = target.pid ? procStats(target.pid).cpuMs : Number.NaN;
      const own0 = process.cpuUsage();
      const sent = await pace(rate, stepMs, pushOne);
      // CPU of the pacing window only: the server's per push, and the load generator's share
      // (it runs on the same two cores, so its cost is part of every latency figure here).
      const serverCpuMs = (target.pid ? procStats(target.pid).cpuMs : Number.NaN) - cpu0;
      const own = process.cpuUsage(own0);
      await sleep(1000);
      const got = await workers.collect();
      const sorted = got.latencies.sort((a, b) => a - b);
      const loop = await target.loop();
      const server = before.delivery
        ? histogramDelta(before.delivery, loop.delivery ?? new Map())
        : { p50: '', p99: '' };
      const row: Row = {
        scenario: 'direct',
        server: target.name,
        connections: conn.open,
        'rate msg/s': rate,
        'achieved msg/s': Math.round(sent.ok / (stepMs / 1000)),
        'p50 ms': pct(sorted, 50),
        'p99 ms': pct(sorted, 99),
        'max ms': sorted[sorted.length - 1] ?? Number.NaN,
        'server p50/p99 ms ≤': `${server.p50}/${server.p99}`,
        'loop p99/max ms': `${round(loop.p99, 1)}/${round(loop.max, 1)}`,
        delivered: `${got.received}/${sent.ok}`,
        'server CPU µs/push': round((serverCpuMs * 1000) / Math.max(1, sent.ok), 1),
        'sender CPU %': round(((own.user + own.system) / 1000 / stepMs) * 100, 1),
      };
      rows.push(row);
      const ok = got.received >= sent.ok * 0.999 && sent.ok >= rate * (stepMs / 1000) * 0.95;
      if (ok && pct(sorted, 99) < 10) held10 = rate;
      if (ok && pct(sorted, 99) < 50) held50 = rate;
      if (!ok || pct(sorted, 99) > 200) break;
    }
    rows.push({
      scenario: 'direct',
      server: target.name,
      connections: conn.open,
      'held at p99<10ms': held10,
      'held at p99<50ms': held50,
    });
  } finally {
    sender?.close();
    await workers.close();
  }
}

/**
 * A live room (docs/groups-and-rooms.md): `subscribers` clients on one topic, `rate` messages
 * a second pushed to it for `seconds`, once with `merge_ms` set and once without, each on a
 * fresh server. Per run: whether every subscriber got every message in offset order, frames
 * read, server CPU per delivered message, accept → client latency (sampled subscribers).
 * A run that cannot keep up is cut short, not waited for: the pushing stops after three
 * times its planned duration (each batch waits for the server's reply, so an overloaded
 * server slows the offer), delivery gets the planned duration (at least 10 s) after that,
 * and the row reports what was offered and delivered, and at what rate.
 */
async function liveRoom(options: BenchOptions, rows: Row[]): Promise<void> {
  const { subscribers, rate, seconds, mergeMs } = options.room;
  const topic = 'live';
  const results: Row[] = [];
  for (const merge of [mergeMs, 0]) {
    // No load shedding: a push refused with 503 would read as a message the room lost. How
    // far behind the server fell shows as its event-loop delay and the latency instead.
    const target = await startPush(options, { PUSH_OVERLOAD_DELAY_MS: '0' });
    const workers = new Workers(Math.max(2, Math.ceil(subscribers / MAX_SOCKETS_PER_WORKER)));
    try {
      const base = target.url.replace(/^ws/, 'http').replace(/\/v1\/ws$/, '');
      const auth = `Basic ${Buffer.from(`${options.target ? options.app : APP}:${options.target ? options.secret : SECRET}`).toString('base64')}`;
      if (merge > 0) {
        const res = await httpJson(`${base}/v1/topics/${topic}/settings`, 'PUT', { merge_ms: merge }, auth);
        if (res.status >= 300) throw new Error(`room settings refused: ${res.status} ${res.text}`);
      }
      const conn = await workers.connect(target, subscribers, options, false, topic);
      if (target.pid) await settle(target.pid);
      workers.reset();
      await target.resetLoop();
      const total = rate * seconds;
      const tickMs = 50;
      const perTick = Math.max(1, Math.round((rate * tickMs) / 1000));
      const cpu0 = target.pid ? procStats(target.pid).cpuMs : Number.NaN;
      const clientCpu0 = workers.cpuMs();
      const started = Date.now();
      let sent = 0;
      const stopPushing = started + 3 * seconds * 1000;
      while (sent < total && Date.now() < stopPushing) {
        const n = Math.min(perTick, total - sent);
        const messages = Array.from({ length: n }, (_, k) => ({ to: { topic }, data: { k: sent + k } }));
        const res = await httpJson(`${base}/v1/push/batch`, 'POST', { messages }, auth);
        if (res.status !== 200) throw new Error(`room push refused: ${res.status} ${res.text}`);
        sent += n;
        const wait = started + (sent / rate) * 1000 - Date.now();
        if (wait > 0) await sleep(wait);
      }
      const pushedMs = Date.now() - started;
      const expected = sent * conn.open;
      const deadline = Date.now() + Math.max(seconds * 1000, 10_000);
      let got = await workers.collect(false);
      while (got.received < expected && Date.now() < deadline) {
        await sleep(500);
        got = await workers.collect(false);
      }
      const cpuMs = (target.pid ? procStats(target.pid).cpuMs : Number.NaN) - cpu0;
      const clientCpuMs = workers.cpuMs() - clientCpu0;
      const loop = await target.loop();
      const elapsedMs = Math.max(1, (got.received >= expected ? got.lastAt : Date.now()) - started);
      got = await workers.collect(true);
      const sorted = got.latencies.sort((a, b) => a - b);
      const row: Row = {
        scenario: 'room',
        server: merge > 0 ? `message-push, merge_ms ${merge}` : 'message-push, no merging',
        connections: conn.open,
        'msg/s offered': Math.round(sent / (pushedMs / 1000)),
        'pushed / planned': `${sent}/${total}`,
        delivered: `${got.received}/${expected}`,
        'every message, in offset order':
          got.room.minCount >= sent && got.room.outOfOrder === 0 ? 'yes' : 'no',
        'out of order': got.room.outOfOrder,
        'delivered/s': Math.round(got.received / (elapsedMs / 1000)),
        frames: got.room.frames,
        // What the server wrote to the subscribers (payload bytes), over the run's wall time.
        'MB/s written': round(got.room.bytes / 1e6 / (elapsedMs / 1000), 1),
        'server CPU s': round(cpuMs / 1000, 2),
        'clients CPU s': round(clientCpuMs / 1000, 2),
        'CPU µs/delivered': round((cpuMs * 1000) / Math.max(1, got.received), 3),
        'p50 ms': pct(sorted, 50),
        'p99 ms': pct(sorted, 99),
        'max ms': sorted[sorted.length - 1] ?? Number.NaN,
        'loop p99/max ms': `${round(loop.p99, 1)}/${round(loop.max, 1)}`,
      };
      results.push(row);
      rows.push(row);
    } finally {
      await workers.close();
      await target.stop();
    }
  }
  const [merged, plain] = results;
  if (merged && plain) {
    rows.push({
      scenario: 'room',
      server: 'merged / unmerged',
      connections: Number(merged.connections),
      'CPU µs/delivered': round(Number(merged['CPU µs/delivered']) / Number(plain['CPU µs/delivered']), 3),
    });
  }
}

/** `/v1/push/batch` with 1000 durable messages per request, a few requests in flight. */
async function batchIngest(options: BenchOptions, rows: Row[]): Promise<void> {
  const target = await startPush(options);
  try {
    const base = target.url.replace(/^ws/, 'http').replace(/\/v1\/ws$/, '');
    const auth = `Basic ${Buffer.from(`${options.target ? options.app : APP}:${options.target ? options.secret : SECRET}`).toString('base64')}`;
    const batches = options.quick ? 40 : 100;
    const body = () => ({
      messages: Array.from({ length: 1000 }, () => ({
        to: { users: [`u${Math.floor(Math.random() * 10_000)}`] },
        data: payload(),
      })),
    });
    let next = 0;
    const started = Date.now();
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next++ < batches) {
          const res = await httpJson(`${base}/v1/push/batch`, 'POST', body(), auth);
          if (res.status !== 200) throw new Error(`batch refused: ${res.status}`);
        }
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    rows.push({
      scenario: 'batch-ingest',
      server: 'message-push',
      connections: 0,
      'durable msg/s': Math.round((batches * 1000) / seconds),
    });
  } finally {
    await target.stop();
  }
}

/**
 * Queue ingress, per broker: 100 connected users; messages published to the broker while the
 * server consumes; throughput is messages persisted and pushed (received by the clients) per
 * second from the first publish to the last arrival. Brokers not reachable are skipped.
 */
async function queueIngest(options: BenchOptions, rows: Row[]): Promise<void> {
  const users = 100;
  const total = options.quick ? 10_000 : 30_000;
  const app = options.target ? options.app : APP;
  for (const url of options.queueUrls) {
    const kind = queueKind(url);
    process.stderr.write(`  ${kind}: ${url.replace(/\/\/[^@/]*@/, '//')}\n`);
    let target: Target;
    try {
      target = await startPush(options, { PUSH_QUEUE_URL: url, PUSH_QUEUE_PREFETCH: '256' });
    } catch (err) {
      process.stderr.write(`  ${kind}: not reachable, skipped (${(err as Error).message})\n`);
      continue;
    }
    const workers = new Workers(1);
    try {
      const conn = await workers.connect(target, users, options, true);
      workers.reset();
      const bodies = Array.from({ length: total }, (_, i) =>
        JSON.stringify({ app, to: { users: [`u${i % users}`] }, data: payload() }),
      );
      const started = Date.now();
      await publishBodies(url, bodies);
      const published = Date.now();
      const got = await waitFor(async () => {
        const c = await workers.collect();
        return c.received >= total ? c : null;
      }, 120_000);
      const sorted = got.latencies.sort((a, b) => a - b);
      rows.push({
        scenario: 'queue-ingest',
        server: `message-push ← ${kind}`,
        connections: conn.open,
        messages: total,
        'publish msg/s': Math.round(total / ((published - started) / 1000)),
        'persisted + pushed msg/s': Math.round(total / ((got.lastAt - started) / 1000)),
        'p50 ms': pct(sorted, 50),
        'p99 ms': pct(sorted, 99),
      });
    } finally {
      await workers.close();
      await target.stop();
    }
  }
}

/** Clients ack every message; how many acks per second the status writer absorbs. */
async function acks(options: BenchOptions, rows: Row[]): Promise<void> {
  const target = await startPush(options);
  const workers = new Workers(2);
  try {
    const users = 2000;
    const conn = await workers.connect(target, users, options, true);
    const base = target.url.replace(/^ws/, 'http').replace(/\/v1\/ws$/, '');
    const auth = `Basic ${Buffer.from(`${options.target ? options.app : APP}:${options.target ? options.secret : SECRET}`).toString('base64')}`;
    const scrapeAcks = async () =>
      Number(
        /^push_acks_total ([0-9.e+]+)$/m.exec(
          (await httpJson(`${base}/metrics`, 'GET', undefined, '')).text,
        )?.[1] ?? 0,
      );
    const total = options.quick ? 20_000 : 50_000;
    const a0 = await scrapeAcks();
    const started = Date.now();
    for (let i = 0; i < total; i += 1000) {
      const messages = Array.from({ length: 1000 }, (_, k) => ({
        to: { users: [`u${(i + k) % conn.open}`] },
        data: payload(),
      }));
      await httpJson(`${base}/v1/push/batch`, 'POST', { messages }, auth);
    }
    await waitFor(async () => (await scrapeAcks()) - a0 >= total, 60_000);
    const seconds = (Date.now() - started) / 1000;
    rows.push({
      scenario: 'ack',
      server: 'message-push',
      connections: conn.open,
      'acked msg/s': Math.round(total / seconds),
    });
  } finally {
    await workers.close();
    await target.stop();
  }
}

// ---------- helpers ----------

async function withTarget(start: () => Promise<Target>, use: (t: Target) => Promise<void>): Promise<void> {
  const target = await start();
  try {
    await use(target);
  } finally {
    await target.stop();
  }
}

/** Runs `use` on a raw peer; a peer that does not load here becomes a row saying why. */
async function withPeer(
  kind: PeerName,
  shards: number,
  rows: Row[],
  scenario: string,
  use: (t: Target) => Promise<void>,
): Promise<void> {
  let target: Target;
  try {
    target = await startPeer(kind, shards);
  } catch (err) {
    process.stderr.write(`  ${PEERS[kind]}: skipped, ${(err as Error).message}\n`);
    rows.push({ scenario, server: PEERS[kind], connections: 0, skipped: (err as Error).message });
    return;
  }
  await withTarget(async () => target, use);
}

/** Offers `rate` requests a second for `ms`; `send` resolves with the response status (0: none). */
async function pace(rate: number, ms: number, send: () => Promise<number>) {
  let ok = 0;
  // Every millisecond, what is due by the clock. Counting ticks offered less than `rate` when
  // timers fired late (the old 1000/s step sent about 830/s); a 10 ms tick sent bursts of 50
  // at 5000/s, and the last request of each waited for the server to work through the burst.
  const tick = 1;
  const start = Date.now();
  const end = start + ms;
  let offered = 0;
  const inflight: Promise<void>[] = [];
  for (let now = start; now < end; now = Date.now()) {
    const due = Math.floor(((now - start) * rate) / 1000);
    for (; offered < due; offered++) {
      inflight.push(send().then((status) => void (status === 202 && ok++)));
    }
    await sleep(tick);
  }
  await Promise.all(inflight);
  return { ok };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};
const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;

/**
 * Server-side accept → socket percentiles between two scrapes of the cumulative histogram:
 * the upper bound of the bucket the percentile falls in (what separates the server's own
 * latency from requests queued in front of it).
 */
function histogramDelta(
  before: Map<number, number>,
  after: Map<number, number>,
): { p50: number; p99: number } {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const count = (le: number) => (after.get(le) ?? 0) - (before.get(le) ?? 0);
  const total = count(Number.POSITIVE_INFINITY);
  const at = (p: number) => bounds.find((le) => count(le) >= (total * p) / 100) ?? Number.NaN;
  return { p50: at(50), p99: at(99) };
}

/** Waits (at most 20 s) until the process uses under 10 % of a core over a quarter second. */
async function settle(pid: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  let last = procStats(pid).cpuMs;
  while (Date.now() < deadline) {
    await sleep(250);
    const now = procStats(pid).cpuMs;
    if (now - last < 25) return;
    last = now;
  }
}

async function waitFor<T>(check: () => Promise<T | null | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`bench step timed out after ${timeoutMs} ms`);
    await sleep(50);
  }
}

function table(rows: Row[]): string {
  const out: string[] = [];
  for (const scenario of [...new Set(rows.map((r) => r.scenario))]) {
    const rs = rows.filter((r) => r.scenario === scenario);
    const cols = [...new Set(rs.flatMap((r) => Object.keys(r)))].filter((c) => c !== 'scenario');
    out.push(`\n### ${scenario}\n`, `| ${cols.join(' | ')} |`, `| ${cols.map(() => '---').join(' | ')} |`);
    for (const r of rs) out.push(`| ${cols.map((c) => r[c] ?? '').join(' | ')} |`);
    // Ratios against the raw ws floor at the same connection count.
    if (scenario === 'idle' || scenario === 'broadcast') {
      const keys =
        scenario === 'idle' ? ['RSS/conn KiB', 'loop p99 ms'] : ['to last client ms', 'CPU µs/delivery'];
      for (const r of rs.filter((x) => x.server.startsWith('message-push'))) {
        for (const peer of Object.values(PEERS)) {
          const p = rs.find((x) => x.server === peer && x.connections === r.connections);
          if (!p) continue;
          out.push(
            `\n${scenario} @ ${r.connections}: ${r.server} / ${peer}: ${keys.map((k) => `${k} ${round(Number(r[k]) / Number(p[k]), 2)}×`).join(', ')}`,
          );
        }
      }
    }
  }
  return out.join('\n');
}

export async function runBench(options: BenchOptions): Promise<void> {
  const rows: Row[] = [];
  const started = new Date();
  const header = [
    `# message-push bench, ${started.toISOString()}`,
    `machine: ${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}, ${options.quick ? 'quick' : 'full'} run`,
    `target: ${options.target ?? (options.shards > 1 ? `local message-push, ${options.shards} worker processes (MySQL, bus ${options.busUrl.split(':')[0]})` : 'local message-push (SQLite, in-process bus)')}; client workers ≤ ${MAX_SOCKETS_PER_WORKER} sockets each over ${options.sourceAddresses} source addresses`,
  ].join('\n');
  process.stderr.write(`${header}\n`);
  for (const n of options.connections) {
    if (options.scenarios.includes('idle') || options.scenarios.includes('broadcast')) {
      for (const protocol of options.protocols) {
        process.stderr.write(`- idle + broadcast, ${n} connections, ${pushName(protocol)}\n`);
        await withTarget(
          () => startPush(options, {}, protocol),
          (t) => idleAndBroadcast(t, n, options, rows),
        );
      }
      // Only the raw ws floor is sharded (node:cluster); the others would need adapters.
      const peers = options.target ? [] : options.peers.filter((p) => options.shards === 1 || p === 'ws');
      for (const kind of peers) {
        process.stderr.write(`- idle + broadcast, ${n} connections, ${PEERS[kind]}\n`);
        await withPeer(kind, options.shards, rows, 'idle', (t) => idleAndBroadcast(t, n, options, rows));
      }
    }
  }
  if (options.scenarios.includes('direct')) {
    for (const protocol of options.protocols) {
      process.stderr.write(`- direct, ${pushName(protocol)}\n`);
      await withTarget(
        () => startPush(options, {}, protocol),
        (t) => direct(t, options, rows),
      );
    }
    // The raw peers' in-memory floor of the same steps (no sharded peer serves /direct).
    for (const kind of options.target || options.shards > 1 ? [] : options.peers) {
      process.stderr.write(`- direct, ${PEERS[kind]}\n`);
      await withPeer(kind, 1, rows, 'direct', (t) => direct(t, options, rows));
    }
  }
  if (options.scenarios.includes('store') && !options.target) {
    process.stderr.write('- store-write\n');
    const { storeWrite } = await import('./store-write.js');
    rows.push(...(await storeWrite(options.quick)));
  }
  if (options.scenarios.includes('batch')) {
    process.stderr.write('- batch-ingest\n');
    await batchIngest(options, rows);
  }
  if (options.scenarios.includes('queue')) {
    process.stderr.write('- queue-ingest\n');
    await queueIngest(options, rows);
  }
  if (options.scenarios.includes('ack')) {
    process.stderr.write('- ack\n');
    await acks(options, rows);
  }
  if (options.scenarios.includes('room') && !options.target) {
    const r = options.room;
    process.stderr.write(`- live room, ${r.subscribers} subscribers, ${r.rate} msg/s for ${r.seconds} s\n`);
    await liveRoom(options, rows);
  }
  if (options.scenarios.includes('group') && !options.target) {
    const { measureGroupPush } = await import('./group-push.js');
    const stores = ['sqlite', ...(/^(mysql|mariadb):/.test(options.dbUrl) ? [options.dbUrl] : [])];
    for (const members of options.groupMembers) {
      for (const db of stores) {
        process.stderr.write(`- group push, ${members} members, ${db.split(':')[0]}\n`);
        const g = await measureGroupPush({
          db,
          members,
          online: 2000,
          batch: 2000,
          rounds: GROUP_ROUNDS,
          cpuProfDir: options.cpuProfDir,
        });
        rows.push({
          scenario: 'group',
          server: `message-push (${g.store})`,
          connections: g.online,
          members: g.members,
          'membership load s': round(g.membership_load_ms / 1000, 1),
          'accepted + durable s': round(g.group_accepted_ms / 1000, 2),
          'server CPU s': round(g.group_server_cpu_ms / 1000, 2),
          'first online member ms': g.group_first_delivery_ms,
          'last online member ms': g.group_last_delivery_ms,
          '$all to the same sockets ms': g.all_last_delivery_ms,
          'last vs $all': g.ratio_last_delivery_vs_all,
          'each round': g.ratios.join(' '),
        });
      }
    }
  }
  if (options.scenarios.includes('wire') && !options.target) {
    process.stderr.write('- wire bytes, v1 and v2\n');
    const { measureWireBytes, MIX } = await import('./wire-bytes.js');
    const wire = await measureWireBytes(options.quick ? 100 : 200);
    for (const variant of [...new Set(wire.map((w) => w.variant))]) {
      const row: Row = { scenario: 'wire', server: variant, connections: 1 };
      for (const size of [...MIX.map((m) => m.size), 'mix' as const]) {
        const w = wire.find((x) => x.variant === variant && x.size === size)!;
        row[size === 'mix' ? 'mix B/msg' : `~${size} B data: B/msg`] =
          `${round(w.bytesPerMessage, 0)} (${round(w.ofV1 * 100, 0)} %)`;
      }
      rows.push(row);
    }
  }
  const text = `${header}\n${table(rows)}\n`;
  console.log(text);
  mkdirSync(options.out, { recursive: true });
  const file = join(options.out, `bench-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ started, options: { ...options, secret: undefined }, rows }, null, 2));
  process.stderr.write(`results: ${file}\n`);
}
