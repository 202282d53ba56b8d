import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { AppRegistry } from '../../auth/app-registry.js';
import { PushError } from '../../domain/errors.js';
import { isValidUserId } from '../../domain/ids.js';
import type { GroupStore } from '../../store/group-store.js';
import { userParam } from '../http-server.js';
import { errorReplies, tagged } from '../schemas.js';
import { basicAuth } from './push.js';

export interface GroupRouteDeps {
  readonly apps: AppRegistry;
  readonly groups: GroupStore;
}

/** Ids one membership edit may name, `add` and `remove` together. */
export const MAX_EDIT_IDS = 10_000;
export const MAX_MEMBERS_PAGE = 1_000;
const DEFAULT_MEMBERS_PAGE = 100;

export const GROUP_ID_PATTERN = '^[A-Za-z0-9._:-]{1,128}$';
export const ErrorBody = Type.Object({
  error: Type.Object({ code: Type.String(), message: Type.String() }),
});
/** The error statuses every server-API route may answer with; any other 4xx/5xx has the same body. */
export const ERROR_RESPONSES = { 400: ErrorBody, 401: ErrorBody, 413: ErrorBody, ...errorReplies } as const;

const GroupParams = Type.Object({ group: Type.String({ pattern: GROUP_ID_PATTERN }) });
const UserParams = Type.Object({ user: Type.String({ minLength: 1 }) });
const UserIds = Type.Array(Type.String(), { maxItems: MAX_EDIT_IDS });
const EditBody = Type.Object(
  { add: Type.Optional(UserIds), remove: Type.Optional(UserIds) },
  { additionalProperties: false },
);
const EditReply = Type.Object({ group: Type.String(), count: Type.Integer({ minimum: 0 }) });
const MembersQuery = Type.Object(
  {
    after: Type.Optional(Type.String({ minLength: 1 })),
    // Query values arrive as strings (no type coercion on this server).
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,7}$' })),
  },
  { additionalProperties: false },
);
const MembersReply = Type.Object({
  members: Type.Array(Type.String()),
  next: Type.Union([Type.String(), Type.Null()]),
});
const GroupsReply = Type.Object({ groups: Type.Array(Type.String()) });

/**
 * Server-managed groups (server API, Basic auth):
 *
 *   PUT    /v1/groups/{group}/members {"add":[…],"remove":[…]}  → {"group","count"}
 *   GET    /v1/groups/{group}/members?after=&limit=             → {"members","next"}
 *   GET    /v1/users/{user}/groups                               → {"groups"}
 *   DELETE /v1/groups/{group}                                    → 204
 *
 * An unknown group is an empty one: no 404 anywhere here.
 */
export function registerGroupRoutes(app: FastifyInstance, deps: GroupRouteDeps): void {
  const { groups } = deps;
  const preHandler = basicAuth(deps.apps);

  app.put(
    '/v1/groups/:group/members',
    {
      preHandler,
      schema: tagged('server', 'Add and remove members of a group', {
        params: GroupParams,
        body: EditBody,
        response: { 200: EditReply, ...ERROR_RESPONSES },
      }),
    },
    async (req) => {
      const { group } = req.params as { group: string };
      const { add = [], remove = [] } = (req.body ?? {}) as { add?: string[]; remove?: string[] };
      if (add.length + remove.length > MAX_EDIT_IDS) {
        throw new PushError('bad_request', `add and remove: at most ${MAX_EDIT_IDS} ids together`);
      }
      checkUsers('add', add);
      checkUsers('remove', remove);
      const removing = new Set(remove);
      const both = add.find((u) => removing.has(u));
      if (both !== undefined) throw new PushError('bad_request', 'a user id is in both add and remove');
      return { group, count: await groups.editMembers(req.appId, group, add, remove) };
    },
  );

  app.get(
    '/v1/groups/:group/members',
    {
      preHandler,
      schema: tagged('server', "A page of a group's members, sorted by user id", {
        params: GroupParams,
        querystring: MembersQuery,
        response: { 200: MembersReply, ...ERROR_RESPONSES },
      }),
    },
    async (req) => {
      const { group } = req.params as { group: string };
      const q = req.query as { after?: string; limit?: string };
      const limit = q.limit === undefined ? DEFAULT_MEMBERS_PAGE : Number(q.limit);
      if (limit < 1 || limit > MAX_MEMBERS_PAGE) {
        throw new PushError('bad_request', `limit: 1..${MAX_MEMBERS_PAGE}`);
      }
      if (q.after !== undefined && !isValidUserId(q.after)) {
        throw new PushError('bad_request', 'after: not a valid user id');
      }
      // One row past the page says whether there is a next one.
      const rows = await groups.listMembers(req.appId, group, q.after ?? null, limit + 1);
      const members = rows.slice(0, limit);
      return { members, next: rows.length > limit ? members[members.length - 1]! : null };
    },
  );

  app.get(
    '/v1/users/:user/groups',
    {
      preHandler,
      schema: tagged('server', 'The groups a user is a member of', {
        params: UserParams,
        response: { 200: GroupsReply, ...ERROR_RESPONSES },
      }),
    },
    async (req) => ({ groups: await groups.groupsOf(req.appId, userParam(req)) }),
  );

  app.delete(
    '/v1/groups/:group',
    {
      preHandler,
      schema: tagged('server', 'Delete a group and its member list', {
        params: GroupParams,
        response: { 204: Type.Null(), ...ERROR_RESPONSES },
      }),
    },
    async (req, reply) => {
      const { group } = req.params as { group: string };
      await groups.deleteGroup(req.appId, group);
      return reply.status(204).send();
    },
  );
}

function checkUsers(field: string, users: readonly string[]): void {
  const bad = users.findIndex((u) => !isValidUserId(u));
  if (bad >= 0) throw new PushError('bad_request', `${field}[${bad}]: not a valid user id`);
}
