import { EventEmitter } from 'node:events';
import { IncomingMessage, maxHeaderSize, ServerResponse, STATUS_CODES } from 'node:http';
import type { HttpRequest, HttpResponse } from '@trufflesuite/uws-js-unofficial';
import type { FastifyInstance } from 'fastify';
import { PushError, toErrorBody } from '../../domain/errors.js';

/** Headers about one hop's framing: uWS writes its own (length or chunked, date, keep-alive). */
export const HOP_HEADERS: ReadonlySet<string> = new Set([
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'date',
]);

/** One request's uWS side; uWS's response may not be touched once `done`. */
interface Exchange {
  readonly res: HttpResponse;
  /** Aborted by the client, or answered in full (uWS's response is gone or finished). */
  done: boolean;
  /** uWS was asked to stop delivering the body until Node's reader wants more. */
  paused: boolean;
  timer: NodeJS.Timeout | undefined;
}

/**
 * What Node's request and response objects and Fastify read off a socket (the peer's
 * address, TLS or not, liveness), for a request uWS parsed. Writes go nowhere: the response
 * sends through uWS itself (UwsResponse). Destroying it cuts the uWS connection, as
 * destroying a Node socket does.
 */
class PeerSocket extends EventEmitter {
  readonly remotePort = 0;
  readable = false;
  writable = true;
  destroyed = false;
  readonly writableLength = 0;
  /** OutgoingMessage.end uncorks the socket through this. */
  readonly _writableState = { corked: 0 };
  _httpMessage: unknown = null;

  constructor(
    readonly remoteAddress: string,
    readonly encrypted: boolean | undefined,
    private readonly x: Exchange,
    private readonly gone: (socket: PeerSocket) => void,
  ) {
    super();
  }

  write(_data: unknown, encoding?: unknown, cb?: () => void): boolean {
    const done = typeof encoding === 'function' ? (encoding as () => void) : cb;
    // Asynchronous like a socket's: Node marks the response finished after this returns.
    if (done) process.nextTick(done);
    return true;
  }

  cork(): void {}
  uncork(): void {}
  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }

  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.writable = false;
    const x = this.x;
    clearTimeout(x.timer);
    if (!x.done) {
      x.done = true;
      x.res.close();
    }
    this.gone(this);
    process.nextTick(() => this.emit('close', false));
    return this;
  }

  end(): this {
    return this.destroy();
  }
}

/** A request uWS parsed, as Node's own request object; its body is pushed as uWS hands it over. */
class UwsRequest extends IncomingMessage {
  /** Set while uWS is paused: called once Node's reader wants more. */
  resumeBody: (() => void) | null = null;

  override _read(): void {
    (this as unknown as { _consuming: boolean })._consuming = true;
    const resume = this.resumeBody;
    this.resumeBody = null;
    resume?.();
  }
}

type Chunk = string | Buffer | Uint8Array;

