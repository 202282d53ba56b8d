/**
 * Group push bench: `npm run build && npx tsc -p bench/tsconfig.json && node dist-bench/bench/group-push.js [--db sqlite|mysql://…] [--members 100000]
 * [--online 2000] [--batch 2000]`. Starts a message-push server (dist/cli.js) on a fresh
 * store, fills one group, connects `online` of its members (spread over the id range), and
 * measures in the same run:
 *   - a `$all` broadcast to those connections: time until the last one has it;
 *   - a push to the group: time until the reply (accepted = every delivery durable), until
 *     the first and the last online member has it, and the server's CPU for it.
 * Prints one JSON line. Bounded: every wait has a deadline.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { signClientToken } from '../src/auth/tokens.js';
import { dropMysqlDatabase } from '../test/helpers/mysql.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const APP = 'bench';
const SECRET = randomBytes(16).toString('hex');
const DEADLINE_MS = 300_000;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
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
): Promise<{ child: ChildProcess; port: number; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'mp-bench-'));
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const child = spawn(process.execPath, [CLI, 'start'], {
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

export async function api(port: number, method: string, path: string, body?: unknown) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: {
      authorization: `Basic ${Buffer.from(`${APP}:${SECRET}`).toString('base64')}`,
      'content-type': 'application/json',
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
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

async function main(): Promise<void> {
  const db = arg('db', 'sqlite');
  const members = Number(arg('members', '100000'));
  const online = Number(arg('online', '2000'));
  const batch = arg('batch', '2000');
  const mysqlUrl = db.startsWith('mysql')
    ? `${db.replace(/\/[^/]*$/, '')}/mp_bench_groups_${randomBytes(3).toString('hex')}`
    : null;
  const { child, port, dir } = await startServer({
    PUSH_GROUP_BATCH: batch,
    ...(mysqlUrl ? { PUSH_DB_URL: mysqlUrl } : {}),
  });
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
    const got = new Map<string, number>();
    for (let i = 0; i < members && sockets.length < online; i += step) {
      sockets.push(await openClient(port, ids[i]!, (m) => got.set(m.id, (got.get(m.id) ?? 0) + 1)));
    }
    const lastOf = new Map<string, number>();
    const firstOf = new Map<string, number>();
    const track = (id: string) => {
      const now = performance.now();
      if (!firstOf.has(id)) firstOf.set(id, now);
      lastOf.set(id, now);
    };
    for (const ws of sockets) {
      ws.on('message', (data) => {
        const parsed = JSON.parse(data.toString());
        for (const f of Array.isArray(parsed) ? parsed : [parsed]) if (f.op === 'message') track(f.id);
      });
    }

    t = performance.now();
    const all = await api(port, 'POST', '/v1/push', { id: 'bench-all', to: { all: true }, data: { x: 1 } });
    await until(() => (got.get('bench-all') ?? 0) >= sockets.length, '$all on every socket');
    const allLastMs = lastOf.get('bench-all')! - t;

    const cpu0 = cpuMs(child.pid!);
    t = performance.now();
    const reply = await api(port, 'POST', '/v1/push', {
      id: 'bench-group',
      to: { groups: ['everyone'] },
      data: { x: 2 },
    });
    const acceptedMs = performance.now() - t;
    await until(() => (got.get('bench-group') ?? 0) >= sockets.length, 'group push on every socket');
    const groupCpuMs = cpuMs(child.pid!) - cpu0;
    console.log(
      JSON.stringify({
        store: mysqlUrl ? 'mariadb' : 'sqlite',
        members,
        online: sockets.length,
        batch: Number(batch),
        membership_load_ms: Math.round(loadMs),
        all_recipients: all.recipients,
        all_last_delivery_ms: Math.round(allLastMs),
        group_recipients: reply.recipients,
        group_accepted_ms: Math.round(acceptedMs),
        group_first_delivery_ms: Math.round(firstOf.get('bench-group')! - t),
        group_last_delivery_ms: Math.round(lastOf.get('bench-group')! - t),
        group_server_cpu_ms: Math.round(groupCpuMs),
        ratio_last_delivery_vs_all: +((lastOf.get('bench-group')! - t) / allLastMs).toFixed(2),
      }),
    );
  } finally {
    for (const ws of sockets) ws.terminate();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
    if (mysqlUrl) await dropMysqlDatabase(mysqlUrl);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
