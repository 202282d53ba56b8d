import { type IncomingMessage, type Server, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { closeCodeOf, isPushError, PushError, toErrorBody } from '../../domain/errors.js';
import type { TrustedProxies } from '../../limits/client-ip.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Gateway } from '../gateway.js';
import { clientIp } from '../handshake.js';
import { SUBPROTOCOL_BINARY } from '../protocol/binary-codec.js';
import { createBinaryCodec, parseCodecOffer } from '../protocol/codec.js';
import { SUBPROTOCOL_JSON } from '../protocol/json-codec.js';
import { HEADER_BYTES } from '../protocol/v2-frame.js';
import type { Session } from '../session.js';

/** Socket paths: ours, and the seed's (`/message-push/v1/message`). */
const WS_PATHS = new Set(['/v1/ws', '/message-push/v1/message']);

export interface WebSocketTransportOptions {
  readonly maxFrameBytes: number;
  readonly trustProxy: TrustedProxies;
  /** v2: bodies of at least this many bytes are compressed (when the client accepts a compression). */
  readonly compressMin: number;
}

const SUBPROTOCOLS = [SUBPROTOCOL_JSON, SUBPROTOCOL_BINARY];

type SessionSocket = WebSocket & { session?: Session };

/**
 * The WebSocket wire: refuses bad handshakes with an HTTP status before the upgrade,
 * upgrades good ones, and wires socket events to the gateway. Listeners are shared
 * functions (the socket is `this`), so a connection costs no closures.
 */
export class WebSocketTransport {
  private readonly wss: WebSocketServer;
  /** v2 sessions: a WebSocket message holds a whole fragment of PUSH_MAX_FRAME bytes plus its header. */
  private readonly wssBinary: WebSocketServer;
  private readonly onMessage: (this: SessionSocket, data: Buffer, isBinary: boolean) => void;
  private readonly onClose: (this: SessionSocket) => void;
  private readonly onPong: (this: SessionSocket) => void;
  private readonly onError: (this: SessionSocket, err: Error) => void;

  constructor(
    private readonly gateway: Gateway,
    private readonly options: WebSocketTransportOptions,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: options.maxFrameBytes,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL_JSON) ? SUBPROTOCOL_JSON : false),
    });
    this.wssBinary = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: options.maxFrameBytes + HEADER_BYTES,
      handleProtocols: () => SUBPROTOCOL_BINARY,
    });
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

  attach(server: Server): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => socket.destroy());
      this.upgrade(req, socket, head).catch((err: unknown) => {
        this.log.error({ err }, 'upgrade failed');
        refuse(socket, new PushError('internal', 'internal error'));
      });
    });
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!WS_PATHS.has(url.pathname)) {
      refuse(socket, new PushError('not_found', `no WebSocket endpoint at ${url.pathname}`));
      return;
    }
    // The first subprotocol offered that this server speaks; none offered means v1.
    const offered = req.headers['sec-websocket-protocol'];
    const protocol = offered
      ? offered
          .split(',')
          .map((p) => p.trim())
          .find((p) => SUBPROTOCOLS.includes(p))
      : SUBPROTOCOL_JSON;
    if (protocol === undefined) {
      this.refuseCounted(
        socket,
        new PushError(
          'bad_request',
          `unsupported subprotocol; this server speaks ${SUBPROTOCOLS.join(', ')}`,
        ),
      );
      return;
    }
    let admission: Awaited<ReturnType<Gateway['admit']>>;
    try {
      admission = await this.gateway.admit(req, url, clientIp(req, this.options.trustProxy));
    } catch (err) {
      if (!isPushError(err)) throw err;
      this.refuseCounted(socket, err);
      return;
    }
    if (socket.destroyed) return;
    // Checked here, synchronously before the upgrade, because open() refuses once a stop began.
    if (this.gateway.isStopping) {
      this.refuseCounted(socket, new PushError('unavailable', 'server is shutting down'));
      return;
    }
    const binary = protocol === SUBPROTOCOL_BINARY;
    const codec = binary
      ? createBinaryCodec(parseCodecOffer(url.searchParams), this.options.compressMin, true)
      : undefined;
    (binary ? this.wssBinary : this.wss).handleUpgrade(req, socket, head, (ws: SessionSocket) => {
      let s: Session;
      try {
        s = this.gateway.open(admission, ws, codec);
      } catch (err) {
        // Past PUSH_MAX_CONNECTIONS (another handshake took the last slot meanwhile): 1013.
        const code =
          isPushError(err) && 'closeCode' in err.spec ? err.spec.closeCode! : closeCodeOf('internal');
        this.metrics.closes.inc({ reason: isPushError(err) ? err.code : 'internal' });
        ws.close(code, isPushError(err) ? err.message.slice(0, 100) : 'internal error');
        return;
      }
      ws.session = s;
      ws.on('message', this.onMessage);
      ws.on('close', this.onClose);
      ws.on('pong', this.onPong);
      ws.on('error', this.onError);
      this.gateway.sendWelcome(s);
      void this.gateway.replay(s, admission.since);
    });
  }

  private refuseCounted(socket: Duplex, err: PushError): void {
    this.metrics.handshakesRefused.inc({ status: String(err.spec.status) });
    refuse(socket, err);
  }

  close(): void {
    this.wss.close();
    this.wssBinary.close();
  }
}

/** Answers a refused upgrade with a plain HTTP response and the API's error body. */
function refuse(socket: Duplex, err: PushError): void {
  if (socket.destroyed) return;
  const status = err.spec.status;
  const body = JSON.stringify(toErrorBody(err));
  const retry = status === 429 || status === 503 ? 'Retry-After: 1\r\n' : '';
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n${retry}\r\n${body}`,
  );
}
