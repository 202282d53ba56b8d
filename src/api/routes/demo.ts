import { randomBytes } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { AppRegistry } from '../../auth/app-registry.js';
import { signClientToken } from '../../auth/tokens.js';
import { PushError } from '../../domain/errors.js';
import { isValidUserId } from '../../domain/ids.js';
import type { Ingest } from '../../ingest/ingest.js';
import { parsePushRequest } from '../../ingest/push-request.js';
import { describedOnly, errorReplies, PushResult, tagged } from '../schemas.js';

export const DEMO_APP = 'demo';
/** Demo tokens are short-lived: the page asks for a new one when the SDK calls getToken. */
export const DEMO_TOKEN_TTL_SECONDS = 600;
/** Topics a demo token may subscribe to. */
export const DEMO_TOPICS = ['demo:*'] as const;

export interface DemoRouteDeps {
  /** Demo mode (`--demo`, PUSH_DEMO) or PUSH_DEMO_TOKENS; off by default. */
  readonly enabled: boolean;
  readonly apps: AppRegistry;
  readonly ingest: Ingest;
  readonly maxDataBytes: number;
}

/**
 * What the /demo page needs without holding app credentials, for the app `demo` only:
 *
 *   POST /v1/demo/token {"user"?}                 → {"app","user","token","exp"} (10 min, platform web, topics demo:*)
 *   POST /v1/demo/push  {"to","data"?,"type"?}    → 202 like /v1/push, into the app demo
 *
 * Anyone who can reach the server may use them, so they are off unless demo mode is on
 * (`npm start`, `start --demo`, PUSH_DEMO=true) or PUSH_DEMO_TOKENS is set.
 */
export function registerDemoRoutes(app: FastifyInstance, deps: DemoRouteDeps): void {
  const guard = async () => {
    if (!deps.enabled) {
      throw new PushError(
        'not_found',
        'demo mode is off (start --demo, PUSH_DEMO=true or PUSH_DEMO_TOKENS=true); mint a token with: message-push token --app <app> --user <you>',
      );
    }
  };

  app.post(
    '/v1/demo/token',
    {
      preHandler: guard,
      ...describedOnly,
      schema: tagged('demo', 'Mint a token for the demo app (quickstart only)', {
        body: Type.Object({ user: Type.Optional(Type.String()) }),
        response: {
          200: Type.Object(
            { app: Type.String(), user: Type.String(), token: Type.String(), exp: Type.Integer() },
            { additionalProperties: true },
          ),
          ...errorReplies,
        },
      }),
    },
    async (req) => {
      const asked = (req.body as { user?: unknown } | undefined)?.user;
      if (asked !== undefined && asked !== '' && !isValidUserId(asked)) {
        throw new PushError('bad_request', 'user: 1..128 characters, no control characters');
      }
      const user =
        typeof asked === 'string' && asked !== '' ? asked : `guest-${randomBytes(3).toString('hex')}`;
      const record = await deps.apps.find(DEMO_APP);
      if (!record) throw new PushError('not_found', `there is no app "${DEMO_APP}"`);
      if (!record.jwtAlg.startsWith('HS')) {
        throw new PushError(
          'forbidden',
          `app "${DEMO_APP}" verifies ${record.jwtAlg} tokens; the server cannot sign them`,
        );
      }
      const token = await signClientToken({
        secret: record.jwtKey,
        alg: record.jwtAlg,
        userId: user,
        ttlSeconds: DEMO_TOKEN_TTL_SECONDS,
        platform: 'web',
        topics: DEMO_TOPICS,
      });
      return { app: DEMO_APP, user, token, exp: Math.floor(Date.now() / 1000) + DEMO_TOKEN_TTL_SECONDS };
    },
  );

  app.post(
    '/v1/demo/push',
    {
      preHandler: guard,
      ...describedOnly,
      schema: tagged('demo', 'Push as the demo app (quickstart only)', {
        body: Type.Object({
          to: Type.Unknown(),
          data: Type.Optional(Type.Unknown()),
          type: Type.Optional(Type.String()),
        }),
        response: { 202: PushResult, ...errorReplies },
      }),
    },
    async (req, reply) => {
      const body = (req.body ?? {}) as { to?: unknown; data?: unknown; type?: unknown };
      if (!(await deps.apps.find(DEMO_APP)))
        throw new PushError('not_found', `there is no app "${DEMO_APP}"`);
      const to = body.to as Record<string, unknown> | undefined;
      if (to && typeof to === 'object' && 'devices' in to)
        throw new PushError('bad_request', 'to: users, topic or all');
      const request = parsePushRequest(
        {
          to: body.to,
          ...(body.data !== undefined ? { data: body.data } : {}),
          ...(body.type ? { type: body.type } : {}),
        },
        deps.maxDataBytes,
      );
      return reply.status(202).send(await deps.ingest.push(DEMO_APP, request, 'demo'));
    },
  );
}

/** Loopback names and addresses: a server bound only to these cannot be reached from elsewhere. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Demo mode mints tokens for anyone who asks; on a reachable interface that is an open door.
 * Said at warn level, on one line that stands out in any log viewer.
 */
export function warnIfDemoExposed(
  options: { demo: boolean; host: string },
  log: { warn(obj: object, msg: string): void },
): boolean {
  if (!options.demo || isLoopbackHost(options.host)) return false;
  log.warn(
    { host: options.host, demo: true },
    '!!! DEMO MODE ON A PUBLIC INTERFACE: anyone who reaches this server can mint tokens and push for the app "demo" via /demo. Do not run --demo / PUSH_DEMO in production; set PUSH_HOST=127.0.0.1 to keep it local. !!!',
  );
  return true;
}
