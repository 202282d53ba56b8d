/**
 * Live room bench: `node dist-bench/bench/rooms.js [--subscribers 500] [--rate 100] [--seconds 10]
 * [--merge 1000]`. Runs the same load twice on fresh servers — the room with `merge_ms` set
 * and without — and prints one JSON line per run: deliveries, whether every subscriber got
 * every message in offset order, frames received, server CPU per delivered message, and
 * accept → receive latency percentiles. Bounded by deadlines.
 */
import { fileURLToPath } from 'node:url';
import type WebSocket from 'ws';
import { api, cpuMs, openClient, startServer, until } from './group-push.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const TOPIC = 'live';
const TICK_MS = 50;

async function run(subscribers: number, rate: number, seconds: number, mergeMs: number) {
  const { child, port, dir } = await startServer({});
  const sockets: WebSocket[] = [];
  try {
    if (mergeMs > 0) await api(port, 'PUT', `/v1/topics/${TOPIC}/settings`, { merge_ms: mergeMs });
    const latencies: number[] = [];
    let frames = 0;
    let outOfOrder = 0;
    const counts: number[] = [];
    for (let i = 0; i < subscribers; i++) {
      const idx = i;
      counts.push(0);
      let last = 0;
      const ws = await openClient(
        port,
        `sub-${i}`,
        (m) => {
          if (m.offset === undefined) return;
          if (m.offset <= last) outOfOrder++;
          last = m.offset;
          counts[idx]!++;
          latencies.push(Date.now() - m.timestamp);
        },
        [TOPIC],
      );
      ws.on('message', () => frames++);
      ws.send(JSON.stringify({ op: 'subscribe', topic: TOPIC }));
      sockets.push(ws);
    }
    await new Promise((r) => setTimeout(r, 500)); // subscriptions in place
    frames = 0;
    const total = rate * seconds;
    const perTick = Math.max(1, Math.round((rate * TICK_MS) / 1000));
    const cpu0 = cpuMs(child.pid!);
    const start = Date.now();
    let sent = 0;
    // Without subscribers nothing arrives: wait for the pushes alone.
    while (sent < total) {
      const n = Math.min(perTick, total - sent);
      await api(port, 'POST', '/v1/push/batch', {
        messages: Array.from({ length: n }, (_, k) => ({ to: { topic: TOPIC }, data: { k: sent + k } })),
      });
      sent += n;
      const due = start + (sent / rate) * 1000;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    await until(() => counts.every((c) => c >= total), 'every subscriber has every message', 120_000);
    const cpu = cpuMs(child.pid!) - cpu0;
    latencies.sort((a, b) => a - b);
    const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]!;
    return {
      merge_ms: mergeMs,
      subscribers,
      rate,
      seconds,
      deliveries: latencies.length,
      all_in_order: outOfOrder === 0 && counts.every((c) => c === total),
      frames_received: frames,
      server_cpu_ms: Math.round(cpu),
      cpu_us_per_delivery: latencies.length ? +((cpu * 1000) / latencies.length).toFixed(3) : null,
      latency_p50_ms: latencies.length ? pct(0.5) : null,
      latency_p99_ms: latencies.length ? pct(0.99) : null,
      latency_max_ms: latencies.at(-1) ?? null,
    };
  } finally {
    for (const ws of sockets) ws.terminate();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    const { rmSync } = await import('node:fs');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const subscribers = Number(arg('subscribers', '500'));
  const rate = Number(arg('rate', '100'));
  const seconds = Number(arg('seconds', '10'));
  const merge = Number(arg('merge', '1000'));
  // The same pushes with nobody subscribed: the ingest's share (HTTP, persist), which does
  // not grow with subscribers, so the fan-out's own cost can be compared too.
  const ingest = await run(0, rate, seconds, merge);
  console.log(JSON.stringify(ingest));
  const merged = await run(subscribers, rate, seconds, merge);
  console.log(JSON.stringify(merged));
  const plain = await run(subscribers, rate, seconds, 0);
  console.log(JSON.stringify(plain));
  const fanOut = (r: { server_cpu_ms: number }) => Math.max(0, r.server_cpu_ms - ingest.server_cpu_ms);
  console.log(
    JSON.stringify({
      cpu_per_delivery_ratio: +((merged.cpu_us_per_delivery ?? 0) / (plain.cpu_us_per_delivery ?? 1)).toFixed(
        3,
      ),
      fan_out_cpu_ratio: +(fanOut(merged) / fanOut(plain)).toFixed(3),
    }),
  );
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
