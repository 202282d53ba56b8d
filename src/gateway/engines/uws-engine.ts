import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type {
  HttpRequest,
  HttpResponse,
  TemplatedApp,
  WebSocket as UwsSocket,
  us_listen_socket,
  us_socket_context_t,
} from '@trufflesuite/uws-js-unofficial';
import type { FastifyInstance } from 'fastify';
import { closeCodeOf, PushError } from '../../domain/errors.js';
import { markBridged } from '../../limits/client-ip.js';
import type { Logger } from '../../observability/logger.js';
import type { Gateway } from '../gateway.js';
import { CODEC_JSON } from '../protocol/codec.js';
import type { Session, Transport } from '../session.js';
import {
  type AcceptedUpgrade,
  maxMessageBytes,
  refusal,
  type WebSocketHandshake,
} from '../transports/websocket.js';
import type { Engine, ListenOptions } from './engine.js';
import { HttpBridge } from './http-bridge.js';
import { InProcessHttp } from './http-inprocess.js';
import type { SharedText } from './shared-text.js';

type Uws = typeof import('@trufflesuite/uws-js-unofficial');

const PACKAGE = '@trufflesuite/uws-js-unofficial';

/**
 * Loads uWebSockets.js's native binary for this platform and Node ABI, or stops the start
 * with `config_invalid`. The package's own entry point falls back to a JavaScript imitation
 * built on `ws` when the binary does not load; that would run `PUSH_ENGINE=uws` on something
 * else without saying so, so the binary is loaded directly.
 */
export function loadUws(): Uws {
  const require = createRequire(import.meta.url);
  const binary = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  let root: string;
  try {
    root = dirname(require.resolve(`${PACKAGE}/package.json`));
  } catch {
    throw new PushError(
      'config_invalid',
      `PUSH_ENGINE=uws: the optional package ${PACKAGE} is not installed (npm install ${PACKAGE}); or use PUSH_ENGINE=ws`,
    );
  }
  try {
    return require(join(root, 'binaries', binary)) as Uws;
  } catch (err) {
    throw new PushError(
      'config_invalid',
      `PUSH_ENGINE=uws: uWebSockets.js has no working binary ${binary} for this platform and Node ${process.version} (${(err as Error).message.split('\n')[0]}); use PUSH_ENGINE=ws`,
    );
  }
}

/**
 * Routes whose responses live long and stream (SSE, a held long-poll): they keep the socket
 * bridge, where Node's own response object and socket carry them (writableLength is the SSE
 * transport's backpressure signal). Every other request is dispatched in-process.
 */
const STREAMED_PATHS: ReadonlySet<string> = new Set(['/v1/sse', '/v1/poll']);
/**
 * The methods those routes answer. Any other is dispatched in-process (a 405 with the error
 * body): forwarded, a CONNECT became a tunnel request Node's server drops, answered 500.
 */
const STREAMED_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD']);

