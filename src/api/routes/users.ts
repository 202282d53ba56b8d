import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { AppRegistry } from '../../auth/app-registry.js';
import type { Presence } from '../../cluster/presence.js';
import type { StatusWriter } from '../../delivery/status-writer.js';
import { PushError } from '../../domain/errors.js';
import { isValidDeviceId, isValidMessageId, isValidUserId } from '../../domain/ids.js';
import type { DeliveryStore, MessageStore } from '../../store/store.js';
import { userParam } from '../http-server.js';
import {
  BulkPresence,
  Closed,
  describedOnly,
  errorReplies,
  MessageStatus,
  ReadBody,
  tagged,
  Unread,
  UserParams,
  UserPresence,
} from '../schemas.js';
import { basicAuth } from './push.js';

export interface UserRouteDeps {
  readonly apps: AppRegistry;
  readonly store: MessageStore & DeliveryStore;
  readonly presence: Presence;
  readonly status: StatusWriter;
}

const MAX_BULK_PRESENCE = 1000;

/** Message status, presence, kick and read counters: the server API around users. */
export function registerUserRoutes(app: FastifyInstance, deps: UserRouteDeps): void {
  const { store, presence, status } = deps;
  const preHandler = basicAuth(deps.apps);

  app.get(
    '/v1/messages/:id',
    {
      preHandler,
      ...describedOnly,
      schema: tagged('server', 'A message and the delivery status of each recipient', {
        params: Type.Object({ id: Type.String() }),
        response: { 200: MessageStatus, ...errorReplies },
      }),
    },
    async (req) => {
      const { id } = req.params as { id: string };
      if (!isValidMessageId(id)) throw new PushError('bad_request', 'id: not a valid message id');
      await status.flush(); // every ack received so far is visible
      const found = await store.getMessageStatus(req.appId, id, Date.now());
      if (!found) throw new PushError('not_found', 'no message with this id');
      return found;
    },
  );

  app.get(
    '/v1/users/:user/presence',
    {
      preHandler,
      ...describedOnly,
      schema: tagged('server', "A user's connections on every node", {
        params: UserParams,
        response: { 200: UserPresence, ...errorReplies },
      }),
    },
    async (req) => {
      const user = userParam(req);
      const connections = (await presence.of(req.appId, [user])).get(user) ?? [];
      return { user, online: connections.length > 0, connections };
    },
  );

  app.get(
    '/v1/presence',
    {
      preHandler,
      ...describedOnly,
      schema: tagged('server', 'Presence of up to 1000 users', {
        querystring: Type.Object({ users: Type.String({ description: 'comma-separated user ids' }) }),
        response: { 200: BulkPresence, ...errorReplies },
      }),
    },
    async (req) => {
      const raw = (req.query as { users?: string | string[] }).users;
      const users = [
        ...new Set((Array.isArray(raw) ? raw : [raw ?? '']).flatMap((v) => v.split(','))),
      ].filter(Boolean);
      if (users.length === 0 || users.length > MAX_BULK_PRESENCE) {
        throw new PushError('bad_request', `users: 1..${MAX_BULK_PRESENCE} comma-separated user ids`);
      }
      if (!users.every(isValidUserId)) throw new PushError('bad_request', 'users: not valid user ids');
      const result: Record<string, { online: boolean; connections: unknown[] }> = Object.create(null);
      for (const [u, connections] of await presence.of(req.appId, users)) {
        result[u] = { online: connections.length > 0, connections };
      }
      return { users: result };
    },
  );

  app.delete(
    '/v1/users/:user/connections',
    {
      preHandler,
      ...describedOnly,
      schema: tagged('server', "Kick a user's connections (close 4003)", {
        params: UserParams,
        querystring: Type.Object({ device: Type.Optional(Type.String()) }),
        response: { 200: Closed, ...errorReplies },
      }),
    },
    async (req) => {
      const user = userParam(req);
      const device = (req.query as { device?: string }).device;
      if (device !== undefined && !isValidDeviceId(device))
        throw new PushError('bad_request', 'device: invalid');
      return { closed: await presence.kick(req.appId, user, device) };
    },
  );

  app.get(
    '/v1/users/:user/unread',
    {
      preHandler,
      ...describedOnly,
      schema: tagged('server', 'Unread counter', {
        params: UserParams,
        response: { 200: Unread, ...errorReplies },
      }),
    },
    async (req) => {
      const user = userParam(req);
      await status.flush();
      return store.readUnread(req.appId, user, Date.now());
    },
  );

  app.post(
    '/v1/users/:user/read',
    {
      preHandler,
      ...describedOnly,
      schema: tagged('server', 'Move the read marker', {
        params: UserParams,
        body: ReadBody,
        response: { 200: Unread, ...errorReplies },
      }),
    },
    async (req) => {
      const user = userParam(req);
      const seq = (req.body as { seq?: unknown } | undefined)?.seq;
      if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
        throw new PushError('bad_request', 'seq: a non-negative integer');
      }
      await status.read(req.appId, user, seq);
      return store.readUnread(req.appId, user, Date.now());
    },
  );
}
