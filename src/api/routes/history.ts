import type { FastifyInstance } from 'fastify';
import type { AppRegistry } from '../../auth/app-registry.js';
import type { ClusterAudience } from '../../cluster/audience.js';
import type { StatusWriter } from '../../delivery/status-writer.js';
import { PushError } from '../../domain/errors.js';
import { isValidTopic } from '../../domain/ids.js';
import { ALL_TOPIC, type StoredMessage } from '../../domain/message.js';
import type { TopicRetention } from '../../gateway/replay.js';
import type { HistoryRow, MessageStore } from '../../store/store.js';
import { userParam } from '../http-server.js';
import {
  describedOnly,
  errorReplies,
  HistoryPage,
  HistoryQuery,
  TopicPage,
  TopicParams,
  TopicPresence,
  tagged,
  UserParams,
} from '../schemas.js';
import { basicAuth } from './push.js';

export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 1000;

type Query = Record<string, string | undefined>;

function intParam(q: Query, name: string): number | null {
  const v = q[name];
  if (v === undefined || v === '') return null;
  if (!/^\d{1,16}$/.test(v)) throw new PushError('bad_request', `${name}: a non-negative integer`);
  return Number(v);
}

/**
 * History paging rules (docs/reference/server-api.md "Users"): no bound → the newest `limit`; `after_*` pages forward,
 * `before_*` backward; oldest first either way. `from`/`to` (ms) filter by timestamp.
 */
export function parseHistoryQuery(raw: unknown, unit: 'seq' | 'offset') {
  const q = (raw ?? {}) as Query;
  const limit = intParam(q, 'limit') ?? DEFAULT_PAGE;
  if (limit < 1 || limit > MAX_PAGE) throw new PushError('bad_request', `limit: 1..${MAX_PAGE}`);
  const after = intParam(q, `after_${unit}`);
  const before = intParam(q, `before_${unit}`);
  return {
    after,
    before,
    afterSeq: after,
    beforeSeq: before,
    from: intParam(q, 'from'),
    to: intParam(q, 'to'),
    limit,
    forward: after !== null,
  };
}

function messageView(m: StoredMessage) {
  return {
    id: m.id,
    type: m.type,
    timestamp: m.timestamp,
    ttl: m.ttl,
    data: JSON.parse(m.dataJson) as unknown,
  };
}

export function historyPage(page: { rows: HistoryRow[]; hasMore: boolean }) {
  return {
    messages: page.rows.map((r) => ({ seq: r.seq, ...messageView(r.message), status: r.status })),
    has_more: page.hasMore,
  };
}

/** User history, topic history and topic presence on the server API. */
export function registerHistoryRoutes(
  app: FastifyInstance,
  deps: {
    apps: AppRegistry;
    store: MessageStore;
    /** Topic presence for the whole cluster. */
    audience: Pick<ClusterAudience, 'topicPresence'>;
    status: StatusWriter;
    topicRetention: TopicRetention;
  },
): void {
  const { store, audience, status } = deps;
  const preHandler = basicAuth(deps.apps);

  app.get(
    '/v1/users/:user/messages',
    {
      preHandler,
      ...describedOnly,
      schema: tagged('server', "A page of a user's history, oldest first", {
        params: UserParams,
        querystring: HistoryQuery('seq'),
        response: { 200: HistoryPage, ...errorReplies },
      }),
    },
    async (req) => {
      const user = userParam(req);
      const q = parseHistoryQuery(req.query, 'seq');
      await status.flush();
      const page = await store.readUserHistory({
        appId: req.appId,
        userId: user,
        ...q,
        includeExpired: true,
        now: Date.now(),
      });
      return historyPage(page);
    },
  );

  app.get(
    '/v1/topics/:topic/messages',
    {
      preHandler,
      ...describedOnly,
      schema: tagged('server', "A page of a topic's history, oldest first", {
        params: TopicParams,
        querystring: HistoryQuery('offset'),
        response: { 200: TopicPage, ...errorReplies },
      }),
    },
    async (req) => {
      const topic = topicParam(req.params);
      const q = parseHistoryQuery(req.query, 'offset');
      const now = Date.now();
      const page = await store.readTopicHistory({
        appId: req.appId,
        topic,
        keepCount: deps.topicRetention.count,
        keepSince: now - deps.topicRetention.ms,
        afterOffset: q.after,
        beforeOffset: q.before,
        limit: q.limit,
        forward: q.forward,
        now,
      });
      return {
        messages: page.rows.map((m) => ({ topic, offset: m.offset, ...messageView(m) })),
        has_more: page.hasMore,
      };
    },
  );

  app.get(
    '/v1/topics/:topic/presence',
    {
      preHandler,
      ...describedOnly,
      schema: tagged('server', "A topic's subscribers on this node", {
        params: TopicParams,
        response: { 200: TopicPresence, ...errorReplies },
      }),
    },
    async (req) => {
      const topic = topicParam(req.params);
      return { topic, ...(await audience.topicPresence(req.appId, topic)) };
    },
  );
}

function topicParam(params: unknown): string {
  const topic = (params as { topic?: string }).topic;
  if (topic !== ALL_TOPIC && !isValidTopic(topic))
    throw new PushError('bad_request', 'topic: 1..128 of [A-Za-z0-9._:-]');
  return topic!;
}