/** The path as the router matches it: percent-decoded (`/v1/%73se` is `/v1/sse`). */
function routedPath(path: string): string {
  if (!path.includes('%')) return path;
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/** uWS's longest idle timeout. */
const MAX_IDLE_SECONDS = 960;

/** How often a connection with `send` callbacks waiting looks at its send buffer. */
const DRAIN_CHECK_MS = 5;

/** Looks at an unmoving send buffer before it is nudged (see watchDrain). */
const STUCK_CHECKS = 10;

/** Largest send buffer uWS keeps before it drops a send; the hub cuts slow consumers (4009) long before. */
const MAX_BACKPRESSURE = 256 * 1024 * 1024;

/** What uWS keeps on its socket object (it copies the user data's properties onto it). */
interface SocketData {
  readonly conn: UwsConnection;
}

/** What every connection of one engine shares. */
interface UwsShared {
  /** Send buffer past which a connection is cut at once (see UwsEngineOptions.maxSendBufferBytes). */
  readonly hardLimit: number;
  readonly cut: (s: Session) => void;
}

/**
 * One uWS WebSocket as a session's transport. A uWS socket must not be touched after its
 * close event: every method checks `ws` first.
 */
class UwsConnection implements Transport {
  session: Session | null = null;
  ws: UwsSocket<SocketData> | null = null;
  /** Held between the upgrade and `open`. */
  accepted: AcceptedUpgrade | null;
  /** Callbacks of `send` waiting for the send buffer to empty. */
  private drains: ((err?: Error) => void)[] | null = null;

  constructor(
    accepted: AcceptedUpgrade,
    private readonly shared: UwsShared,
  ) {
    this.accepted = accepted;
  }

  send(data: string | Buffer, cb?: (err?: Error) => void): void {
    const ws = this.ws;
    if (ws === null) {
      cb?.(new Error('connection closed'));
      return;
    }
    // Corked: a send outside uWS's own callbacks otherwise leaves what the socket could not
    // take buffered without asking to be told when it can (it went out with the next ping).
    ws.cork(() => ws.send(data, typeof data !== 'string'));
    if (this.overflowed(ws)) {
      cb?.(new Error('connection closed'));
      return;
    }
    if (cb === undefined) return;
    if (ws.getBufferedAmount() === 0) queueMicrotask(cb);
    else if (this.drains !== null) this.drains.push(cb);
    else {
      this.drains = [cb];
      this.watchDrain();
    }
  }

  /**
   * uWS emits `drain` on a writable event only; a later send can flush the buffer without
   * one, and the callbacks would wait forever. While any wait, the buffer is looked at on a
   * short timer too (only replays wait, so few connections at a time). A buffer that does not
   * move for STUCK_CHECKS looks is nudged with a ping: in uWS 20.30 a socket whose buffer was
   * filled by sends outside its callbacks sometimes sat with the client reading and nothing
   * written until the next send (the replay of a large backlog stalled mid-way).
   */
  private watchDrain(last = -1, still = 0): void {
    setTimeout(() => {
      this.drained();
      const ws = this.ws;
      if (this.drains === null || ws === null) return;
      const now = ws.getBufferedAmount();
      if (now === last && still + 1 >= STUCK_CHECKS) {
        ws.cork(() => ws.ping());
        this.watchDrain(now, 0);
      } else {
        this.watchDrain(now, now === last ? still + 1 : 0);
      }
    }, DRAIN_CHECK_MS).unref();
  }

  /** uWS frames whole messages only: the parts are joined (compression and CRC stay shared). */
  sendParts(head: Buffer, body: Buffer, cb?: (err?: Error) => void): void {
    this.send(Buffer.concat([head, body]), cb);
  }

  sendShared(shared: SharedText): boolean {
    const ws = this.ws;
    if (ws === null) return false;
    ws.cork(() => ws.send(shared.payload(), false));
    this.overflowed(ws);
    return true;
  }

  /**
   * uWS keeps unsent bytes in one contiguous buffer and moves the rest to its front after a
   * partial write, so a buffer of many MiB costs more than its size as it drains. Past the
   * hard limit the client is cut at once with 4009 instead of after the hub's SLOW_AFTER_MS.
   */
  private overflowed(ws: UwsSocket<SocketData>): boolean {
    if (ws.getBufferedAmount() <= this.shared.hardLimit || this.session === null) return false;
    this.shared.cut(this.session);
    return true;
  }

  get bufferedAmount(): number {
    return this.ws === null ? 0 : this.ws.getBufferedAmount();
  }

  ping(): void {
    this.ws?.ping();
  }

  close(code: number, reason?: string): void {
    const ws = this.ws;
    if (ws === null) return;
    this.ended();
    ws.end(code, reason);
  }

  terminate(): void {
    const ws = this.ws;
    if (ws === null) return;
    this.ended();
    ws.close();
  }

  /** uWS took bytes off the send buffer: `send` callbacks run once it is empty. */
  drained(): void {
    if (this.drains === null || this.ws === null || this.ws.getBufferedAmount() > 0) return;
    const drains = this.drains;
    this.drains = null;
    for (const cb of drains) cb();
  }

  /** The socket is gone (or going): nothing more is written, waiting callbacks learn it. */
  ended(): void {
    this.ws = null;
    const drains = this.drains;
    this.drains = null;
    if (drains) for (const cb of drains) cb(new Error('connection closed'));
  }
}

export interface UwsEngineOptions {
  /** PEM files: the port serves wss/https (uWS SSLApp). */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | null;
  /** PUSH_MAX_SEND_BUFFER: the hub cuts past it after SLOW_AFTER_MS; this engine also at a multiple of it at once. */
  readonly maxSendBufferBytes: number;
}

/** The hard limit is this many times PUSH_MAX_SEND_BUFFER, and at least HARD_LIMIT_MIN. */
const HARD_LIMIT_FACTOR = 4;
const HARD_LIMIT_MIN = 1024 * 1024;

/**
 * uWebSockets.js owns the public port: WebSocket upgrades are its own (native framing,
 * buffers and pings); plain HTTP runs in the same Fastify app, dispatched in-process
 * (InProcessHttp), except the streaming routes, which go through the HttpBridge.
 */
export class UwsEngine implements Engine {
  readonly name = 'uws';
  private readonly app: TemplatedApp;
  private listenSocket: us_listen_socket | null = null;
  private readonly socketDir: string;
  private readonly bridge: HttpBridge;
  private readonly inProcess: InProcessHttp;
  private readonly shared: UwsShared;

  constructor(
    private readonly uws: Uws,
    private readonly http: FastifyInstance,
    private readonly handshake: WebSocketHandshake,
    gateway: Pick<Gateway, 'handleFrame' | 'closed' | 'closeFor'>,
    options: UwsEngineOptions,
    private readonly log: Logger,
  ) {
    this.shared = {
      hardLimit: Math.max(HARD_LIMIT_MIN, HARD_LIMIT_FACTOR * options.maxSendBufferBytes),
      cut: (s) => gateway.closeFor(s, 'slow_consumer', 'too slow'),
    };
    this.app = options.tls
      ? uws.SSLApp({ cert_file_name: options.tls.certFile, key_file_name: options.tls.keyFile })
      : uws.App();
    this.socketDir = mkdtempSync(join(tmpdir(), 'message-push-'));
    this.bridge = new HttpBridge(join(this.socketDir, 'http.sock'), log);
    this.inProcess = new InProcessHttp(http, options.tls !== null);
    const maxV1 = maxMessageBytes(handshake.options, false);
    const maxV2 = maxMessageBytes(handshake.options, true);
    this.app.ws<SocketData>('/*', {
      compression: uws.DISABLED,
      // uWS drops a message over its limit without a close frame (1006). Up to twice the
      // limit it is taken and closed here with 1009, as ws does; past that uWS cuts it.
      maxPayloadLength: 2 * maxV2,
      maxBackpressure: MAX_BACKPRESSURE,
      // Liveness is the heartbeat wheel's (the contract's 2·H bound). uWS's idle timer is set
      // to its longest only because it also bounds how long a closing socket may take to
      // flush: at 0, a client reading slowly lost its last frames and the 4009 after ~4 s.
      idleTimeout: MAX_IDLE_SECONDS,
      sendPingsAutomatically: false,
      upgrade: (res, req, context) => this.upgrade(res, req, context),
      open: (ws) => this.opened(ws),
      message: (ws, message, isBinary) => {
        const conn = ws.getUserData().conn;
        const s = conn.session;
        if (s === null) return;
        if (message.byteLength > (s.codec.kind === CODEC_JSON ? maxV1 : maxV2)) {
          conn.close(closeCodeOf('frame_too_large'), 'Max payload size exceeded');
          gateway.closed(s);
          return;
        }
        // The message's memory is uWS's again after this call: decode from a copy or a string.
        const data = isBinary ? Buffer.from(new Uint8Array(message)) : Buffer.from(message).toString('utf8');
        gateway.handleFrame(s, data, isBinary);
      },
      drain: (ws) => ws.getUserData().conn.drained(),
      pong: (ws) => {
        const s = ws.getUserData().conn.session;
        if (s !== null) s.lastSeen = Date.now();
      },
      close: (ws) => {
        const conn = ws.getUserData().conn;
        conn.ended();
        if (conn.session !== null) gateway.closed(conn.session);
      },
    });
    this.app.any('/*', (res, req) => {
      if (STREAMED_METHODS.has(req.getCaseSensitiveMethod()) && STREAMED_PATHS.has(routedPath(req.getUrl())))
        this.bridge.forward(res, req);
      else this.inProcess.dispatch(res, req);
    });
  }

  private upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
    // The request is valid only during this call: copy what the checks read.
    const headers: IncomingHttpHeaders = {};
    req.forEach((name, value) => {
      headers[name] = value;
    });
    const query = req.getQuery();
    const url = query ? `${req.getUrl()}?${query}` : req.getUrl();
    const key = req.getHeader('sec-websocket-key');
    const peer = Buffer.from(res.getRemoteAddressAsText()).toString();
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    void this.handshake.check({ url, headers, peer }).then((result) => {
      if (aborted) {
        if (!(result instanceof PushError)) this.handshake.abandon(result);
        return;
      }
      res.cork(() => {
        if (result instanceof PushError) {
          const { status, headers: extra, body } = refusal(result);
          res.writeStatus(status);
          for (const [name, value] of extra) res.writeHeader(name, value);
          res.end(body, true);
          return;
        }
        res.upgrade<SocketData>(
          { conn: new UwsConnection(result, this.shared) },
          key,
          result.subprotocol ?? '',
          '',
          context,
        );
      });
    });
  }

  private opened(ws: UwsSocket<SocketData>): void {
    const conn = ws.getUserData().conn;
    const accepted = conn.accepted!;
    conn.accepted = null;
    conn.ws = ws;
    const s = this.handshake.open(accepted, conn);
    if (s === null) return;
    conn.session = s;
    this.handshake.greet(s, accepted);
  }

  async listen(options: ListenOptions): Promise<number> {
    await this.http.listen({ path: join(this.socketDir, 'http.sock') });
    this.http.server.on('connection', markBridged);
    const port = await new Promise<number>((resolve, reject) => {
      const done = (ls: us_listen_socket | false) => {
        if (!ls) {
          reject(new Error(`PUSH_ENGINE=uws: cannot listen on ${options.host}:${options.port}`));
          return;
        }
        this.listenSocket = ls;
        resolve(this.uws.us_socket_local_port(ls as never));
      };
      // All interfaces: uSockets binds dual-stack when given no host.
      if (options.host === '::' || options.host === '') this.app.listen(options.port, done);
      else this.app.listen(options.host, options.port, done);
    });
    this.log.debug({ port }, 'uWebSockets.js listening');
    return port;
  }

  async close(): Promise<void> {
    if (this.listenSocket) this.uws.us_listen_socket_close(this.listenSocket);
    this.listenSocket = null;
    // In-process requests are not Node's server's to wait for: every push answered 202 must
    // be durable before the store closes, as on the ws engine.
    await this.inProcess.idle();
    await this.http.close();
    this.bridge.close();
    rmSync(this.socketDir, { recursive: true, force: true });
  }

  closeAllConnections(): void {
    this.inProcess.closeAll();
    this.http.server.closeAllConnections();
  }
}
