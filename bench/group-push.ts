/**
 * Group push bench, the `group` scenario of `npm run bench` (`--members 100000`, SQLite, and
 * MariaDB too with `--db-url mysql://…`). Starts a message-push server (dist/cli.js) on a
 * fresh store, fills one group, connects `online` of its members (spread over the id range),
 * and measures in the same run:
 *   - a `$all` broadcast to those connections: time until the last one has it;
 *   - a push to the group: time until the reply (accepted = every delivery durable), until
 *     the first and the last online member has it, and the server's CPU for it.
 * Bounded: every wait has a deadline.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { signClientToken } from '../src/auth/tokens.js';
import { dropMysqlDatabase } from '../test/helpers/mysql.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
export const APP = 'bench';
export const SECRET = randomBytes(16).toString('hex');
const DEADLINE_MS = 900_000;

/**
 * A port free right now (the kernel's pick for port 0). A random guess in 20000–40000 used
 * to collide with the ephemeral ports of the bench's own thousands of client sockets.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** CPU ms of a process (all threads), from schedstat. */
export function cpuMs(pid: number): number {
  let ms = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ms += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
    } catch {} // thread ended
  }
  return ms;
}

export async function startServer(
  env: Record<string, string>,
  cpuProfDir: string | null = null,
): Promise<{ child: ChildProcess; port: number; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'mp-bench-'));
  const port = await freePort();
  const prof = cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir] : [];
  const child = spawn(process.execPath, [...prof, CLI, 'start'], {
    env: {
      ...process.env,
      PUSH_APPS: `${APP}:${SECRET}`,
      PUSH_DATA_DIR: dir,
      PUSH_PORT: String(port),
      PUSH_HOST: '127.0.0.1',
      PUSH_HANDSHAKES_PER_SECOND: '1000000',
      PUSH_RESEND_MS: '10m',
      PUSH_LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 30_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('message-push listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    child.once('exit', (code) => reject(new Error(`server exited ${code}:\n${out}`)));
  });
  return { child, port, dir };
}

/**
 * One API call. node:http, not fetch: fetch gives up on a response after 300 s, and the
 * `202` of a push to a million members may take longer on a loaded machine.
 */
export function api(port: number, method: string, path: string, body?: unknown): Promise<any> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method,
        headers: {
          authorization: `Basic ${Buffer.from(`${APP}:${SECRET}`).toString('base64')}`,
          'content-type': 'application/json',
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          if ((res.statusCode ?? 0) >= 300) reject(new Error(`${method} ${path}: ${res.statusCode} ${text}`));
          else resolve(text ? JSON.parse(text) : null);
        });
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Opens a socket and resolves on `welcome`; `onMessage` gets every message object (arrays flattened). */
export async function openClient(
  port: number,
  user: string,
  onMessage: (m: { id: string; offset?: number; timestamp: number }) => void,
  topics?: string[],
): Promise<WebSocket> {
  const token = await signClientToken({
    secret: SECRET,
    userId: user,
    ttlSeconds: 3600,
    ...(topics ? { topics } : {}),
  });
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws?app=${APP}&token=${token}`);
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    ws.on('message', (data) => {
      const parsed = JSON.parse(data.toString());
      for (const f of Array.isArray(parsed) ? parsed : [parsed]) {
        if (f.op === 'welcome') resolve();
        else if (f.op === 'message') onMessage(f);
      }
    });
  });
  return ws;
}

/** Waits until `check()` holds, polling; rejects past the deadline. */
export async function until(check: () => boolean, what: string, deadlineMs = DEADLINE_MS): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export interface GroupPushOptions {
  /** `sqlite`, or a MySQL server URL (the bench creates and drops its own database there). */
  db: string;
  members: number;
  online: number;
  batch: number;
  /** `$all` + group push pairs measured on the same sockets (medians reported). */
  rounds: number;
  /** Where the server writes its V8 CPU profile (`--cpu-prof`), or null. */
  cpuProfDir?: string | null;
}

interface Round {
  allLastMs: number;
  acceptedMs: number;
  cpuMs: number;
  firstMs: number;
  lastMs: number;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export async function measureGroupPush(o: GroupPushOptions) {
  const { members, online } = o;
  const batch = String(o.batch);
  const mysqlUrl = /^(mysql|mariadb):/.test(o.db)
    ? `${o.db.replace(/\/[^/]*$/, '')}/mp_bench_groups_${randomBytes(3).toString('hex')}`
    : null;
  const { child, port, dir } = await startServer(
    {
      PUSH_GROUP_BATCH: batch,
      ...(mysqlUrl ? { PUSH_DB_URL: mysqlUrl } : {}),
    },
    o.cpuProfDir ?? null,
  );
  const sockets: WebSocket[] = [];
  try {
    const ids = Array.from({ length: members }, (_, i) => `member-${String(i).padStart(7, '0')}`);
    let t = performance.now();
    for (let i = 0; i < members; i += 10_000) {
      await api(port, 'PUT', '/v1/groups/everyone/members', { add: ids.slice(i, i + 10_000) });
    }
    const loadMs = performance.now() - t;

    // Online members spread over the id range: their batches are written early and late.
    const step = Math.max(1, Math.floor(members / online));
    // One parse per frame (the counting and the timing share it), for `$all` and the group alike.
    const got = new Map<string, number>();
    const lastOf = new Map<string, number>();
    const firstOf = new Map<string, number>();
    const track = (m: { id: string }) => {
      const now = performance.now();
      if (!firstOf.has(m.id)) firstOf.set(m.id, now);
      lastOf.set(m.id, now);
      got.set(m.id, (got.get(m.id) ?? 0) + 1);
    };
    for (let i = 0; i < members && sockets.length < online; i += step) {
      sockets.push(await openClient(port, ids[i]!, track));
    }

    // Rounds of a `$all` broadcast then a group push, each on the same sockets: one round's
    // figures swing with the machine's load, the medians and the per-round ratios less so.
    const rounds: Round[] = [];
    let recipients = 0;
    for (let round = 0; round < o.rounds; round++) {
      const allId = `bench-all-${round}`;
      t = performance.now();
      await api(port, 'POST', '/v1/push', { id: allId, to: { all: true }, data: { x: 1 } });
      await until(() => (got.get(allId) ?? 0) >= sockets.length, '$all on every socket');
      const allLastMs = lastOf.get(allId)! - t;

      const groupId = `bench-group-${round}`;
      const cpu0 = cpuMs(child.pid!);
      t = performance.now();
      const reply = await api(port, 'POST', '/v1/push', {
        id: groupId,
        to: { groups: ['everyone'] },
        data: { x: 2 },
      });
      const acceptedMs = performance.now() - t;
      await until(() => (got.get(groupId) ?? 0) >= sockets.length, 'group push on every socket');
      recipients = reply.recipients;
      rounds.push({
        allLastMs,
        acceptedMs,
        cpuMs: cpuMs(child.pid!) - cpu0,
        firstMs: firstOf.get(groupId)! - t,
        lastMs: lastOf.get(groupId)! - t,
      });
    }
    const med = (pick: (r: Round) => number) => Math.round(median(rounds.map(pick)));
    return {
      store: mysqlUrl ? 'mariadb' : 'sqlite',
      members,
      online: sockets.length,
      batch: Number(batch),
      rounds: rounds.length,
      membership_load_ms: Math.round(loadMs),
      group_recipients: recipients,
      all_last_delivery_ms: med((r) => r.allLastMs),
      group_accepted_ms: med((r) => r.acceptedMs),
      group_first_delivery_ms: med((r) => r.firstMs),
      group_last_delivery_ms: med((r) => r.lastMs),
      group_server_cpu_ms: med((r) => r.cpuMs),
      /** Median of each round's own ratio (last online member / `$all` in that round). */
      ratio_last_delivery_vs_all: +median(rounds.map((r) => r.lastMs / r.allLastMs)).toFixed(2),
      ratios: rounds.map((r) => +(r.lastMs / r.allLastMs).toFixed(2)),
    };
  } finally {
    for (const ws of sockets) ws.terminate();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
    if (mysqlUrl) await dropMysqlDatabase(mysqlUrl);
  }
}
