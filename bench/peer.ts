/**
 * The peers message-push is measured against, in the same run: a minimal raw `ws` server
 * (the floor for Node: no auth, no bookkeeping) and a minimal Socket.IO v4 server
 * (websocket transport only). Run as a child process: `node dist/bench/peer.js ws|socketio`.
 */
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { WebSocketServer } from 'ws';

export type PeerCommand = { op: 'broadcast'; payload: string } | { op: 'stats' } | { op: 'reset-stats' };
export interface PeerStats {
  heapUsed: number;
  loopP99Ms: number;
  loopMaxMs: number;
}

const kind = process.argv[2];
const loop = monitorEventLoopDelay({ resolution: 1 });
loop.enable();

const stats = (): PeerStats => ({
  heapUsed: process.memoryUsage().heapUsed,
  loopP99Ms: loop.percentile(99) / 1e6,
  loopMaxMs: loop.max / 1e6,
});

/**
 * `peer.js ws <shards>` with shards > 1: the raw ws floor sharded like a `--workers` cluster,
 * one node:cluster worker per shard on one port; the parent's commands are relayed to every
 * worker and their stats combined (heap summed, loop delay the worst).
 */
async function primary(shards: number): Promise<void> {
  const workers = Array.from({ length: shards }, () => cluster.fork());
  const pending: PeerStats[] = [];
  for (const w of workers) {
    w.on('message', (m: { op: string; port?: number; stats?: PeerStats }) => {
      if (m.op === 'listening' && w === workers[0]) process.send?.(m);
      if (m.op === 'stats') {
        pending.push(m.stats!);
        if (pending.length === workers.length) {
          const all = pending.splice(0);
          process.send?.({
            op: 'stats',
            stats: {
              heapUsed: all.reduce((n, x) => n + x.heapUsed, 0),
              loopP99Ms: Math.max(...all.map((x) => x.loopP99Ms)),
              loopMaxMs: Math.max(...all.map((x) => x.loopMaxMs)),
            },
          });
        }
      }
    });
  }
  process.on('message', (cmd: PeerCommand) => {
    for (const w of workers) w.send(cmd);
  });
  process.on('disconnect', () => process.exit(0));
}

async function main(): Promise<void> {
  const shards = Number(process.argv[3] ?? 1);
  if (shards > 1 && cluster.isPrimary) return primary(shards);
  const http = createServer();
  let broadcast: (payload: string) => void;
  if (kind === 'ws') {
    const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
    broadcast = (payload) => {
      for (const c of wss.clients) c.send(payload);
    };
  } else if (kind === 'socketio') {
    const { Server } = await import('socket.io');
    const io = new Server(http, { transports: ['websocket'], perMessageDeflate: false });
    broadcast = (payload) => io.emit('m', JSON.parse(payload));
  } else {
    throw new Error(`unknown peer ${kind}`);
  }
  // In a cluster worker, port 0 means the one port every worker shares.
  http.listen(0, '127.0.0.1', () =>
    process.send?.({ op: 'listening', port: (http.address() as AddressInfo).port }),
  );
  process.on('message', (cmd: PeerCommand) => {
    if (cmd.op === 'broadcast') broadcast(cmd.payload);
    else if (cmd.op === 'reset-stats') loop.reset();
    else process.send?.({ op: 'stats', stats: stats() });
  });
  process.on('disconnect', () => process.exit(0));
}

void main();
