import net from 'node:net';
import tls from 'node:tls';
import { isPushError, PushError } from '../../domain/errors.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Admission, Gateway } from '../gateway.js';
import { type BinaryCodec, createBinaryCodec } from '../protocol/codec.js';
import { FramingError, KIND, SUPPORTED_VERSIONS, VERSION, type WireMessage } from '../protocol/v2-frame.js';
import type { Session, Transport } from '../session.js';

export interface TcpTransportOptions {
  readonly port: number;
  readonly host: string;
  readonly compressMin: number;
  /** Time from accept to a complete hello (the HTTP header timeout's counterpart). */
  readonly helloTimeoutMs: number;
  /** When given, the listener speaks TLS with the same certificate as HTTPS. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer } | null;
}

/** How long a closing socket may take to flush its last frames before it is destroyed. */
const CLOSE_GRACE_MS = 5000;

/**
 * One TCP connection as a session sees it. A close sends a CLOSE frame with the code the
 * WebSocket would carry, then ends the socket; a ping is a protocol PING frame.
 */
class TcpConnection implements Transport {
  session: Session | null = null;

  constructor(
    readonly socket: net.Socket,
    readonly codec: BinaryCodec,
  ) {}

  send(data: string | Buffer, cb?: (err?: Error) => void): void {
    if (this.socket.destroyed || !this.socket.writable) {
      cb?.(new Error('socket closed'));
      return;
    }
    this.socket.write(data, cb && ((err) => cb(err ?? undefined)));
  }

  /** A v2 frame's per-connection header and shared bytes, written corked (one segment, no copy). */
  sendParts(head: Buffer, body: Buffer, cb?: (err?: Error) => void): void {
    if (this.socket.destroyed || !this.socket.writable) {
      cb?.(new Error('socket closed'));
      return;
    }
    const done = cb && ((err?: Error | null) => cb(err ?? undefined));
    this.socket.cork();
    this.socket.write(head);
    this.socket.write(body, done);
    this.socket.uncork();
  }

  get bufferedAmount(): number {
    return this.socket.writableLength;
  }

  ping(): void {
    this.codec.sendControl(this, 'ping', {});
  }

