import type {} from '@fastify/swagger'; // its FastifySchema fields: tags, summary, security, hide
import { type TSchema, Type } from '@sinclair/typebox';
import type { FastifySchema, FastifySchemaCompiler } from 'fastify';

/**
 * Route schemas of the HTTP APIs: the source of /openapi.json and of the reply serializers.
 *
 * Replies: every object allows more properties than listed ("replies may carry more fields"),
 * so the serializer never drops a field a handler adds. Requests: the schemas describe what a
 * route accepts, but the handlers keep enforcing it (`describedOnly`), because the exact rules
 * (code points, compact-JSON byte sizes, big integers kept as text, per-item batch errors)
 * are not JSON Schema's to express and their error messages are part of the API.
 */

const open = <T extends Record<string, TSchema>>(properties: T, description?: string) =>
  Type.Object(properties, { additionalProperties: true, ...(description ? { description } : {}) });

export const ErrorBody = open(
  { error: open({ code: Type.String(), message: Type.String() }) },
  'The error body of every HTTP error: see docs/reference/errors.md',
);

/** Error replies any route may give. */
export const errorReplies = {
  '4xx': ErrorBody,
  '5xx': ErrorBody,
} as const;

/** A route whose request schemas document, and whose handler validates. */
export const describedOnly: { validatorCompiler: FastifySchemaCompiler<unknown> } = {
  validatorCompiler: () => () => true,
};

const Id = Type.String({ minLength: 1, maxLength: 128, description: 'user or message id' });
const Ms = Type.Number({ description: 'milliseconds since the epoch' });
const NullableInt = Type.Union([Type.Integer(), Type.Null()]);
const NullableMs = Type.Union([Ms, Type.Null()]);
const Json = Type.Unknown({ description: 'any JSON value' });
const DeliveryStatus = Type.String({
  description: 'pending | sent | acked | failed | expired | revoked',
});
const IntText = Type.String({ pattern: '^\\d{1,16}$', description: 'non-negative integer' });

export const Target = Type.Union(
  [
    open({ users: Type.Array(Id, { minItems: 1, maxItems: 10_000 }) }),
    open({
      devices: Type.Array(open({ user: Id, device: Type.String() }), { minItems: 1, maxItems: 10_000 }),
    }),
    open({ topic: Type.String() }),
    open({ all: Type.Literal(true) }),
  ],
  { description: 'exactly one form' },
);

export const PushBody = open({
  id: Type.Optional(Id),
  type: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._:-]{1,64}$' })),
  to: Target,
  platforms: Type.Optional(Type.Array(Type.String())),
  data: Type.Optional(Json),
  ttl: Type.Optional(Type.Integer({ minimum: 0, maximum: 2_419_200, description: 'seconds' })),
});

export const PushResult = open({ id: Type.String(), recipients: Type.Integer(), duplicate: Type.Boolean() });

export const BatchBody = open({ messages: Type.Array(PushBody, { minItems: 1, maxItems: 1000 }) });
export const BatchResult = open({ results: Type.Array(Type.Union([PushResult, ErrorBody])) });

export const SeedPushBody = open({
  push_method: Type.Literal(1),
  platform: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])),
  audience: open({ uids: Type.Array(Type.Union([Type.Integer(), Type.String()])) }),
  message: open({
    title: Type.Optional(Type.String()),
    content: Type.Optional(Type.String()),
    content_type: Type.Optional(Json),
    extras: Type.Optional(Json),
  }),
});
export const SeedPushResult = open({
  code: Type.Integer(),
  message: Type.String(),
  data: open({ id: Type.String(), recipients: Type.Integer() }),
});

export const RecipientStatus = open({
  user: Type.String(),
  seq: Type.Integer(),
  status: DeliveryStatus,
  retries: Type.Integer(),
  sent_at: NullableMs,
  acked_at: NullableMs,
});

export const MessageStatus = open({
  id: Type.String(),
  type: Type.String(),
  timestamp: Ms,
  ttl: NullableInt,
  data: Json,
  to: Json,
  platforms: Type.Union([Type.Array(Type.String()), Type.Null()]),
  topic: Type.Optional(Type.String()),
  offset: Type.Optional(Type.Integer()),
  recipients: Type.Array(RecipientStatus),
});

