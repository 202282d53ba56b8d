import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { PushError } from '../../domain/errors.js';
import { isValidAppId } from '../../domain/ids.js';
import type { GroupStore } from '../../store/group-store.js';
import { errorReplies, tagged } from '../schemas.js';
import { adminAuth } from './admin.js';
import { ErrorBody } from './groups.js';

export interface AdminGroupRouteDeps {
  readonly adminToken: string | null;
  readonly groups: GroupStore;
}

const MAX_LISTED = 200;
const DEFAULT_LISTED = 50;

const AppQuery = Type.Object(
  {
    app: Type.Optional(Type.String()),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
  },
  { additionalProperties: false },
);
const ADMIN_ERRORS = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, ...errorReplies } as const;
const GroupsReply = Type.Object({
  groups: Type.Array(Type.Object({ app: Type.String(), group: Type.String(), members: Type.Integer() })),
});
const RoomsReply = Type.Object({
  rooms: Type.Array(Type.Object({ app: Type.String(), topic: Type.String(), merge_ms: Type.Integer() })),
});

/**
 * The dashboard's view of groups and live rooms (admin token, like the rest of /v1/admin):
 *
 *   GET /v1/admin/groups?[app=]&[limit=]   largest groups first, with their sizes
 *   GET /v1/admin/rooms?[app=]             topics with merge_ms set
 */
export function registerAdminGroupRoutes(app: FastifyInstance, deps: AdminGroupRouteDeps): void {
  const preHandler = adminAuth(deps.adminToken);

  app.get(
    '/v1/admin/groups',
    {
      preHandler,
      schema: tagged('admin', 'Largest groups first, with their sizes', {
        querystring: AppQuery,
        response: { 200: GroupsReply, ...ADMIN_ERRORS },
      }),
    },
    async (req) => {
      const q = req.query as { app?: string; limit?: string };
      const limit = q.limit === undefined ? DEFAULT_LISTED : Number(q.limit);
      if (limit > MAX_LISTED) throw new PushError('bad_request', `limit: 0..${MAX_LISTED}`);
      return { groups: await deps.groups.listGroups(appFilter(q.app), limit) };
    },
  );

  app.get(
    '/v1/admin/rooms',
    {
      preHandler,
      schema: tagged('admin', 'Live rooms with a merge window set', {
        querystring: AppQuery,
        response: { 200: RoomsReply, ...ADMIN_ERRORS },
      }),
    },
    async (req) => {
      const appId = appFilter((req.query as { app?: string }).app);
      const rooms = (await deps.groups.listTopicSettings())
        .filter((r) => appId === null || r.appId === appId)
        .map((r) => ({ app: r.appId, topic: r.topic, merge_ms: r.mergeMs }));
      return { rooms };
    },
  );
}

function appFilter(app: string | undefined): string | null {
  if (app === undefined || app === '') return null;
  if (!isValidAppId(app)) throw new PushError('bad_request', 'app: invalid');
  return app;
}