  close(code: number, reason?: string): void {
    if (this.socket.destroyed) return;
    this.codec.sendControl(this, 'close', { code, reason: reason ?? '' });
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  terminate(): void {
    this.socket.destroy();
  }
}

/** The hello's fields, checked: what the handshake query carries on WebSocket, plus the offer. */
interface Hello {
  readonly query: URLSearchParams;
  readonly versions: readonly number[];
  readonly compressions: readonly string[];
  readonly crc: boolean;
}

/**
 * Plain TCP (or TLS) listener for protocol v2, for devices without WebSocket. The client's
 * first frame is a hello; the server answers welcome, or an error frame and closes. From
 * then on it is a session like any other: same hub, gateway, limits and close reasons.
 */
export class TcpTransport {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    private readonly gateway: Gateway,
    private readonly options: TcpTransportOptions,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    const onSocket = (socket: net.Socket) => this.accept(socket);
    this.server = options.tls
      ? tls.createServer({ cert: options.tls.cert, key: options.tls.key }, onSocket)
      : net.createServer(onSocket);
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'tcp socket error'));
    socket.on('close', () => this.sockets.delete(socket));
    // Until the hello is read, replies use a plain codec (no compression, no CRC).
    let codec = createBinaryCodec({ compressions: [], crc: false }, this.options.compressMin, false);
    codec.reader.acceptAnyVersion = true;
    const timer = setTimeout(() => socket.destroy(), this.options.helloTimeoutMs);
    const onHello = (chunk: Buffer) => {
      let messages: WireMessage[];
      try {
        messages = codec.reader.push(chunk);
      } catch (err) {
        if (!(err instanceof FramingError)) throw err;
        return this.refuse(
          socket,
          codec,
          new PushError(err.tooLarge ? 'frame_too_large' : 'protocol_error', err.message),
        );
      }
      if (messages.length === 0) return;
      socket.off('data', onHello);
      socket.pause();
      clearTimeout(timer);
      const [first, ...early] = messages;
      let hello: Hello;
      try {
        hello = readHello(first!);
      } catch (err) {
        return this.refuse(socket, codec, err as PushError, err instanceof VersionError);
      }
      // The same reader goes on: it holds the Sequence and any bytes after the hello.
      const reader = codec.reader;
      reader.acceptAnyVersion = false;
      codec = createBinaryCodec(hello, this.options.compressMin, false, reader);
      codec.early.push(...early);
      void this.open(socket, codec, hello);
    };
    socket.on('data', onHello);
  }

  private async open(socket: net.Socket, codec: BinaryCodec, hello: Hello): Promise<void> {
    const conn = new TcpConnection(socket, codec);
    let admission: Admission;
    try {
      const url = new URL(`tcp://push/?${hello.query}`);
      // The gateway's checks read headers for browser-only things (Origin); a TCP client has none.
      admission = await this.gateway.admit({}, url, socket.remoteAddress ?? 'unknown');
    } catch (err) {
      if (!isPushError(err)) {
        this.log.error({ err }, 'tcp hello failed');
        return this.refuse(socket, codec, new PushError('internal', 'internal error'));
      }
      this.metrics.handshakesRefused.inc({ status: String(err.spec.status) });
      return this.refuse(socket, codec, err);
    }
    if (socket.destroyed) return;
    if (this.gateway.isStopping)
      return this.refuse(socket, codec, new PushError('unavailable', 'server is shutting down'));
    const s = this.gateway.open(admission, conn, codec);
    conn.session = s;
    socket.on('data', (chunk: Buffer) => this.gateway.handleFrame(s, chunk, true));
    socket.on('close', () => this.gateway.closed(s));
    this.gateway.sendWelcome(s);
    void this.gateway.replay(s, admission.since);
    // Frames the client sent right behind its hello.
    if (codec.early.length > 0) this.gateway.handleFrame(s, Buffer.alloc(0), true);
    socket.resume();
  }

  /** An error frame (with the HTTP status the WebSocket handshake would have got), then the end. */
  private refuse(socket: net.Socket, codec: BinaryCodec, err: PushError, withVersions = false): void {
    const conn = new TcpConnection(socket, codec);
    codec.sendControl(conn, 'error', {
      code: err.spec.wire,
      message: err.message,
      status: err.spec.status,
      ...(withVersions ? { versions: SUPPORTED_VERSIONS } : {}),
    });
    socket.end();
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
  }
}

class VersionError extends PushError {}

function readHello(m: WireMessage): Hello {
  if (m.kind !== KIND.hello) throw new PushError('bad_request', 'the first frame on TCP must be a hello');
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(m.body.toString('utf8'));
  } catch {
    throw new PushError('bad_request', 'hello body is not valid JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new PushError('bad_request', 'hello body must be a JSON object');
  }
  const versions = body.versions ?? [m.version];
  if (!Array.isArray(versions) || !versions.every((v) => Number.isInteger(v))) {
    throw new PushError('bad_request', 'hello.versions must be an array of integers');
  }
  if (!versions.includes(VERSION)) {
    throw new VersionError(
      'bad_request',
      `no common protocol version: offered ${versions.join(',') || 'none'}, this server speaks ${SUPPORTED_VERSIONS.join(',')}`,
    );
  }
  const codecs = body.codecs ?? [];
  if (!Array.isArray(codecs) || !codecs.every((c) => typeof c === 'string')) {
    throw new PushError('bad_request', 'hello.codecs must be an array of strings');
  }
  const query = new URLSearchParams();
  for (const key of ['app', 'token', 'device', 'since'] as const) {
    const v = body[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string' && !(key === 'since' && typeof v === 'number')) {
      throw new PushError('bad_request', `hello.${key} must be a string`);
    }
    query.set(key, String(v));
  }
  return { query, versions, compressions: codecs, crc: body.crc === true };
}
