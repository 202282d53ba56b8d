/**
 * The peers message-push is measured against, in the same run: minimal servers that only
 * hold connections, echo, broadcast, send to one random connection (`POST /direct`) and ping
 * every 25 s — no auth, no bookkeeping: the floors. `ws` (raw `ws`, the floor for Node),
 * `socketio` (Socket.IO v4, websocket transport only), `uws` / `uws-btc` (raw uWebSockets.js
 * from the npm packages that carry it) and `rfc6455` (a hand-written RFC 6455 server on a
 * node:http upgrade, `rfc6455.ts`). Run as a child process: `node dist-bench/bench/peer.js KIND`.
 */
import cluster from 'node:cluster';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Socket } from 'socket.io';
import { type WebSocket, WebSocketServer } from 'ws';
import { attachRfc6455, RFC6455_OPCODES, type Rfc6455Connection, serverFrame } from './rfc6455.js';

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

/** What each raw peer does: the same for every engine, so the figures compare the engines. */
interface Engine {
  /** One text message to every connection, framed once where the engine allows it. */
  broadcast(payload: string): void;
  /** A ping to every connection (every 25 s, as message-push's heartbeat does). */
  ping(): void;
  /** Listens on 127.0.0.1 (port 0: any; in a cluster worker, the port the workers share). */
  listen(): Promise<number>;
}

const PING_EVERY_MS = 25_000;

/**
 * The open connections, kept so that a random one is found in O(1), as message-push finds a
 * user's sockets by id: walking a Set to a random position would add O(n) to every direct
 * message of the peers and none to ours.
 */
class Pool<T> {
  readonly all: T[] = [];
  private readonly at = new Map<T, number>();

  add(x: T): void {
    this.at.set(x, this.all.length);
    this.all.push(x);
  }

  delete(x: T): void {
    const i = this.at.get(x);
    if (i === undefined) return;
    const last = this.all.pop()!;
    this.at.delete(x);
    if (last !== x) {
      this.all[i] = last;
      this.at.set(last, i);
    }
  }

  pick(): T | undefined {
    return this.all[Math.floor(Math.random() * this.all.length)];
  }
}

/**
 * `POST /direct` with a text body: sent to one random connection, answered 202 with a
 * Content-Length (the bench's HttpSender needs one), as message-push answers a push.
 */
function directRoute(http: Server, direct: (payload: string) => void): void {
  http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'POST' || req.url !== '/direct') return;
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      direct(body);
      res.writeHead(202, { 'content-length': '0' }).end();
    });
  });
}

function nodeListen(http: Server): Promise<number> {
  return new Promise((resolve) =>
    http.listen(0, '127.0.0.1', () => resolve((http.address() as AddressInfo).port)),
  );
}

function wsEngine(): Engine {
  const http = createServer();
  const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
  const pool = new Pool<WebSocket>();
  wss.on('connection', (ws) => {
    pool.add(ws);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('close', () => pool.delete(ws));
  });
  directRoute(http, (payload) => pool.pick()?.send(payload));
  return {
    broadcast: (payload) => {
      for (const c of wss.clients) c.send(payload);
    },
    ping: () => {
      for (const c of wss.clients) c.ping();
    },
    listen: () => nodeListen(http),
  };
}

async function socketIoEngine(): Promise<Engine> {
  const http = createServer();
  const { Server: IoServer } = await import('socket.io');
  const pool = new Pool<Socket>();
  // Added before Socket.IO wraps the request listeners: it hands on what is not its path.
  directRoute(http, (payload) => pool.pick()?.emit('m', JSON.parse(payload)));
  // Socket.IO pings on its own (pingInterval, default 25 s).
  const io = new IoServer(http, { transports: ['websocket'], perMessageDeflate: false });
  io.on('connection', (socket) => {
    pool.add(socket);
    socket.on('m', (d: unknown) => socket.emit('m', d));
    socket.on('disconnect', () => pool.delete(socket));
  });
  return {
    broadcast: (payload) => io.emit('m', JSON.parse(payload)),
    ping: () => {},
    listen: () => nodeListen(http),
  };
}

function rfc6455Engine(): Engine {
  const http = createServer();
  const pool = new Pool<Rfc6455Connection>();
  attachRfc6455(
    http,
    (c) => pool.add(c),
    (c) => pool.delete(c),
    (c, data, opcode) => c.write(serverFrame(opcode, data)),
  );
  const text = (payload: string) => serverFrame(RFC6455_OPCODES.text, Buffer.from(payload));
  directRoute(http, (payload) => pool.pick()?.write(text(payload)));
  return {
    broadcast: (payload) => {
      const frame = text(payload);
      for (const c of pool.all) c.write(frame);
    },
    ping: () => {
      for (const c of pool.all) c.ping();
    },
    listen: () => nodeListen(http),
  };
}