export const HistoryItem = open({
  seq: Type.Integer(),
  id: Type.String(),
  type: Type.String(),
  timestamp: Ms,
  ttl: NullableInt,
  data: Json,
  status: DeliveryStatus,
});
export const HistoryPage = open({ messages: Type.Array(HistoryItem), has_more: Type.Boolean() });

export const TopicItem = open({
  topic: Type.String(),
  offset: Type.Integer(),
  id: Type.String(),
  type: Type.String(),
  timestamp: Ms,
  ttl: NullableInt,
  data: Json,
});
export const TopicPage = open({ messages: Type.Array(TopicItem), has_more: Type.Boolean() });

export const HistoryQuery = (unit: 'seq' | 'offset') =>
  Type.Object({
    [`after_${unit}`]: Type.Optional(IntText),
    [`before_${unit}`]: Type.Optional(IntText),
    ...(unit === 'seq' ? { from: Type.Optional(IntText), to: Type.Optional(IntText) } : {}),
    limit: Type.Optional(Type.String({ pattern: '^\\d{1,16}$', description: '1..1000, default 50' })),
  });

export const Unread = open({ count: Type.Integer(), last_read_seq: Type.Integer() });
export const ReadBody = open({ seq: Type.Integer({ minimum: 0 }) });

export const Connection = open({
  connection_id: Type.String(),
  device: Type.String(),
  platform: Type.String(),
  node: Type.String(),
  connected_at: Ms,
  last_heartbeat: Ms,
});
export const UserPresence = open({
  user: Type.String(),
  online: Type.Boolean(),
  connections: Type.Array(Connection),
});
export const BulkPresence = open({
  users: Type.Record(Type.String(), open({ online: Type.Boolean(), connections: Type.Array(Connection) })),
});
export const TopicPresence = open({
  topic: Type.String(),
  users: Type.Array(Type.String()),
  connections: Type.Integer(),
});
export const Closed = open({ closed: Type.Integer() });

export const UserParams = Type.Object({ user: Id });
export const TopicParams = Type.Object({
  topic: Type.String({ description: '1..128 of [A-Za-z0-9._:-], or $all' }),
});

/** Client HTTP API credentials, as for the socket (query or headers). */
export const ClientQuery = Type.Object({
  app: Type.Optional(Type.String({ description: 'app id (or the auth-app-id header)' })),
  token: Type.Optional(Type.String({ description: 'JWT (or Authorization: Bearer)' })),
  device: Type.Optional(Type.String()),
  since: Type.Optional(IntText),
});

export const AckBody = open({
  seq: Type.Optional(Type.Integer({ minimum: 0 })),
  ids: Type.Optional(Type.Array(Id, { minItems: 1, maxItems: 1000 })),
  device: Type.Optional(Type.String()),
});
export const Acked = open({ acked: Type.Integer() });

export const PollReply = open({ messages: Type.Array(open({ op: Type.Literal('message') })) });

/** Tags group the routes in /docs; `security` names the scheme a route needs. */
export function tagged(
  tag: 'server' | 'client' | 'operations' | 'admin' | 'demo',
  summary: string,
  schema: FastifySchema,
): FastifySchema {
  const security =
    tag === 'server'
      ? [{ basic: [] }]
      : tag === 'client'
        ? [{ bearer: [] }]
        : tag === 'admin'
          ? [{ adminBearer: [] }]
          : [];
  return { tags: [tag], summary, security, ...schema };
}

export const AnyObject = Type.Object({}, { additionalProperties: true });

export const RecentMessage = Type.Composite(
  [
    MessageStatus,
    Type.Object({
      app: Type.String(),
      recipients_total: Type.Integer(),
      status_counts: Type.Record(Type.String(), Type.Integer()),
    }),
  ],
  { additionalProperties: true },
);

/** Pages, assets and generated routes: not API, left out of /openapi.json. */
export const hidden: { schema: FastifySchema } = { schema: { hide: true } };
