import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { AppRegistry } from '../../auth/app-registry.js';
import type { Revocations } from '../../auth/revocations.js';
import type { Bus } from '../../bus/bus.js';
import type { Presence } from '../../cluster/presence.js';
import type { Hub } from '../../gateway/hub.js';
import { userParam } from '../http-server.js';
import { errorReplies, tagged } from '../schemas.js';
import { basicAuth } from './push.js';

export interface RevokeRouteDeps {
  readonly apps: AppRegistry;
  readonly revocations: Revocations;
  readonly bus: Bus;
  readonly hub: Pick<Hub, 'sessionsOf'>;
  readonly presence: Pick<Presence, 'countElsewhere'>;
}

const ErrorBody = Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String() }) });

/**
 * POST /v1/users/{user}/revoke {"before"?: ms} → 200 {"closed": n}: every connection of the user,
 * on every node, is closed with 4003, and tokens of the user issued before `before` (default:
 * now) are refused from then on — also by nodes that start later (the instant is stored).
 */
export function registerRevokeRoutes(app: FastifyInstance, deps: RevokeRouteDeps): void {
  app.post(
    '/v1/users/:user/revoke',
    {
      preHandler: basicAuth(deps.apps),
      // No body at all means "as of now", like `{}`.
      preValidation: async (req) => {
        req.body ??= {};
      },
      schema: tagged('server', "Close a user's connections and refuse their older tokens", {
        params: Type.Object({ user: Type.String() }),
        body: Type.Object(
          { before: Type.Optional(Type.Integer({ minimum: 0 })) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ closed: Type.Integer({ minimum: 0 }) }),
          400: ErrorBody,
          401: ErrorBody,
          ...errorReplies,
        },
      }),
    },
    async (req) => {
      const user = userParam(req);
      const before = (req.body as { before?: number } | undefined)?.before ?? Date.now();
      const elsewhere = await deps.presence.countElsewhere(req.appId, user);
      const here = deps.hub.sessionsOf(req.appId, user).length;
      // The bus delivers to this node at once: its sessions of the user close with 4003 there.
      await deps.revocations.revoke(req.appId, user, before, deps.bus);
      return { closed: here + elsewhere };
    },
  );
}
