import { rmSync } from 'node:fs';
import net from 'node:net';
import WebSocket from 'ws';
import { signClientToken } from '../src/auth/tokens.js';
import { SUBPROTOCOL_BINARY } from '../src/gateway/protocol/binary-codec.js';
import { FrameReader, FrameWriter, KIND, type WireMessage } from '../src/gateway/protocol/v2-frame.js';
import { APP, api, freePort, SECRET, startServer } from './group-push.js';

/**
 * Bytes on the wire per delivered message, protocol v1 (JSON text frames) against v2
 * (binary frames) side by side in one run: one server, one client per protocol variant,
 * the same messages pushed to all of them one at a time (no coalescing). Bytes are what
 * each client socket read (WebSocket or TCP framing included, TCP/IP headers not).
 *
 *   npm run bench -- --scenarios wire      (100 messages per size with --quick, else 200)
 *
 * The mix (docs/reference/protocol-v2.md): 50 % ~100 B, 35 % ~500 B, 15 % ~4 KiB of
 * notification `data` (title, text, level, url, counters; the 4 KiB one lists order items),
 * made from a fixed word list with a seeded generator, so every run sends the same bytes.
 */

export const MIX = [
  { size: 100, share: 0.5 },
  { size: 500, share: 0.35 },
  { size: 4096, share: 0.15 },
] as const;

const WORDS = (
  'the quick brown fox jumps over lazy dog order shipped payment received your account meeting ' +
  'reminder at today tomorrow please review new comment on alert server cpu high disk usage'
).split(' ');

/** Notification data of about `size` bytes of compact JSON, deterministic for a seed. */
export function notificationData(size: number, seed: number): Record<string, unknown> {
  let state = seed;
  const rnd = () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
  const text = (n: number) => {
    let s = '';
    while (s.length < n) s += `${WORDS[Math.floor(rnd() * WORDS.length)]} `;
    return s.slice(0, n);
  };
  const d: Record<string, unknown> = {
    title: text(24),
    content: '',
    level: 'info',
    url: `https://example.com/o/${Math.floor(rnd() * 1e6)}`,
    unread: Math.floor(rnd() * 100),
  };
  if (size > 1000) {
    const items: unknown[] = [];
    d.content = text(300);
    d.items = items;
    while (JSON.stringify(d).length < size - 60) {
      items.push({ sku: `SKU-${Math.floor(rnd() * 1e6)}`, name: text(20), qty: 1 + Math.floor(rnd() * 9) });
    }
  } else {
    d.content = text(Math.max(8, size - JSON.stringify(d).length));
  }
  return d;
}

interface Receiver {
  readonly name: string;
  bytes(): number;
  /** Resolves when `n` messages in total have arrived. */
  received(n: number): Promise<void>;
  close(): void;
}

/** Counts message frames and wakes whoever waits for a total. */
class Counter {
  count = 0;
  private waiters: { n: number; resolve: () => void }[] = [];
  add(k: number): void {
    this.count += k;
    const done = this.waiters.filter((w) => this.count >= w.n);
    this.waiters = this.waiters.filter((w) => this.count < w.n);
    for (const w of done) w.resolve();
  }
  until(n: number): Promise<void> {
    return this.count >= n ? Promise.resolve() : new Promise((resolve) => this.waiters.push({ n, resolve }));
  }
}

/** Message frames in v2 messages (a batch holds length-prefixed records); `welcome` seen or not. */
function countV2(messages: readonly WireMessage[]): { messages: number; welcome: boolean } {
  let n = 0;
  for (const m of messages) {
    if (m.kind === KIND.message) n++;
    if (m.kind !== KIND.batch) continue;
    for (let at = 0; at < m.body.length; n++) {
      let length = 0;
      for (let shift = 1; ; shift *= 128) {
        const b = m.body[at++]!;
        length += (b & 0x7f) * shift;
        if (b < 0x80) break;
      }
      at += length;
    }
  }
  return { messages: n, welcome: messages.some((m) => m.kind === KIND.welcome) };
}

