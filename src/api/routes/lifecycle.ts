import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { AppRegistry } from '../../auth/app-registry.js';
import { PushError } from '../../domain/errors.js';
import { isValidAppId, isValidMessageId } from '../../domain/ids.js';
import type { Recall } from '../../lifecycle/recall.js';
import { MAX_WEBHOOK_URL } from '../../lifecycle/webhook-url.js';
import { MAX_AFTER_MS, type Webhooks } from '../../lifecycle/webhooks.js';
import type { LifecycleStore } from '../../store/store.js';
import { errorReplies, tagged } from '../schemas.js';
import { adminAuth } from './admin.js';
import { basicAuth } from './push.js';

export interface LifecycleRouteDeps {
  readonly apps: AppRegistry;
  readonly recall: Recall;
  readonly webhooks: Webhooks;
  readonly store: LifecycleStore;
  /** PUSH_ADMIN_TOKEN, for the dashboard's webhook panel (null: admin API off). */
  readonly adminToken: string | null;
}

const ErrorBody = Type.Object({
  error: Type.Object({ code: Type.String(), message: Type.String() }),
});
const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, ...errorReplies };

const WebhookView = Type.Object({
  url: Type.String(),
  after_ms: Type.Integer(),
  secret: Type.String({ description: 'HMAC-SHA256 key of X-Push-Signature' }),
});

/**
 * Server API of the message lifecycle:
 *   DELETE /v1/messages/{id}   recall → {"id","revoked"}
 *   PUT|GET|DELETE /v1/webhook the app's offline hand-off webhook
 *   GET /v1/admin/webhook?app= the dashboard's view: URL, delay, hand-offs by state (no secret)
 */
export function registerLifecycleRoutes(app: FastifyInstance, deps: LifecycleRouteDeps): void {
  const preHandler = basicAuth(deps.apps);

  app.delete(
    '/v1/messages/:id',
    {
      preHandler,
      schema: tagged('server', 'Recall a message from recipients that have not acked it', {
        params: Type.Object({ id: Type.String({ minLength: 1 }) }),
        response: {
          200: Type.Object({
            id: Type.String(),
            revoked: Type.Integer({ description: 'recipients moved to revoked by this call' }),
          }),
          ...errors,
        },
      }),
    },
    async (req) => {
      const { id } = req.params as { id: string };
      if (!isValidMessageId(id)) throw new PushError('bad_request', 'id: not a valid message id');
      const result = await deps.recall.revoke(req.appId, id);
      if (!result) throw new PushError('not_found', 'no message with this id');
      return result;
    },
  );

  app.put(
    '/v1/webhook',
    {
      preHandler,
      schema: tagged('server', "Set the app's offline hand-off webhook", {
        body: Type.Object(
          {
            url: Type.String({ minLength: 1, maxLength: MAX_WEBHOOK_URL }),
            after_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_AFTER_MS })),
            rotate_secret: Type.Optional(Type.Boolean()),
          },
          { additionalProperties: false },
        ),
        response: { 200: WebhookView, ...errors },
      }),
    },
    async (req) => {
      const body = req.body as { url: string; after_ms?: number; rotate_secret?: boolean };
      return deps.webhooks.set(req.appId, {
        url: body.url,
        ...(body.after_ms !== undefined ? { afterMs: body.after_ms } : {}),
        ...(body.rotate_secret ? { rotateSecret: true } : {}),
      });
    },
  );

  app.get(
    '/v1/webhook',
    {
      preHandler,
      schema: tagged('server', "The app's offline hand-off webhook", {
        response: { 200: WebhookView, ...errors },
      }),
    },
    async (req) => {
      const found = await deps.webhooks.get(req.appId);
      if (!found) throw new PushError('not_found', 'this app has no webhook');
      return found;
    },
  );

  app.delete(
    '/v1/webhook',
    {
      preHandler,
      schema: tagged('server', "Remove the app's webhook", { response: { 204: Type.Null(), ...errors } }),
    },
    async (req, reply) => {
      await deps.webhooks.delete(req.appId); // idempotent: 204 whether or not one was set
      return reply.status(204).send();
    },
  );

  app.get(
    '/v1/admin/webhook',
    {
      preHandler: adminAuth(deps.adminToken),
      schema: tagged('admin', "An app's webhook and its hand-offs by state", {
        querystring: Type.Object({ app: Type.String() }),
        response: {
          200: Type.Object({
            app: Type.String(),
            webhook: Type.Union([Type.Object({ url: Type.String(), after_ms: Type.Integer() }), Type.Null()]),
            handoffs: Type.Object({
              pending: Type.Integer(),
              delivered: Type.Integer(),
              failed: Type.Integer(),
            }),
          }),
          400: ErrorBody,
          401: ErrorBody,
          403: ErrorBody,
          ...errorReplies,
        },
      }),
    },
    async (req) => {
      const { app: appId } = req.query as { app: string };
      if (!isValidAppId(appId)) throw new PushError('bad_request', 'app: invalid');
      const hook = await deps.webhooks.get(appId);
      return {
        app: appId,
        webhook: hook ? { url: hook.url, after_ms: hook.after_ms } : null,
        handoffs: await deps.store.handoffCounts(appId),
      };
    },
  );
}
