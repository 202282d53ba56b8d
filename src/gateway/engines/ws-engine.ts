import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { WebSocket, WebSocketServer } from 'ws';
import { PushError } from '../../domain/errors.js';
import type { Logger } from '../../observability/logger.js';
import type { Gateway } from '../gateway.js';
import { SUBPROTOCOL_BINARY } from '../protocol/binary-codec.js';
import { SUBPROTOCOL_JSON } from '../protocol/json-codec.js';
import type { Session } from '../session.js';
import {
  type AcceptedUpgrade,
  maxMessageBytes,
  refusal,
  type WebSocketHandshake,
} from '../transports/websocket.js';
import type { Engine, ListenOptions } from './engine.js';
import { FIN_BINARY, frameHeaderBytes, type SharedText, writeFrameHeader } from './shared-text.js';

/** ws (8.x) internals `sendShared` relies on; checked on every write, so a ws that moved them falls back to `send`. */
interface WsInternals {
  readonly _socket: {
    write(chunk: Buffer, cb?: (err?: Error | null) => void): boolean;
    cork(): void;
    uncork(): void;
  } | null;
  readonly _sender: { readonly _state: number; readonly _queue: readonly unknown[] } | null;
}

const SENDER_IDLE = 0;

/** Up to this many bytes, a parts frame is copied into one buffer (one write); larger ones go out corked as they are. */
const COPY_PARTS_MAX = 16 * 1024;

/**
 * A ws WebSocket is the session's transport as is (send, ping, close, terminate,
 * bufferedAmount), plus the session it carries and the shared-frame write: one class, so a
 * connection costs no wrapper object and its listeners are shared functions.
 */
class WsConnection extends WebSocket {
  declare session?: Session;

  /** Writes a shared pre-built frame straight to the socket under ws (see idleSocket). */
  sendShared(shared: SharedText): boolean {
    const socket = this.idleSocket();
    if (socket === null) return false;
    socket.write(shared.frame());
    return true;
  }

  /**
   * A binary frame of a per-connection head and shared bytes, framed here: small ones are
   * copied into one buffer (one write, as ws would), large ones written corked without a copy.
   * While ws's sender is busy the parts go through ws in order behind what it queued.
   */
  sendParts(head: Buffer, body: Buffer, cb?: (err?: Error) => void): void {
    const length = head.length + body.length;
    const socket = this.idleSocket();
    if (socket === null) {
      this.send(Buffer.concat([head, body]), cb);
      return;
    }
    const headerBytes = frameHeaderBytes(length);
    const done = cb && ((err?: Error | null) => cb(err ?? undefined));
    if (length <= COPY_PARTS_MAX) {
      const out = Buffer.allocUnsafe(headerBytes + length);
      let at = writeFrameHeader(out, FIN_BINARY, length);
      at += head.copy(out, at);
      body.copy(out, at);
      socket.write(out, done);
      return;
    }
    const prefix = Buffer.allocUnsafe(headerBytes + head.length);
    head.copy(prefix, writeFrameHeader(prefix, FIN_BINARY, length));
    socket.cork();
    socket.write(prefix);
    socket.write(body, done);
    socket.uncork();
  }

  /**
   * The raw socket when a frame may be written straight to it: open, and ws's sender has
   * nothing queued (it queues while compressing or reading a Blob; compression is off here),
   * so frames never overtake each other. Null otherwise.
   */
  private idleSocket(): NonNullable<WsInternals['_socket']> | null {
    if (this.readyState !== WebSocket.OPEN) return null;
    const { _socket: socket, _sender: sender } = this as unknown as WsInternals;
    if (!socket || !sender || sender._state !== SENDER_IDLE || sender._queue?.length !== 0) return null;
    return socket;
  }
}

/**
 * The portable engine: Node's HTTP server (Fastify's) owns the port and `ws` takes the
 * upgrades. Runs wherever Node runs.
 */
export class WsEngine implements Engine {
  readonly name = 'ws';
  private readonly wss: WebSocketServer;
  /** v2 sessions: a WebSocket message holds a whole fragment of PUSH_MAX_FRAME bytes plus its header. */
  private readonly wssBinary: WebSocketServer;
  private readonly onMessage: (this: SessionSocket, data: Buffer, isBinary: boolean) => void;
  private readonly onClose: (this: SessionSocket) => void;
  private readonly onPong: (this: SessionSocket) => void;
  private readonly onError: (this: SessionSocket, err: Error) => void;

  constructor(
    private readonly http: FastifyInstance,
    private readonly handshake: WebSocketHandshake,
    gateway: Pick<Gateway, 'handleFrame' | 'closed'>,
    log: Logger,
  ) {
    const server = (binary: boolean) =>
      new WebSocketServer({
        noServer: true,
        clientTracking: false,
        perMessageDeflate: false,
        maxPayload: maxMessageBytes(handshake.options, binary),
        // The handshake picked the subprotocol; this only echoes it (none offered: no header).
        handleProtocols: () => (binary ? SUBPROTOCOL_BINARY : SUBPROTOCOL_JSON),
        WebSocket: WsConnection,
      });
    this.wss = server(false);
    this.wssBinary = server(true);
    this.onMessage = function (data, isBinary) {
      if (this.session) gateway.handleFrame(this.session, data, isBinary);
    };
    this.onClose = function () {
      if (this.session) gateway.closed(this.session);
    };
    this.onPong = function () {
      if (this.session) this.session.lastSeen = Date.now();
    };
    this.onError = function (err) {
      // ws closes the socket itself (1009 for oversized frames, 1002 for protocol errors).
      log.debug({ err: err.message, connectionId: this.session?.id }, 'socket error');
    };
  }

  async listen(options: ListenOptions): Promise<number> {
    this.http.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => socket.destroy());
      void this.upgrade(req, socket, head);
    });
    await this.http.listen({ port: options.port, host: options.host });
    const address = this.http.server.address();
    return typeof address === 'object' && address ? address.port : options.port;
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const result = await this.handshake.check({
      url: req.url ?? '/',
      headers: req.headers,
      peer: req.socket.remoteAddress ?? 'unknown',
    });
    if (result instanceof PushError) {
      refuse(socket, result);
      return;
    }
    if (socket.destroyed) {
      this.handshake.abandon(result);
      return;
    }
    const wss = result.codec ? this.wssBinary : this.wss;
    wss.handleUpgrade(req, socket, head, (ws) => this.opened(ws as WsConnection, result));
  }

  private opened(ws: WsConnection, accepted: AcceptedUpgrade): void {
    const s = this.handshake.open(accepted, ws);
    if (s === null) return;
    ws.session = s;
    ws.on('message', this.onMessage);
    ws.on('close', this.onClose);
    ws.on('pong', this.onPong);
    ws.on('error', this.onError);
    this.handshake.greet(s, accepted);
  }

  /** In-flight requests finish (Fastify's close); open sockets were closed by the gateway. */
  async close(): Promise<void> {
    await this.http.close();
    this.wss.close();
    this.wssBinary.close();
  }

  closeAllConnections(): void {
    this.http.server.closeAllConnections();
  }
}

/** Answers a refused upgrade with a plain HTTP response and the API's error body. */
/** What the shared listeners see as `this` (ws types listeners on its base class). */
type SessionSocket = WebSocket & { session?: Session };

function refuse(socket: Duplex, err: PushError): void {
  if (socket.destroyed) return;
  const { status, headers, body } = refusal(err);
  const lines = headers.map(([name, value]) => `${name}: ${value}\r\n`).join('');
  socket.end(
    `HTTP/1.1 ${status}\r\nConnection: close\r\n${lines}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