function openWs(name: string, url: string, v2: boolean): Promise<Receiver> {
  return new Promise((resolve, reject) => {
    const ws = v2 ? new WebSocket(url, SUBPROTOCOL_BINARY) : new WebSocket(url);
    const counter = new Counter();
    const reader = new FrameReader();
    let welcomed = false;
    ws.on('message', (data: Buffer, isBinary) => {
      let seen: { messages: number; welcome: boolean };
      if (isBinary) {
        seen = countV2(reader.push(data));
      } else {
        const frames = [JSON.parse(data.toString())].flat() as { op: string }[];
        seen = {
          messages: frames.filter((f) => f.op === 'message').length,
          welcome: frames[0]?.op === 'welcome',
        };
      }
      if (!welcomed && seen.welcome) {
        welcomed = true;
        const socket = (ws as unknown as { _socket: net.Socket })._socket;
        resolve({
          name,
          bytes: () => socket.bytesRead,
          received: (n) => counter.until(n),
          close: () => ws.terminate(),
        });
      }
      counter.add(seen.messages);
    });
    ws.once('error', reject);
  });
}

function openTcp(name: string, port: number, hello: Record<string, unknown>): Promise<Receiver> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const counter = new Counter();
    const reader = new FrameReader();
    socket.once('error', reject);
    socket.on('connect', () => {
      const body = Buffer.from(JSON.stringify({ versions: [2], ...hello }));
      for (const f of new FrameWriter(0, Infinity, false).frames(KIND.hello, body)) socket.write(f);
    });
    socket.on('data', (chunk) => {
      const seen = countV2(reader.push(chunk));
      if (seen.welcome) {
        resolve({
          name,
          bytes: () => socket.bytesRead,
          received: (n) => counter.until(n),
          close: () => socket.destroy(),
        });
      }
      counter.add(seen.messages);
    });
  });
}

export interface WireRow {
  readonly variant: string;
  readonly size: number | 'mix';
  readonly bytesPerMessage: number;
  readonly ofV1: number;
}

export async function measureWireBytes(perSize = 200): Promise<WireRow[]> {
  // The product's own build as a child process, as every other scenario runs it.
  const tcpPort = await freePort();
  const { child, port, dir } = await startServer({ PUSH_TCP_PORT: String(tcpPort), PUSH_RESEND_MS: '1h' });
  const receivers: Receiver[] = [];
  try {
    const user = 'wire-user';
    const token = await signClientToken({ secret: SECRET, userId: user, ttlSeconds: 3600 });
    const base = `ws://127.0.0.1:${port}/v1/ws?app=${APP}&token=${token}`;
    receivers.push(
      await openWs('v1 JSON (WebSocket)', base, false),
      await openWs('v2 gzip (WebSocket)', `${base}&codecs=gzip`, true),
      await openWs('v2 snappy (WebSocket)', `${base}&codecs=snappy`, true),
      await openWs('v2 uncompressed (WebSocket)', `${base}&codecs=none`, true),
      await openTcp('v2 gzip (TCP)', tcpPort, { app: APP, token, codecs: ['gzip'] }),
    );
    const perVariant = new Map<string, Map<number, number>>();
    let sent = 0;
    for (const { size } of MIX) {
      const before = receivers.map((r) => r.bytes());
      for (let i = 0; i < perSize; i++) {
        await api(port, 'POST', '/v1/push', {
          to: { users: [user] },
          type: 'notification',
          data: notificationData(size, i + 1),
        });
        sent++;
        // One at a time: each message is its own frame, as a quiet user's notifications are.
        await Promise.all(receivers.map((r) => r.received(sent)));
      }
      receivers.forEach((r, k) => {
        const m = perVariant.get(r.name) ?? new Map<number, number>();
        m.set(size, (r.bytes() - before[k]!) / perSize);
        perVariant.set(r.name, m);
      });
    }
    const v1 = perVariant.get(receivers[0]!.name)!;
    const mixOf = (m: Map<number, number>) =>
      MIX.reduce((sum, { size, share }) => sum + share * m.get(size)!, 0);
    const rows: WireRow[] = [];
    for (const [variant, m] of perVariant) {
      for (const { size } of MIX) {
        rows.push({ variant, size, bytesPerMessage: m.get(size)!, ofV1: m.get(size)! / v1.get(size)! });
      }
      rows.push({ variant, size: 'mix', bytesPerMessage: mixOf(m), ofV1: mixOf(m) / mixOf(v1) });
    }
    return rows;
  } finally {
    for (const r of receivers) r.close();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}
