import type { Kysely } from 'kysely';
import { ALL_TOPIC } from '../../domain/message.js';
import type { NodeStatsRow, SubscriptionChange, TopicAudienceQuery } from '../store.js';
import type { Database } from './schema.js';

/** The row that marks a connection as unsubscribed from `$all` (no topic can contain `$`). */
export const ALL_MUTED = '$all-muted';

/**
 * The cluster's shared bookkeeping beyond the connections table, in SQL both drivers run:
 * subscriptions (topic recipients and presence across nodes) and per-node dashboard figures.
 * Every read counts only rows of nodes whose heartbeat is fresh, as presence does.
 */

/** Applies subscription changes; the last change per (connection, topic) wins. */
export async function recordSubscriptions(
  db: Kysely<Database>,
  dialect: 'sqlite' | 'mysql',
  changes: readonly SubscriptionChange[],
): Promise<void> {
  const last = new Map<string, SubscriptionChange>();
  const closed: string[] = [];
  for (const c of changes) {
    if (c.kind === 'close') closed.push(c.connectionId);
    else last.set(`${c.connectionId}\0${c.topic}`, c);
  }
  const adds = [...last.values()].filter((c) => c.kind === 'subscribe');
  const removes = [...last.values()].filter((c) => c.kind === 'unsubscribe');
  await db.transaction().execute(async (trx) => {
    for (let i = 0; i < adds.length; i += 200) {
      const rows = adds.slice(i, i + 200).map((c) => ({
        connection_id: c.connectionId,
        topic: c.topic,
        app_id: c.appId,
        user_id: c.userId,
        node: c.node,
      }));
      const insert = trx.insertInto('subscriptions').values(rows);
      await (dialect === 'mysql'
        ? insert.ignore()
        : insert.onConflict((oc) => oc.columns(['connection_id', 'topic']).doNothing())
      ).execute();
    }
    for (let i = 0; i < removes.length; i += 200) {
      const chunk = removes.slice(i, i + 200);
      await trx
        .deleteFrom('subscriptions')
        .where((eb) =>
          eb.or(
            chunk.map((c) => eb.and([eb('connection_id', '=', c.connectionId), eb('topic', '=', c.topic)])),
          ),
        )
        .execute();
    }
    for (let i = 0; i < closed.length; i += 500) {
      await trx
        .deleteFrom('subscriptions')
        .where('connection_id', 'in', closed.slice(i, i + 500))
        .execute();
    }
  });
}

/**
 * Connections of a topic (or, for `$all`, of the app, less those that unsubscribed from it)
 * on live nodes other than `exceptNode`, and optionally their distinct users.
 */
export async function remoteTopicAudience(
  db: Kysely<Database>,
  q: TopicAudienceQuery,
): Promise<{ connections: number; users: string[] }> {
  const base =
    q.topic === ALL_TOPIC
      ? db
          .selectFrom('connections as c')
          .innerJoin('nodes as n', 'n.node', 'c.node')
          .leftJoin('subscriptions as s', (j) =>
            j.onRef('s.connection_id', '=', 'c.connection_id').on('s.topic', '=', ALL_MUTED),
          )
          .where('c.app_id', '=', q.appId)
          .where('c.status', '=', 'online')
          .where('c.node', '<>', q.exceptNode)
          .where('n.last_heartbeat', '>=', q.freshSince)
          .where('s.connection_id', 'is', null)
      : db
          .selectFrom('subscriptions as s')
          .innerJoin('connections as c', 'c.connection_id', 's.connection_id')
          .innerJoin('nodes as n', 'n.node', 's.node')
          .where('s.app_id', '=', q.appId)
          .where('s.topic', '=', q.topic)
          .where('s.node', '<>', q.exceptNode)
          .where('c.status', '=', 'online')
          .where('n.last_heartbeat', '>=', q.freshSince);
  const row = await base.select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirst();
  const connections = Number(row?.n ?? 0);
  if (!q.users || connections === 0) return { connections, users: [] };
  const users = await base.select('c.user_id').distinct().execute();
  return { connections, users: users.map((u) => u.user_id) };
}

export async function recordNodeStats(
  db: Kysely<Database>,
  dialect: 'sqlite' | 'mysql',
  node: string,
  at: number,
  stats: string,
): Promise<void> {
  const row = db.insertInto('node_stats').values({ node, at, stats });
  await (dialect === 'mysql'
    ? row.onDuplicateKeyUpdate({ at, stats })
    : row.onConflict((c) => c.column('node').doUpdateSet({ at, stats }))
  ).execute();
}

export async function readNodeStats(
  db: Kysely<Database>,
  exceptNode: string,
  freshSince: number,
): Promise<NodeStatsRow[]> {
  const rows = await db
    .selectFrom('node_stats')
    .select(['node', 'at', 'stats'])
    .where('node', '<>', exceptNode)
    .where('at', '>=', freshSince)
    .execute();
  return rows.map((r) => ({ node: r.node, at: Number(r.at), stats: r.stats }));
}

/** Forgets the subscriptions of nodes that stopped or died (their connections went offline). */
export async function forgetNodeSubscriptions(db: Kysely<Database>, nodes: readonly string[]): Promise<void> {
  if (nodes.length > 0)
    await db
      .deleteFrom('subscriptions')
      .where('node', 'in', [...nodes])
      .execute();
}