function toBuffer(chunk: Chunk, encoding: unknown): Buffer {
  if (typeof chunk === 'string')
    return Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/**
 * Node's own response object (every header API, HEAD/204/304 without a body, the events
 * Fastify waits for), whose bytes go out through uWS: status and headers at the first write,
 * a sized answer whole with `end`, anything else streamed with uWS's backpressure.
 */
class UwsResponse extends ServerResponse {
  private started = false;
  /** A sized answer's chunks until `end` (uWS writes one length for the whole). */
  private held: Buffer[] | null = null;

  constructor(
    req: IncomingMessage,
    private readonly x: Exchange,
    /** The request asked to close the connection after this answer. */
    private readonly closeAfter: boolean,
  ) {
    super(req);
    // Makes writeHead(status, headers) store its headers where getHeader finds them.
    this.setHeader('x-uws', '');
    this.removeHeader('x-uws');
  }

  override write(chunk: Chunk, encoding?: unknown, cb?: unknown): boolean {
    if (this.writableEnded || this.destroyed) return super.write(chunk, encoding as never, cb as never);
    const ok = super.write(chunk, encoding as never, cb as never);
    if (!this.hasBody()) return ok;
    return this.out(toBuffer(chunk, encoding), false);
  }

  override end(chunk?: unknown, encoding?: unknown, cb?: unknown): this {
    if (typeof chunk === 'function') {
      cb = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    if (this.writableEnded || this.destroyed)
      return super.end(chunk as never, encoding as never, cb as never);
    super.end(chunk as never, encoding as never, cb as never);
    const body = chunk == null || !this.hasBody() ? undefined : toBuffer(chunk as Chunk, encoding);
    this.out(body, true);
    return this;
  }

  /** Node's verdict from the stored head: false for HEAD, 204 and 304. */
  private hasBody(): boolean {
    return (this as unknown as { _hasBody: boolean })._hasBody;
  }

  private out(chunk: Buffer | undefined, last: boolean): boolean {
    const x = this.x;
    if (x.done) return false;
    const res = x.res;
    const sized = this.getHeader('content-length') !== undefined;
    let ok = true;
    res.cork(() => {
      const first = !this.started;
      if (first) {
        this.started = true;
        res.writeStatus(`${this.statusCode} ${this.statusMessage}`);
        for (const name of this.getHeaderNames()) {
          if (HOP_HEADERS.has(name)) continue;
          const value = this.getHeader(name)!;
          if (Array.isArray(value)) for (const v of value) res.writeHeader(name, v);
          else res.writeHeader(name, String(value));
        }
      }
      // Also when uWS is paused on an unread body: its response is gone after `end`, so it
      // could never be resumed, and the connection would hang.
      const close =
        this.closeAfter || x.paused || String(this.getHeader('connection')).toLowerCase() === 'close';
      if (last) {
        x.done = true;
        clearTimeout(x.timer);
        if (!this.hasBody()) {
          endWithoutBody(res, this.getHeader('content-length'), close);
          return;
        }
        // uWS closes without saying so; Node's server says it, and clients then do not reuse it.
        if (close && first) res.writeHeader('Connection', 'close');
        const held = this.held;
        const body = held === null ? chunk : Buffer.concat(chunk === undefined ? held : [...held, chunk]);
        res.end(body ?? '', close);
        return;
      }
      if (chunk === undefined || chunk.length === 0) return;
      if (sized) {
        // A sized answer goes out whole, with its length (as the socket bridge does).
        if (this.held === null) this.held = [chunk];
        else this.held.push(chunk);
        return;
      }
      ok = res.write(chunk);
    });
    if (!ok && !x.done) {
      res.onWritable(() => {
        this.emit('drain');
        return true;
      });
    }
    return ok;
  }
}

/**
 * Plain HTTP on the uWS engine's port, dispatched in-process into the Fastify app: the
 * request uWS parsed becomes Node's own request and response objects (on a stand-in socket
 * that carries the peer's address) and goes through `app.routing`, the same entry Node's
 * HTTP server calls. Saves the socket bridge's local hop (a second HTTP parse and a unix
 * socket round trip per request). Body limits, the body deadline
 * (`PUSH_BODY_TIMEOUT_MS`), error bodies, hooks and CORS stay Fastify's and this module's.
 */
export class InProcessHttp {
  private readonly maxHeaderBytes: number;
  /** Requests being served; a stop waits for them as Node's server.close() does for its own. */
  private readonly inFlight = new Set<PeerSocket>();
  private whenIdle: (() => void) | null = null;
  private readonly gone = (socket: PeerSocket) => {
    this.inFlight.delete(socket);
    if (this.inFlight.size === 0) this.whenIdle?.();
  };

  constructor(
    private readonly app: FastifyInstance,
    private readonly tls: boolean,
  ) {
    this.maxHeaderBytes = (app.server as { maxHeaderSize?: number }).maxHeaderSize ?? maxHeaderSize;
  }

  dispatch(res: HttpResponse, req: HttpRequest): void {
    const query = req.getQuery();
    const url = query ? `${req.getUrl()}?${query}` : req.getUrl();
    const method = req.getCaseSensitiveMethod();
    const raw: string[] = [];
    // What Node's parser counts against its header limit: request line and header lines.
    let headerBytes = method.length + url.length + 12;
    let hasBody = false;
    let lengths = 0;
    let closeAfter = false;
    req.forEach((name, value) => {
      raw.push(name, value);
      headerBytes += name.length + value.length + 4;
      if (name === 'content-length') {
        lengths++;
        hasBody ||= value !== '0';
      } else if (name === 'transfer-encoding') hasBody = true;
      else if (name === 'connection') closeAfter ||= value.toLowerCase().includes('close');
    });
    if (headerBytes > this.maxHeaderBytes) {
      // uWS takes larger heads than Node's parser; Node answers these with 431.
      res.cork(() => refuse(res, new PushError('headers_too_large', 'request headers too large')));
      return;
    }
    if (lengths > 1) {
      // uWS takes a repeated Content-Length (a request-smuggling shape); Node's parser refuses it.
      res.cork(() => refuse(res, new PushError('bad_request', 'malformed HTTP request')));
      return;
    }
    const x: Exchange = { res, done: false, paused: false, timer: undefined };
    const socket = new PeerSocket(
      Buffer.from(res.getRemoteAddressAsText()).toString(),
      this.tls || undefined,
      x,
      this.gone,
    );
    this.inFlight.add(socket);
    const msg = new UwsRequest(socket as never);
    msg.method = method;
    msg.url = url;
    msg.httpVersionMajor = 1;
    msg.httpVersionMinor = 1;
    msg.httpVersion = '1.1';
    // Node's own parser callback: `headers` is built from these with its rules for repeated names.
    (msg as unknown as { _addHeaderLines(h: string[], n: number): void })._addHeaderLines(raw, raw.length);
    const reply = new UwsResponse(msg, x, closeAfter);
    reply.assignSocket(socket as never);
    reply.once('finish', () => {
      // As Node's server does once a response is out: the exchange is over for both objects.
      // Node's server drains an unread body the same way.
      socket.destroy();
      if (!msg.readableEnded) msg.resume();
    });
    res.onAborted(() => {
      if (x.done) return;
      x.done = true;
      clearTimeout(x.timer);
      socket.destroy();
      msg.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    });
    if (!hasBody) {
      msg.complete = true;
      msg.push(null);
    } else {
      this.readBody(x, msg, reply, socket);
    }
    this.app.routing(msg, reply);
  }

  /** Resolves once no request is being served (at once if none is). */
  idle(): Promise<void> {
    if (this.inFlight.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.whenIdle = () => {
        this.whenIdle = null;
        resolve();
      };
    });
  }

  /** Cuts every request still being served (the shutdown bound): their clients' connections close. */
  closeAll(): void {
    for (const socket of [...this.inFlight]) socket.destroy();
  }

  private readBody(x: Exchange, msg: UwsRequest, reply: UwsResponse, socket: PeerSocket): void {
    const res = x.res;
    res.onData((chunk, isLast) => {
      if (x.done || msg.destroyed) return;
      // uWS reuses the chunk's memory after this call: copy it.
      const more = msg.push(Buffer.from(new Uint8Array(chunk)));
      if (isLast) {
        clearTimeout(x.timer);
        msg.complete = true;
        msg.push(null);
      } else if (!more && !x.paused) {
        x.paused = true;
        res.pause();
        msg.resumeBody = () => {
          x.paused = false;
          if (!x.done) res.resume();
        };
      }
    });
    // PUSH_BODY_TIMEOUT_MS, which Node's server enforces on the ws engine: the same 408.
    const deadline = this.app.server.requestTimeout;
    if (deadline > 0) {
      x.timer = setTimeout(() => {
        if (x.done || msg.complete) return;
        if (!reply.headersSent) {
          x.done = true;
          res.cork(() =>
            refuse(res, new PushError('request_timeout', 'request headers or body not received in time')),
          );
        }
        socket.destroy();
        msg.destroy();
      }, deadline);
    }
  }
}

/** What Node's server does on a request it will not serve (answerClientError): the error body, then close. */
function refuse(res: HttpResponse, err: PushError): void {
  const status = err.spec.status;
  res.writeStatus(`${status} ${STATUS_CODES[status]}`).writeHeader('Content-Type', 'application/json');
  res.end(JSON.stringify(toErrorBody(err)), true);
}

/**
 * A HEAD (or 204/304) answer. uWS 20.30's `endWithoutBody(length)` writes the length but
 * leaves the response open: the next request on the connection closed it unanswered. The
 * header written by hand and `endWithoutBody()` without arguments end it properly (any
 * argument, even `undefined`, is read as a length); a close is asked of the client then.
 */
export function endWithoutBody(res: HttpResponse, length: unknown, close: boolean): void {
  if (length !== undefined) res.writeHeader('Content-Length', String(length));
  if (close) res.writeHeader('Connection', 'close');
  res.endWithoutBody();
}
