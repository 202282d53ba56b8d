import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppRegistry } from '../../auth/app-registry.js';
import type { TokenClaims } from '../../auth/tokens.js';
import type { StatusWriter } from '../../delivery/status-writer.js';
import { isPushError, PushError } from '../../domain/errors.js';
import { isValidDeviceId, isValidMessageId } from '../../domain/ids.js';
import type { Admission, Gateway } from '../../gateway/gateway.js';
import { clientIp, parseCredentials } from '../../gateway/handshake.js';
import { LongPollTransport } from '../../gateway/transports/long-poll.js';
import { SseTransport } from '../../gateway/transports/sse.js';
import { peerAddress, type TrustedProxies } from '../../limits/client-ip.js';
import type { Metrics } from '../../observability/metrics.js';
import type { DeliveryStore, MessageStore } from '../../store/store.js';
import {
  AckBody,
  Acked,
  ClientQuery,
  describedOnly,
  errorReplies,
  HistoryPage,
  HistoryQuery,
  PollReply,
  ReadBody,
  tagged,
  Unread,
} from '../schemas.js';
import { historyPage, parseHistoryQuery } from './history.js';

export interface ClientRouteDeps {
  readonly apps: AppRegistry;
  readonly store: MessageStore & DeliveryStore;
  readonly status: StatusWriter;
  readonly gateway: Gateway;
  readonly metrics: Metrics;
  readonly trustProxy: TrustedProxies;
}

const DEFAULT_POLL_SECONDS = 25;
const MAX_POLL_SECONDS = 60;

/** A bearer call names an unknown app: 401 on the client HTTP API (the socket says 403). */
function asBearerError(err: unknown): unknown {
  return isPushError(err) && err.code === 'unknown_app' ? new PushError('unauthorized', err.message) : err;
}

/**
 * The client HTTP API (`/v1/me/*`, JWT bearer like the socket) and the fallback transports:
 * SSE and long-poll carry the same backlog, ordering and ack semantics as the socket.
 */
