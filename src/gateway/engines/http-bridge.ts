import { Agent, type IncomingMessage, type OutgoingHttpHeaders, request } from 'node:http';
import type { HttpRequest, HttpResponse } from '@trufflesuite/uws-js-unofficial';
import { PushError, toErrorBody } from '../../domain/errors.js';
import { BRIDGE_PEER_HEADER } from '../../limits/client-ip.js';
import type { Logger } from '../../observability/logger.js';
import { endWithoutBody, HOP_HEADERS } from './http-inprocess.js';

/** One forwarded request's state; uWS may abort it at any point. */
interface Exchange {
  /** The uWS response may not be touched any more: aborted, or answered in full. */
  aborted: boolean;
  upstream: ReturnType<typeof request> | null;
}

/**
 * The streaming routes on the uWS engine's port (SSE, long-poll; everything else is
 * dispatched in-process, http-inprocess.ts): each request is forwarded to the Fastify app,
 * which listens on a private unix socket, and its response streamed back with backpressure
 * both ways. The client's address travels in
 * BRIDGE_PEER_HEADER, believed only on that private socket (client-ip.ts). Routes, body
 * limits, deadlines and error bodies stay Fastify's, so the HTTP API is the same on every engine.
 */
export class HttpBridge {
  private readonly agent = new Agent({ keepAlive: true, maxFreeSockets: 256 });

  constructor(
    private readonly socketPath: string,
    private readonly log: Logger,
  ) {}

  forward(res: HttpResponse, req: HttpRequest): void {
    const method = req.getCaseSensitiveMethod();
    const query = req.getQuery();
    const path = query ? `${req.getUrl()}?${query}` : req.getUrl();
    const headers: OutgoingHttpHeaders = {};
    req.forEach((name, value) => {
      const prev = headers[name];
      headers[name] =
        prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [String(prev), value];
    });
    headers[BRIDGE_PEER_HEADER] = Buffer.from(res.getRemoteAddressAsText()).toString();
    const hasBody =
      headers['transfer-encoding'] !== undefined ||
      (headers['content-length'] !== undefined && headers['content-length'] !== '0');
    const x: Exchange = { aborted: false, upstream: null };
    res.onAborted(() => {
      x.aborted = true;
      x.upstream?.destroy();
    });
    const send = (retry: boolean) => {
      const up = request({
        agent: this.agent,
        socketPath: this.socketPath,
        method,
        path,
        headers,
        setHost: false,
      });
      x.upstream = up;
      let answered = false;
      up.on('response', (r) => {
        answered = true;
        this.respond(res, x, r, method);
      });
      up.on('error', (err) => {
        if (x.aborted || answered) return;
        // A kept-alive socket the API closed just as it was reused: once more on a fresh one.
        if (retry && up.reusedSocket && !hasBody) {
          send(false);
          return;
        }
        x.aborted = true;
        this.log.error({ err }, 'forwarding an HTTP request to the API failed');
        const body = JSON.stringify(toErrorBody(new PushError('internal', 'internal error')));
        res.cork(() => {
          res.writeStatus('500 Internal Server Error').writeHeader('Content-Type', 'application/json');
          res.end(body, true);
        });
      });
      if (!hasBody) up.end();
      return up;
    };
    const up = send(true);
    if (!hasBody) return;
    res.onData((chunk, isLast) => {
      // uWS reuses the chunk's memory after this call: copy it.
      const more = up.write(Buffer.from(new Uint8Array(chunk)));
      if (isLast) up.end();
      else if (!more && !x.aborted) {
        res.pause();
        up.once('drain', () => {
          if (!x.aborted) res.resume();
        });
      }
    });
  }

  private respond(res: HttpResponse, x: Exchange, r: IncomingMessage, method: string): void {
    if (x.aborted) {
      r.destroy();
      return;
    }
    const status = r.statusCode ?? 500;
    res.cork(() => {
      res.writeStatus(`${status} ${r.statusMessage ?? ''}`);
      const raw = r.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) {
        if (!HOP_HEADERS.has(raw[i]!.toLowerCase())) res.writeHeader(raw[i]!, raw[i + 1]!);
      }
    });
    r.on('error', () => {
      if (x.aborted) return;
      x.aborted = true;
      res.close();
    });
    // The API ends the connection (a deadline missed, a parse error): so does the client's.
    const close = r.headers.connection === 'close';
    const length = r.headers['content-length'];
    if (length !== undefined || method === 'HEAD' || status === 204 || status === 304) {
      // A sized answer goes out whole, with its length.
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => {
        if (x.aborted) return;
        x.aborted = true;
        res.cork(() => {
          if (method === 'HEAD' || status === 204 || status === 304) {
            endWithoutBody(res, length, close);
          } else {
            res.end(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), close);
          }
        });
      });
      return;
    }
    // A stream (SSE, chunked): written as it comes, paused while the client is not reading.
    r.on('data', (c: Buffer) => {
      if (x.aborted) return;
      let ok = true;
      res.cork(() => {
        ok = res.write(c);
      });
      if (!ok) {
        r.pause();
        res.onWritable(() => {
          r.resume();
          return true;
        });
      }
    });
    r.on('end', () => {
      if (x.aborted) return;
      x.aborted = true;
      res.cork(() => res.end(undefined, close));
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
