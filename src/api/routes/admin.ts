import { createHash, timingSafeEqual } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppRegistry } from '../../auth/app-registry.js';
import type { Presence } from '../../cluster/presence.js';
import type { StatusWriter } from '../../delivery/status-writer.js';
import { PushError } from '../../domain/errors.js';
import { isValidAppId, isValidDeviceId, isValidUserId } from '../../domain/ids.js';
import type { Ingest } from '../../ingest/ingest.js';
import { parsePushRequest } from '../../ingest/push-request.js';
import { peerAddress } from '../../limits/client-ip.js';
import { FailureThrottle } from '../../limits/failure-throttle.js';
import type { Metrics } from '../../observability/metrics.js';
import { StatsSampler } from '../../observability/stats.js';
import type { AppStore, MessageStore, PresenceStore } from '../../store/store.js';
import { beforeBody } from '../http-edges.js';
import {
  AnyObject,
  Closed,
  describedOnly,
  errorReplies,
  PushBody,
  PushResult,
  RecentMessage,
  tagged,
  UserPresence,
} from '../schemas.js';

export interface AdminRouteDeps {
  /** PUSH_ADMIN_TOKEN; null disables every admin route (403 saying how to enable it). */
  readonly adminToken: string | null;
  readonly apps: AppRegistry;
  readonly store: AppStore & MessageStore;
  readonly presence: Presence;
  readonly status: StatusWriter;
  readonly ingest: Ingest;
  readonly metrics: Metrics;
  readonly maxDataBytes: number;
  /** Cluster mode: the dashboard's figures are shared through the store and summed over nodes. */
  readonly statsCluster?: { store: PresenceStore; nodeId: string } | null;
}

const MAX_RECENT = 200;
const DEFAULT_RECENT = 50;
/** Recipients listed per recent message; the counts cover all of them. */
const RECENT_RECIPIENTS = 20;

/**
 * The operator API behind /dashboard, under /v1/admin/*, across every app:
 *
 *   GET    /v1/admin/stats                         totals, rates over the last minutes, connections by platform (whole cluster)
 *   GET    /v1/admin/apps                          app ids
 *   GET    /v1/admin/presence?app=&user=           a user's connections on this node
 *   DELETE /v1/admin/connections?app=&user=[&device=]   kick (close 4003)
 *   GET    /v1/admin/messages?[app=]&[limit=]      recent messages with per-recipient status
 *   POST   /v1/admin/push {"app", …push body}      send a message as that app
 *
 * Auth: `Authorization: Bearer <PUSH_ADMIN_TOKEN>`, compared in constant time.
 */