export function registerClientRoutes(app: FastifyInstance, deps: ClientRouteDeps): void {
  const { apps, store, status, gateway } = deps;

  const bearer = async (req: FastifyRequest): Promise<{ appId: string; claims: TokenClaims }> => {
    const credentials = parseCredentials(req.headers, requestUrl(req));
    try {
      return {
        appId: credentials.appId,
        claims: await apps.verifyToken(credentials.appId, credentials.token),
      };
    } catch (err) {
      throw asBearerError(err);
    }
  };

  const admit = async (req: FastifyRequest): Promise<Admission> => {
    try {
      return await gateway.admit(
        req.headers,
        requestUrl(req),
        clientIp(peerAddress(req.raw), req.headers, deps.trustProxy),
      );
    } catch (err) {
      throw asBearerError(err);
    }
  };

  app.get(
    '/v1/me/messages',
    {
      ...describedOnly,
      schema: tagged('client', "A page of the caller's history (expired messages left out)", {
        querystring: Type.Composite([ClientQuery, HistoryQuery('seq')]),
        response: { 200: HistoryPage, ...errorReplies },
      }),
    },
    async (req) => {
      const { appId, claims } = await bearer(req);
      const q = parseHistoryQuery(req.query, 'seq');
      await status.flush();
      const page = await store.readUserHistory({
        appId,
        userId: claims.userId,
        ...q,
        includeExpired: false,
        now: Date.now(),
      });
      return historyPage(page);
    },
  );

  app.get(
    '/v1/me/unread',
    {
      ...describedOnly,
      schema: tagged('client', "The caller's unread counter", {
        querystring: ClientQuery,
        response: { 200: Unread, ...errorReplies },
      }),
    },
    async (req) => {
      const { appId, claims } = await bearer(req);
      await status.flush();
      return store.readUnread(appId, claims.userId, Date.now());
    },
  );

  app.post(
    '/v1/me/read',
    {
      ...describedOnly,
      schema: tagged('client', 'Move the read marker', {
        querystring: ClientQuery,
        body: ReadBody,
        response: { 200: Unread, ...errorReplies },
      }),
    },
    async (req) => {
      const { appId, claims } = await bearer(req);
      const seq = (req.body as { seq?: unknown } | undefined)?.seq;
      if (!isSeq(seq)) throw new PushError('bad_request', 'seq: a non-negative integer');
      await status.read(appId, claims.userId, seq);
      return store.readUnread(appId, claims.userId, Date.now());
    },
  );

  app.post(
    '/v1/me/ack',
    {
      ...describedOnly,
      schema: tagged('client', 'Ack messages (cumulative by seq, or by ids)', {
        querystring: ClientQuery,
        body: AckBody,
        response: { 200: Acked, ...errorReplies },
      }),
    },
    async (req) => {
      const { appId, claims } = await bearer(req);
      const body = (req.body ?? {}) as { seq?: unknown; ids?: unknown; device?: unknown };
      // The device as for the socket (?device= or a body field); without one the user acks as a whole.
      const named = body.device ?? (req.query as { device?: unknown }).device;
      if (named !== undefined && !isValidDeviceId(named))
        throw new PushError('bad_request', 'device: 1..64 of [A-Za-z0-9._:-]');
      const device = named ?? null;
      const at = Date.now();
      let acked: number;
      if (body.seq !== undefined && body.ids === undefined && isSeq(body.seq)) {
        acked = await status.ack({
          kind: 'ack_upto',
          appId,
          userId: claims.userId,
          device,
          seq: body.seq,
          at,
        });
      } else if (
        body.ids !== undefined &&
        body.seq === undefined &&
        Array.isArray(body.ids) &&
        body.ids.length > 0 &&
        body.ids.length <= 1000 &&
        body.ids.every(isValidMessageId)
      ) {
        acked = await status.ack({
          kind: 'ack_ids',
          appId,
          userId: claims.userId,
          device,
          ids: body.ids,
          at,
        });
      } else {
        throw new PushError(
          'bad_request',
          'ack needs exactly one of seq (integer) or ids (1..1000 message ids)',
        );
      }
      deps.metrics.acks.inc(acked);
      return { acked };
    },
  );

  app.get(
    '/v1/sse',
    {
      ...describedOnly,
      schema: tagged('client', 'Server-Sent Events fallback: welcome, backlog, then live messages', {
        querystring: ClientQuery,
        response: {
          200: { description: 'event stream', content: { 'text/event-stream': { schema: Type.String() } } },
          ...errorReplies,
        },
      }),
    },
    async (req, reply) => {
      const admission = await admit(req);
      const transport = new SseTransport(reply.raw);
      const s = gateway.open(admission, transport); // throws (503) if a stop began meanwhile
      hijack(reply);
      transport.begin();
      transport.session = s;
      reply.raw.on('close', () => gateway.closed(s));
      gateway.sendWelcome(s);
      void gateway.replay(s, admission.since);
    },
  );

  app.get(
    '/v1/poll',
    {
      ...describedOnly,
      schema: tagged(
        'client',
        'Long-poll fallback: the first batch available, or an empty list after the timeout',
        {
          querystring: Type.Composite([
            ClientQuery,
            Type.Object({
              timeout: Type.Optional(Type.String({ description: 'seconds, 0..60, default 25' })),
            }),
          ]),
          response: { 200: PollReply, ...errorReplies },
        },
      ),
    },
    async (req, reply) => {
      const timeout = parseTimeout((req.query as { timeout?: string }).timeout);
      const admission = await admit(req);
      let timer: NodeJS.Timeout | undefined;
      const transport = new LongPollTransport(reply.raw, () => {
        clearTimeout(timer);
        gateway.closed(s);
      });
      const s = gateway.open(admission, transport); // throws (503) if a stop began meanwhile
      hijack(reply);
      transport.session = s;
      reply.raw.on('close', () => transport.terminate());
      await gateway.replay(s, admission.since);
      if (!transport.isDone) timer = setTimeout(() => transport.close(), timeout * 1000);
    },
  );
}

/** The raw response is ours from here on (streams and held requests). */
/** The transport writes its own head; headers hooks set (CORS) go out with it. */
function hijack(reply: FastifyReply): void {
  for (const [name, value] of Object.entries(reply.getHeaders()))
    if (value !== undefined) reply.raw.setHeader(name, value);
  reply.hijack();
}

function requestUrl(req: FastifyRequest): URL {
  return new URL(req.raw.url ?? '/', 'http://localhost');
}

function isSeq(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function parseTimeout(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_POLL_SECONDS;
  const n = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(n >= 0 && n <= MAX_POLL_SECONDS))
    throw new PushError('bad_request', `timeout: 0..${MAX_POLL_SECONDS} seconds`);
  return n;
}