/** The module of a uWebSockets.js package, as far as the peer uses it. */
interface Uws {
  App(): UwsApp;
  us_socket_local_port(listenSocket: unknown): number;
}
interface UwsSocket {
  send(message: string | ArrayBuffer | Uint8Array, isBinary?: boolean): number;
  ping(): number;
}
interface UwsResponse {
  onAborted(handler: () => void): UwsResponse;
  onData(handler: (chunk: ArrayBuffer, isLast: boolean) => void): void;
  writeStatus(status: string): UwsResponse;
  end(body?: string): UwsResponse;
}
interface UwsApp {
  ws(
    pattern: string,
    behavior: {
      compression: number;
      maxPayloadLength: number;
      idleTimeout: number;
      open(ws: UwsSocket): void;
      message(ws: UwsSocket, message: ArrayBuffer, isBinary: boolean): void;
      close(ws: UwsSocket): void;
    },
  ): UwsApp;
  post(pattern: string, handler: (res: UwsResponse) => void): UwsApp;
  listen(host: string, port: number, cb: (listenSocket: unknown) => void): UwsApp;
}

/**
 * uWebSockets.js from an npm package that carries its prebuilt binaries (the project itself
 * publishes on GitHub only). `pkg` is loaded by name at run time, so a package that is not
 * installed or does not load on this machine fails only this peer.
 */
async function uwsEngine(pkg: string): Promise<Engine> {
  const mod = (await import(pkg)) as { default?: Uws } & Uws;
  const uws: Uws = mod.default ?? mod;
  // The trufflesuite package quietly falls back to a JavaScript emulation on top of `ws`
  // when it has no binary for this Node; that would measure `ws` under another name.
  if (!('SSLApp' in uws))
    throw new Error(`${pkg} has no native binary for this Node (fell back to JavaScript)`);
  const pool = new Pool<UwsSocket>();
  const direct = (payload: string) => pool.pick()?.send(payload, false);
  const app = uws
    .App()
    .ws('/*', {
      compression: 0,
      maxPayloadLength: 64 * 1024,
      // Pings come from the peer's own 25 s timer, as for the other peers; no idle timeout.
      idleTimeout: 0,
      open: (ws) => pool.add(ws),
      message: (ws, message, isBinary) => ws.send(message, isBinary),
      close: (ws) => pool.delete(ws),
    })
    .post('/direct', (res) => {
      let body = '';
      res.onAborted(() => {});
      res.onData((chunk, isLast) => {
        body += Buffer.from(chunk).toString('utf8');
        if (!isLast) return;
        direct(body);
        res.writeStatus('202 Accepted').end();
      });
    });
  return {
    broadcast: (payload) => {
      for (const ws of pool.all) ws.send(payload, false);
    },
    ping: () => {
      for (const ws of pool.all) ws.ping();
    },
    listen: () =>
      new Promise((resolve, reject) =>
        app.listen('127.0.0.1', 0, (token) =>
          token ? resolve(uws.us_socket_local_port(token)) : reject(new Error('uWS: listen failed')),
        ),
      ),
  };
}

/** The npm package each uWebSockets.js peer loads. */
export const UWS_PACKAGES = {
  uws: '@trufflesuite/uws-js-unofficial',
  'uws-btc': '@btc-vision/uwebsockets.js',
} as const;

async function engine(name: string | undefined): Promise<Engine> {
  if (name === 'ws') return wsEngine();
  if (name === 'socketio') return socketIoEngine();
  if (name === 'rfc6455') return rfc6455Engine();
  if (name === 'uws' || name === 'uws-btc') return uwsEngine(UWS_PACKAGES[name]);
  throw new Error(`unknown peer ${name}`);
}

async function main(): Promise<void> {
  const shards = Number(process.argv[3] ?? 1);
  if (shards > 1 && cluster.isPrimary) return primary(shards);
  let e: Engine;
  try {
    e = await engine(kind);
  } catch (err) {
    // The orchestrator reports the peer as skipped, with the reason.
    process.send?.({ op: 'failed', error: (err as Error).message.split('\n')[0] });
    process.exit(0);
  }
  const port = await e.listen();
  setInterval(() => e.ping(), PING_EVERY_MS).unref();
  process.send?.({ op: 'listening', port });
  process.on('message', (cmd: PeerCommand) => {
    if (cmd.op === 'broadcast') e.broadcast(cmd.payload);
    else if (cmd.op === 'reset-stats') loop.reset();
    else process.send?.({ op: 'stats', stats: stats() });
  });
  process.on('disconnect', () => process.exit(0));
}

void main();