export function registerAdminRoutes(app: FastifyInstance, deps: AdminRouteDeps): void {
  const { store, presence, status, ingest } = deps;
  const stats = new StatsSampler(deps.metrics, deps.statsCluster ?? null);
  // In a cluster every node publishes its figures, so any node's dashboard sums them all.
  if (deps.adminToken !== null || deps.statsCluster) stats.start();
  app.addHook('onClose', async () => stats.stop());
  const preHandler = adminAuth(deps.adminToken);

  app.get(
    '/v1/admin/stats',
    {
      preHandler,
      ...describedOnly,
      schema: tagged('admin', 'Totals, recent rates and connections by platform (this node)', {
        response: { 200: AnyObject, ...errorReplies },
      }),
    },
    () => stats.snapshot(),
  );

  app.get(
    '/v1/admin/apps',
    {
      preHandler,
      ...describedOnly,
      schema: tagged('admin', 'App ids', {
        response: {
          200: Type.Object({ apps: Type.Array(Type.String()) }, { additionalProperties: true }),
          ...errorReplies,
        },
      }),
    },
    async () => ({
      apps: (await store.listApps()).map((a) => a.appId),
    }),
  );

  app.get(
    '/v1/admin/presence',
    {
      preHandler,
      ...describedOnly,
      schema: tagged('admin', "A user's connections", {
        querystring: Type.Object({ app: Type.String(), user: Type.String() }),
        response: {
          200: Type.Composite([Type.Object({ app: Type.String() }), UserPresence], {
            additionalProperties: true,
          }),
          ...errorReplies,
        },
      }),
    },
    async (req) => {
      const { appId, userId } = appAndUser(req);
      const connections = (await presence.of(appId, [userId])).get(userId) ?? [];
      return { app: appId, user: userId, online: connections.length > 0, connections };
    },
  );

  app.delete(
    '/v1/admin/connections',
    {
      preHandler,
      ...describedOnly,
      schema: tagged('admin', "Kick a user's connections (close 4003)", {
        querystring: Type.Object({
          app: Type.String(),
          user: Type.String(),
          device: Type.Optional(Type.String()),
        }),
        response: { 200: Closed, ...errorReplies },
      }),
    },
    async (req) => {
      const { appId, userId } = appAndUser(req);
      const device = (req.query as { device?: string }).device;
      if (device !== undefined && !isValidDeviceId(device))
        throw new PushError('bad_request', 'device: invalid');
      return { closed: await presence.kick(appId, userId, device) };
    },
  );

  app.get(
    '/v1/admin/messages',
    {
      preHandler,
      ...describedOnly,
      schema: tagged('admin', 'Recent messages with per-recipient status', {
        querystring: Type.Object({ app: Type.Optional(Type.String()), limit: Type.Optional(Type.String()) }),
        response: {
          200: Type.Object({ messages: Type.Array(RecentMessage) }, { additionalProperties: true }),
          ...errorReplies,
        },
      }),
    },
    async (req) => {
      const q = req.query as { app?: string; limit?: string };
      if (q.app !== undefined && q.app !== '' && !isValidAppId(q.app))
        throw new PushError('bad_request', 'app: invalid');
      const limit = q.limit === undefined ? DEFAULT_RECENT : Number(q.limit);
      if (!Number.isInteger(limit) || limit < 0 || limit > MAX_RECENT) {
        throw new PushError('bad_request', `limit: 0..${MAX_RECENT}`);
      }
      await status.flush(); // acks received so far are visible
      const messages = await store.listRecentMessages({
        appId: q.app ? q.app : null,
        limit,
        maxRecipients: RECENT_RECIPIENTS,
        now: Date.now(),
      });
      return { messages };
    },
  );

  app.post(
    '/v1/admin/push',
    {
      preHandler,
      ...describedOnly,
      schema: tagged('admin', 'Push as any app', {
        body: Type.Composite([Type.Object({ app: Type.String() }), PushBody], { additionalProperties: true }),
        response: { 202: PushResult, ...errorReplies },
      }),
    },
    async (req, reply) => {
      const body = req.body as Record<string, unknown> | undefined;
      const appId = body?.app;
      if (!isValidAppId(appId) || !(await deps.apps.find(appId))) {
        throw new PushError('bad_request', 'app: the id of an existing app');
      }
      const { app: _app, ...push } = body!;
      const result = await ingest.push(appId, parsePushRequest(push, deps.maxDataBytes), 'admin');
      return reply.status(202).send(result);
    },
  );
}

/** Bearer check in constant time (both sides hashed to one length first). */
/** Wrong admin tokens tolerated per client address per minute before it is refused (429). */
export const ADMIN_GUESSES_PER_MINUTE = 10;

export function adminAuth(adminToken: string | null) {
  const expected = adminToken === null ? null : digest(adminToken);
  const guesses = new FailureThrottle(ADMIN_GUESSES_PER_MINUTE, 60_000);
  return beforeBody(async (req: FastifyRequest, reply: FastifyReply) => {
    if (expected === null) {
      throw new PushError(
        'forbidden',
        'the admin API and dashboard are disabled: set PUSH_ADMIN_TOKEN to enable them',
      );
    }
    const ip = peerAddress(req.raw);
    const wait = guesses.blockedFor(ip);
    if (wait > 0) {
      void reply.header('retry-after', String(wait));
      throw new PushError('rate_limited', 'too many wrong admin tokens from this address; retry later');
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m || !timingSafeEqual(digest(m[1]!), expected)) {
      guesses.fail(ip);
      throw new PushError('unauthorized', 'admin token required (Authorization: Bearer <PUSH_ADMIN_TOKEN>)');
    }
  });
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

function appAndUser(req: FastifyRequest): { appId: string; userId: string } {
  const q = req.query as { app?: string; user?: string };
  if (!isValidAppId(q.app)) throw new PushError('bad_request', 'app: invalid');
  if (!isValidUserId(q.user)) throw new PushError('bad_request', 'user: invalid');
  return { appId: q.app, userId: q.user };
}
