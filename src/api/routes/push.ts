import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppRegistry } from '../../auth/app-registry.js';
import { isPushError, PushError, toErrorBody } from '../../domain/errors.js';
import type { PushResult } from '../../domain/message.js';
import type { Ingest } from '../../ingest/ingest.js';
import { MAX_BATCH, parsePushRequest } from '../../ingest/push-request.js';
import { parseSeedPush } from '../../ingest/seed-push.js';
import { beforeBody } from '../http-edges.js';
import {
  BatchBody,
  BatchResult,
  describedOnly,
  errorReplies,
  PushBody,
  PushResult as PushResultSchema,
  SeedPushBody,
  SeedPushResult,
  tagged,
} from '../schemas.js';

export interface PushRouteDeps {
  readonly apps: AppRegistry;
  readonly ingest: Ingest;
  readonly maxDataBytes: number;
  /** Overload and per-app rate checks, run after authentication (src/limits/push-admission.ts). */
  readonly admission?: (req: FastifyRequest, reply: FastifyReply) => Promise<void>;
}

/** `Authorization: Basic base64(app:secret)` → `req.appId`; 401 otherwise. */
export function basicAuth(apps: AppRegistry) {
  return beforeBody(async (req: FastifyRequest) => {
    req.appId = await apps.verifyBasic(req.headers.authorization);
  });
}

/** POST /v1/push and /v1/push/batch: validate, then hand to ingest. */
export function registerPushRoutes(app: FastifyInstance, deps: PushRouteDeps): void {
  const { ingest, maxDataBytes } = deps;
  const preHandler = deps.admission ? [basicAuth(deps.apps), deps.admission] : basicAuth(deps.apps);

  app.post(
    '/v1/push',
    {
      preHandler,
      ...describedOnly,
      schema: tagged('server', 'Push a message (durable when answered)', {
        body: PushBody,
        response: { 202: PushResultSchema, ...errorReplies },
      }),
    },
    async (req, reply) => {
      const result = await ingest.push(req.appId, parsePushRequest(req.body, maxDataBytes));
      return reply.status(202).send(result);
    },
  );

  app.post(
    '/v1/push/batch',
    {
      preHandler,
      ...describedOnly,
      schema: tagged('server', 'Push up to 1000 messages, each succeeding or failing on its own', {
        body: BatchBody,
        response: { 200: BatchResult, ...errorReplies },
      }),
    },
    async (req) => {
      const messages = (req.body as { messages?: unknown } | undefined)?.messages;
      if (!Array.isArray(messages) || messages.length < 1 || messages.length > MAX_BATCH) {
        throw new PushError('bad_request', `messages: an array of 1..${MAX_BATCH} pushes`);
      }
      // Submitted in one turn, so the group commit writes them in one transaction, in order.
      const settled = await Promise.allSettled(
        messages.map((body) => {
          try {
            return ingest.push(req.appId, parsePushRequest(body, maxDataBytes));
          } catch (err) {
            return Promise.reject(err);
          }
        }),
      );
      return { results: settled.map(toBatchResult) };
    },
  );

  // Seed 001's push API; answers 200 with its own envelope, errors in the usual shape.
  app.post(
    '/message-push/v1/push',
    {
      preHandler,
      ...describedOnly,
      schema: tagged('server', 'Seed-compatible push (maps onto /v1/push)', {
        body: SeedPushBody,
        response: { 200: SeedPushResult, ...errorReplies },
      }),
    },
    async (req) => {
      const result = await ingest.push(req.appId, parseSeedPush(req.rawBody ?? '', maxDataBytes));
      return { code: 0, message: 'ok', data: { id: result.id, recipients: result.recipients } };
    },
  );
}

function toBatchResult(r: PromiseSettledResult<PushResult>) {
  if (r.status === 'fulfilled') return r.value;
  if (isPushError(r.reason)) return toErrorBody(r.reason);
  throw r.reason;
}
