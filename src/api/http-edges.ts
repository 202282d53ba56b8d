import { type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Server as TlsServer } from 'node:tls';
import type { FastifyError, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { type ErrorCode, PushError, toErrorBody } from '../domain/errors.js';

/**
 * The edges of HTTP that Fastify's routes never see: errors Node's parser raises before a
 * request exists, URLs the router cannot decode, slow senders, and too many idle sockets.
 * Each one answers with the API's error body, so a client meets one error shape everywhere.
 */

/** How often Node looks for requests past their header or body deadline (its default is 30 s). */
export const DEADLINE_CHECK_MS = 1000;

/** Node's parser error codes (llhttp `HPE_*` and its own) onto the registry. */
const CLIENT_ERRORS: Record<string, { code: ErrorCode; message: string }> = {
  ERR_HTTP_REQUEST_TIMEOUT: {
    code: 'request_timeout',
    message: 'request headers or body not received in time',
  },
  HPE_HEADER_OVERFLOW: { code: 'headers_too_large', message: 'request headers too large' },
  HPE_INVALID_METHOD: { code: 'method_not_allowed', message: 'unknown HTTP method' },
};

/**
 * Node's `clientError`: the request could not be parsed (bad header, unknown method, headers
 * too large) or missed its deadline. Answers with the error body unless a response already
 * started, then closes the socket: after a parse error the stream cannot be trusted.
 */
export function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const known = err.code ? CLIENT_ERRORS[err.code] : undefined;
  const pushErr = new PushError(known?.code ?? 'bad_request', known?.message ?? 'malformed HTTP request');
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) writeRawError(socket, pushErr);
  socket.destroy();
}

/** Fastify's own routing failures (`FST_ERR_BAD_URL`, parameter too long): a 400 like any other. */
export function answerFrameworkError(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  const message =
    err.code === 'FST_ERR_BAD_URL'
      ? 'malformed URL: bad percent-encoding or not UTF-8'
      : err.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? 'path parameter too long'
        : 'bad request';
  void reply.status(400).send(toErrorBody(new PushError('bad_request', message)));
}

/** Writes a whole HTTP response on a socket that has no Node response object (or a broken one). */
export function writeRawError(socket: Duplex, err: PushError, extraHeaders = ''): void {
  const status = err.spec.status;
  const body = JSON.stringify(toErrorBody(err));
  socket.write(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n${extraHeaders}\r\n${body}`,
  );
}

const BEFORE_BODY = Symbol('runs before the body is read');

/**
 * Marks an authentication hook so the route runs it as `onRequest`, before the body is read:
 * a caller without credentials cannot make the server buffer and parse up to a megabyte.
 * Route modules keep declaring it as `preHandler`; `moveAuthBeforeBody` relocates it.
 */
export function beforeBody<T extends (...args: never[]) => unknown>(hook: T): T {
  return Object.assign(hook, { [BEFORE_BODY]: true });
}

/** `onRoute` hook: moves hooks marked with `beforeBody` from `preHandler` to `onRequest`. */
export function moveAuthBeforeBody(route: RouteOptions): void {
  const pre = route.preHandler;
  const hooks = pre === undefined ? [] : Array.isArray(pre) ? pre : [pre];
  const early = hooks.filter((h) => (h as unknown as Record<symbol, unknown>)[BEFORE_BODY] === true);
  if (early.length === 0) return;
  const on = route.onRequest;
  const existing = on === undefined ? [] : Array.isArray(on) ? on : [on];
  route.onRequest = [...existing, ...(early as unknown as typeof existing)];
  route.preHandler = hooks.filter((h) => !early.includes(h)) as typeof route.preHandler;
}

/**
 * Caps sockets that are plain HTTP (not upgraded): past `max`, a new connection is answered
 * 503 `overloaded` and closed. Upgraded sockets leave the count; the socket limit for clients
 * is `PUSH_MAX_CONNECTIONS`.
 */
export function capPlainConnections(server: Server, max: number): void {
  if (max <= 0) return;
  const plain = new Set<Socket>();
  // Over TLS the socket requests arrive on (and upgrades name) is the TLS one.
  const event = server instanceof TlsServer ? 'secureConnection' : 'connection';
  server.on(event, (socket: Socket) => {
    if (plain.size >= max) {
      socket.on('error', () => {});
      writeRawError(
        socket,
        new PushError('overloaded', 'too many open HTTP connections'),
        'Retry-After: 1\r\n',
      );
      socket.destroySoon();
      return;
    }
    plain.add(socket);
    socket.once('close', () => plain.delete(socket));
  });
  server.on('upgrade', (req: IncomingMessage) => plain.delete(req.socket));
}
