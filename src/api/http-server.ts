import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyRequest,
  LogController,
} from 'fastify';
import { type ErrorCode, isPushError, PushError, toErrorBody } from '../domain/errors.js';
import { isValidUserId } from '../domain/ids.js';
import type { Logger } from '../observability/logger.js';
import { safeUrl } from '../observability/logger.js';
import { getOrCreate } from '../util/maps.js';
import {
  answerClientError,
  answerFrameworkError,
  capPlainConnections,
  DEADLINE_CHECK_MS,
  moveAuthBeforeBody,
} from './http-edges.js';
import { hidden } from './schemas.js';

export const MAX_BODY_BYTES = 1024 * 1024;

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the Basic-auth hook of server API routes. */
    appId: string;
    /** The body as received (routes that need more than JSON.parse gives, like exact big integers). */
    rawBody: string | null;
  }
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
/** Methods some route here answers; any other (PROPFIND, MKCOL, TRACE…) is a 405 on every path. */
const SERVED_METHODS: ReadonlySet<string> = new Set([...METHODS, 'HEAD', 'OPTIONS']);

/** Fastify error codes that are the client's fault, mapped onto the registry. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'bad_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'bad_request',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad_request',
  FST_ERR_VALIDATION: 'bad_request',
};

/**
 * Builds the Fastify instance every route module registers on: one JSON parser (plain
 * JSON.parse, so `__proto__` keys stay plain data), one error mapping to
 * `{"error":{"code","message"}}`, 404 and 405 in the same shape.
 */
export function createHttpServer(
  log: Logger,
  headersTimeoutMs: number,
  edges: HttpEdgeLimits = { bodyTimeoutMs: 30_000, maxPlainConnections: 0 },
): FastifyInstance {
  const app = Fastify({
    // Node checks header and body deadlines on this interval; its default (30 s) let a
    // trickling client hold a socket three times past a 10 s header deadline.
    http: { connectionsCheckingInterval: DEADLINE_CHECK_MS },
    // PUSH_TLS_CERT/PUSH_TLS_KEY: https and wss served directly, same deadlines.
    ...(edges.tls ? { https: { ...edges.tls, connectionsCheckingInterval: DEADLINE_CHECK_MS } } : {}),
    clientErrorHandler: answerClientError,
    frameworkErrors: answerFrameworkError,
    loggerInstance: log as FastifyBaseLogger,
    // Request URLs may carry tokens: no per-request logs; errors are logged without the query.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: MAX_BODY_BYTES,
    // User ids are up to 128 code points, percent-encoded in paths: up to 12 bytes each.
    routerOptions: { maxParamLength: 2048 },
    return503OnClosing: true,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  });
  app.server.headersTimeout = headersTimeoutMs;
  // Counts until the request (headers and body) is received, not until the response ends:
  // long-poll and SSE responses may live long, their requests do not.
  app.server.requestTimeout = edges.bodyTimeoutMs;
  capPlainConnections(app.server, edges.maxPlainConnections);

  app.decorateRequest('appId', '');
  app.decorateRequest('rawBody', null);
  app.removeAllContentTypeParsers();
  // Any content type is read as JSON: `curl -d` without a header should just work.
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: MAX_BODY_BYTES }, (req, body, done) => {
    req.rawBody = body as string;
    if (body === '') return done(null, undefined);
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new PushError('bad_request', 'body is not valid JSON') as unknown as FastifyError, undefined);
    }
  });

  app.setErrorHandler((err: FastifyError | PushError, req, reply) => {
    const pushErr = toPushError(err);
    if (pushErr.code === 'internal') req.log.error({ err, url: safeUrl(req.url) }, 'request failed');
    void reply.status(pushErr.spec.status).send(toErrorBody(pushErr));
  });

  // 405 for known paths with the wrong method, 404 otherwise.
  const routes = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    moveAuthBeforeBody(route);
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const set = getOrCreate(routes, route.url, () => new Set<string>());
    for (const m of methods) set.add(m);
  });
  app.setNotFoundHandler((req, reply) => {
    // Node's parser knows WebDAV and other extension methods, so they reach the router; no
    // path answers them, and "not found" would suggest another path might.
    if (!SERVED_METHODS.has(req.method)) {
      void reply
        .status(405)
        .send(toErrorBody(new PushError('method_not_allowed', `${req.method} is not served here`)));
      return;
    }
    void reply
      .status(404)
      .send(toErrorBody(new PushError('not_found', `no route ${req.method} ${safeUrl(req.url)}`)));
  });
  app.decorate('finishRoutes', () => {
    for (const [url, methods] of [...routes]) {
      const others = METHODS.filter((m) => !methods.has(m));
      if (others.length === 0 || url === '*') continue;
      app.route({
        method: others,
        url,
        ...hidden,
        handler: async (req, reply) => {
          void reply.header('allow', [...methods].join(', '));
          return reply
            .status(405)
            .send(toErrorBody(new PushError('method_not_allowed', `${req.method} is not allowed here`)));
        },
      });
    }
  });
  return app;
}

export interface HttpEdgeLimits {
  /** Whole request (headers and body) within this long of its first byte; 0 = no bound. */
  readonly bodyTimeoutMs: number;
  /** Open sockets that are not WebSockets; 0 = unlimited. */
  readonly maxPlainConnections: number;
  /** PEM certificate chain and key: serve https/wss instead of http/ws. */
  readonly tls?: { readonly cert: string; readonly key: string };
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Adds the 405 routes; call once after every route module registered. */
    finishRoutes(): void;
  }
}

function toPushError(err: FastifyError | PushError): PushError {
  if (isPushError(err)) return err;
  const mapped = err.code ? FASTIFY_CODES[err.code] : undefined;
  if (mapped) return new PushError(mapped, err.message);
  if ((err as FastifyError).validation) return new PushError('bad_request', err.message);
  const status = err.statusCode ?? 500;
  if (status === 413) return new PushError('payload_too_large', err.message);
  if (status >= 400 && status < 500) return new PushError('bad_request', err.message);
  return new PushError('internal', 'internal error', { cause: err });
}

/** Reads a path parameter that must be a user id (percent-decoded by the router). */
export function userParam(req: FastifyRequest): string {
  const user = (req.params as { user?: string }).user;
  if (user === undefined || !isValidUserId(user))
    throw new PushError('bad_request', 'user: not a valid user id');
  return user;
}
