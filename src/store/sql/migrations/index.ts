import { type CreateTableBuilder, type Kysely, type Migration, type MigrationProvider, sql } from 'kysely';

export type SqlDialect = 'sqlite' | 'mysql';

/**
 * Numbered schema steps shared by both drivers. Column types differ by engine only where
 * they must: MySQL needs bounded VARCHAR keys, a binary collation (ids are byte-exact and
 * case-sensitive) and MEDIUMTEXT for data up to the configurable limit.
 */
export function migrationProvider(dialect: SqlDialect): MigrationProvider {
  return {
    getMigrations: async () => ({
      '001_initial': initial(dialect),
      '002_nodes': nodes(dialect),
      '003_safety': safety(dialect),
      '004_lifecycle': lifecycle(dialect),
      '005_groups': groups(dialect),
      '006_cluster': cluster(dialect),
    }),
  };
}

/**
 * What every step writes differently per engine. MySQL: InnoDB, 4-byte UTF-8, binary
 * collation (ids compare byte for byte, case-sensitive), bounded VARCHAR keys, BIGINT.
 * SQLite: clustered tables are WITHOUT ROWID (InnoDB always clusters on the key).
 */
function columnsFor(dialect: SqlDialect) {
  const my = dialect === 'mysql';
  return {
    my,
    id: (n: number) => (my ? sql`varchar(${sql.raw(String(n))}) collate utf8mb4_bin` : sql`text`),
    big: my ? ('bigint' as const) : ('integer' as const),
    table: (db: Kysely<unknown>, name: string) => {
      const t = db.schema.createTable(name);
      return my ? t.modifyEnd(sql`engine=InnoDB default charset=utf8mb4 collate=utf8mb4_bin`) : t;
    },
    clustered: (t: CreateTableBuilder<string>) => (my ? t : t.modifyEnd(sql`without rowid`)),
  };
}

function initial(dialect: SqlDialect): Migration {
  const { my, id, big, table: createTable, clustered } = columnsFor(dialect);
  const text = my ? sql`mediumtext` : sql`text`;
  return {
    async up(db: Kysely<unknown>) {
      const table = (name: string) => createTable(db, name);
      await table('apps')
        .addColumn('app_id', id(64), (c) => c.primaryKey())
        .addColumn('secret_hash', id(128), (c) => c.notNull())
        .addColumn('secret_salt', id(64), (c) => c.notNull())
        .addColumn('jwt_alg', id(16), (c) => c.notNull())
        .addColumn('jwt_key', text, (c) => c.notNull())
        .addColumn('created_at', big, (c) => c.notNull())
        .addColumn('updated_at', big, (c) => c.notNull())
        .execute();

      // SQLite: the write path touches one B-tree page per table and index it changes, and each
      // dirty page is a WAL frame at commit (the dominant cost of a push). So the counters and
      // deliveries are clustered on their key (WITHOUT ROWID, as InnoDB always is), indexes only
      // cover the rows their queries look for (partial), and time-ordered keys append.

      await table('messages')
        .addColumn('pk', big, (c) => (my ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('app_id', id(64), (c) => c.notNull())
        .addColumn('msg_id', id(128), (c) => c.notNull())
        .addColumn('type', id(64), (c) => c.notNull())
        .addColumn('timestamp', big, (c) => c.notNull())
        .addColumn('ttl', big)
        .addColumn('expires_at', big)
        .addColumn('data', text, (c) => c.notNull())
        .addColumn('target', text, (c) => c.notNull())
        .addColumn('platforms', text)
        .addColumn('topic', id(128))
        .addColumn('topic_offset', big)
        .addColumn('fingerprint', id(64), (c) => c.notNull())
        .addColumn('recipients', big, (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('messages_app_msg')
        .unique()
        .on('messages')
        .columns(['app_id', 'msg_id'])
        .execute();
      const topicOffset = db.schema
        .createIndex('messages_topic_offset')
        .on('messages')
        .columns(['app_id', 'topic', 'topic_offset']);
      await (my ? topicOffset : topicOffset.where(sql.ref('topic'), 'is not', null)).execute();
      await db.schema.createIndex('messages_timestamp').on('messages').column('timestamp').execute();

      await clustered(table('deliveries'))
        .addColumn('app_id', id(64), (c) => c.notNull())
        .addColumn('user_id', id(128), (c) => c.notNull())
        .addColumn('seq', big, (c) => c.notNull())
        .addColumn('message_pk', big, (c) => c.notNull())
        .addColumn('devices', text)
        .addColumn('status', 'integer', (c) => c.notNull())
        .addColumn('retries', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('sent_at', big)
        .addColumn('acked_at', big)
        .addColumn('next_retry_at', big)
        .addColumn('expires_at', big)
        .addColumn('live_only', 'integer', (c) => c.notNull().defaultTo(0))
        .addPrimaryKeyConstraint('deliveries_pk', ['app_id', 'user_id', 'seq'])
        .execute();
      // Backlog on connect: a user's unacked deliveries in seq order. On SQLite only the rows
      // not acked are indexed, by a column that pending → sent leaves alone, so marking a
      // delivery sent does not rewrite this index (expired rows stay in it until retention).
      await (my
        ? db.schema
            .createIndex('deliveries_backlog')
            .on('deliveries')
            .columns(['app_id', 'user_id', 'status', 'seq'])
        : db.schema
            .createIndex('deliveries_backlog')
            .on('deliveries')
            .columns(['app_id', 'user_id', 'seq'])
            .where(sql.ref('acked_at'), 'is', null)
      ).execute();
      await db.schema.createIndex('deliveries_message').on('deliveries').column('message_pk').execute();
      // Resends due: rows without a resend armed (most of them until sent) stay out on SQLite.
      const retry = db.schema
        .createIndex('deliveries_retry')
        .on('deliveries')
        .columns(['status', 'next_retry_at']);
      await (my ? retry : retry.where(sql.ref('next_retry_at'), 'is not', null)).execute();
      const expiry = db.schema.createIndex('deliveries_expiry').on('deliveries');
      await (my
        ? expiry.columns(['expires_at', 'status'])
        : // Only rows the TTL sweep may still expire: it never walks past ones. Keyed by time, so
          // the status changes it follows rewrite the index's newest pages, not random ones.
          expiry.column('expires_at').where(sql<boolean>`expires_at is not null and status in (0, 1, 3)`)
      ).execute();

      await clustered(table('user_state'))
        .addColumn('app_id', id(64), (c) => c.notNull())
        .addColumn('user_id', id(128), (c) => c.notNull())
        .addColumn('last_seq', big, (c) => c.notNull())
        .addColumn('last_read_seq', big, (c) => c.notNull().defaultTo(0))
        .addPrimaryKeyConstraint('user_state_pk', ['app_id', 'user_id'])
        .execute();

      await clustered(table('topic_state'))
        .addColumn('app_id', id(64), (c) => c.notNull())
        .addColumn('topic', id(128), (c) => c.notNull())
        .addColumn('last_offset', big, (c) => c.notNull())
        .addPrimaryKeyConstraint('topic_state_pk', ['app_id', 'topic'])
        .execute();

      await table('connections')
        .addColumn('connection_id', id(64), (c) => c.primaryKey())
        .addColumn('app_id', id(64), (c) => c.notNull())
        .addColumn('user_id', id(128), (c) => c.notNull())
        .addColumn('device', id(64), (c) => c.notNull())
        .addColumn('platform', id(32), (c) => c.notNull())
        .addColumn('node', id(128), (c) => c.notNull())
        .addColumn('status', id(16), (c) => c.notNull())
        .addColumn('connected_at', big, (c) => c.notNull())
        .addColumn('last_heartbeat', big, (c) => c.notNull())
        .addColumn('disconnected_at', big)
        .execute();
      await db.schema
        .createIndex('connections_user')
        .on('connections')
        .columns(['app_id', 'user_id'])
        .execute();
      await db.schema
        .createIndex('connections_status_heartbeat')
        .on('connections')
        .columns(['status', 'last_heartbeat'])
        .execute();
      await db.schema.createIndex('connections_node').on('connections').columns(['node', 'status']).execute();
    },
  };
}

/**
 * Liveness moves from every connection row to one row per node: a node rewrote each of its
 * connections' `last_heartbeat` once per interval (15k rows: a 55 ms UPDATE holding their row
 * locks on MariaDB, 24–33 ms of CPU in slices on SQLite's event loop). Now it refreshes its own row and a
 * connection is live while its node is. Nodes with online connections get their row here,
 * from the heartbeats they had written, so upgraded nodes judge them like the others.
 */
function nodes(dialect: SqlDialect): Migration {
  const my = dialect === 'mysql';
  return {
    async up(db: Kysely<unknown>) {
      const t = db.schema
        .createTable('nodes')
        .addColumn('node', my ? sql`varchar(128) collate utf8mb4_bin` : sql`text`, (c) => c.primaryKey())
        .addColumn('last_heartbeat', my ? 'bigint' : 'integer', (c) => c.notNull());
      await (my ? t.modifyEnd(sql`engine=InnoDB default charset=utf8mb4 collate=utf8mb4_bin`) : t).execute();
      await sql`insert into nodes (node, last_heartbeat)
                select node, max(last_heartbeat) from connections where status = 'online' group by node`.execute(
        db,
      );
      // Only the stale-row sweep used it; each open and close paid for it.
      const drop = db.schema.dropIndex('connections_status_heartbeat');
      await (my ? drop.on('connections') : drop).execute();
    },
  };
}

/**
 * Server-managed groups and live-room settings. Members are clustered by (app, group, user),
 * so a group's page of members and a push's walk through a group are one range read in user
 * order; the second index answers "groups of a user". `group_state` keeps each group's size,
 * moved by the rows an edit really changed, so an edit never counts a million rows.
 * `group_pushes` holds a group push whose deliveries are still being written in batches:
 * the cursor (last user written) lets another run finish it after a crash.
 */
function groups(dialect: SqlDialect): Migration {
  const { id, big, table: createTable, clustered } = columnsFor(dialect);
  return {
    async up(db: Kysely<unknown>) {
      const table = (name: string) => createTable(db, name);
      await clustered(table('group_members'))
        .addColumn('app_id', id(64), (c) => c.notNull())
        .addColumn('group_id', id(128), (c) => c.notNull())
        .addColumn('user_id', id(128), (c) => c.notNull())
        .addPrimaryKeyConstraint('group_members_pk', ['app_id', 'group_id', 'user_id'])
        .execute();
      await db.schema
        .createIndex('group_members_user')
        .on('group_members')
        .columns(['app_id', 'user_id', 'group_id'])
        .execute();
      await clustered(table('group_state'))
        .addColumn('app_id', id(64), (c) => c.notNull())
        .addColumn('group_id', id(128), (c) => c.notNull())
        .addColumn('members', big, (c) => c.notNull())
        .addPrimaryKeyConstraint('group_state_pk', ['app_id', 'group_id'])
        .execute();
      await table('group_pushes')
        .addColumn('message_pk', big, (c) => c.primaryKey())
        .addColumn('app_id', id(64), (c) => c.notNull())
        .addColumn('group_ids', sql`text`, (c) => c.notNull())
        .addColumn('node', id(128), (c) => c.notNull())
        .addColumn('after_user', id(128))
        .addColumn('written', big, (c) => c.notNull())
        .execute();
      await clustered(table('topic_settings'))
        .addColumn('app_id', id(64), (c) => c.notNull())
        .addColumn('topic', id(128), (c) => c.notNull())
        .addColumn('merge_ms', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('topic_settings_pk', ['app_id', 'topic'])
        .execute();
    },
  };
}

/**
 * Message lifecycle: recall (a message's `revoked_at`; per recipient the `revoked` status
 * code, which needs no column), the per-app offline hand-off webhook, and its durable
 * schedule. The schedule is a table rather than timers so a hand-off survives restarts and
 * kill -9, and so exactly one node of a cluster sends it: nodes claim rows with a lease.
 */
function lifecycle(dialect: SqlDialect): Migration {
  const { my, id, big, table: createTable } = columnsFor(dialect);
  return {
    async up(db: Kysely<unknown>) {
      const table = (name: string) => createTable(db, name);
      await db.schema.alterTable('messages').addColumn('revoked_at', big).execute();

      await table('webhooks')
        .addColumn('app_id', id(64), (c) => c.primaryKey())
        .addColumn('url', my ? sql`varchar(2048)` : sql`text`, (c) => c.notNull())
        .addColumn('after_ms', big, (c) => c.notNull())
        .addColumn('secret', id(128), (c) => c.notNull())
        .addColumn('created_at', big, (c) => c.notNull())
        .addColumn('updated_at', big, (c) => c.notNull())
        .execute();

      // One row per (recipient, message) due for hand-off; written in the push's own
      // transaction, so an accepted message never lacks its hand-off.
      await table('webhook_handoffs')
        .addColumn('app_id', id(64), (c) => c.notNull())
        .addColumn('user_id', id(128), (c) => c.notNull())
        .addColumn('seq', big, (c) => c.notNull())
        .addColumn('message_pk', big, (c) => c.notNull())
        .addColumn('status', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('due_at', big, (c) => c.notNull())
        .addColumn('give_up_at', big, (c) => c.notNull())
        .addColumn('claimed_by', id(255)) // node id (≤ 128) + a claim suffix
        .addColumn('claim_until', big)
        .addPrimaryKeyConstraint('webhook_handoffs_pk', ['app_id', 'user_id', 'seq'])
        .execute();
      await db.schema
        .createIndex('webhook_handoffs_due')
        .on('webhook_handoffs')
        .columns(['status', 'due_at'])
        .execute();
      await db.schema
        .createIndex('webhook_handoffs_message')
        .on('webhook_handoffs')
        .column('message_pk')
        .execute();
    },
  };
}

/**
 * What other nodes need to know of a node's connections beyond who is online: topic
 * subscriptions (cluster-wide topic recipients and presence; `$all-muted` rows for
 * connections that unsubscribed from `$all`) and each node's dashboard figures. The app's
 * online connections are counted for `$all` by (app, status), without a walk over its
 * offline rows kept for retention.
 */
function cluster(dialect: SqlDialect): Migration {
  const { id, big, table: createTable } = columnsFor(dialect);
  return {
    async up(db: Kysely<unknown>) {
      const table = (name: string) => createTable(db, name);
      await table('subscriptions')
        .addColumn('connection_id', id(64), (c) => c.notNull())
        .addColumn('topic', id(128), (c) => c.notNull())
        .addColumn('app_id', id(64), (c) => c.notNull())
        .addColumn('user_id', id(128), (c) => c.notNull())
        .addColumn('node', id(128), (c) => c.notNull())
        .addPrimaryKeyConstraint('subscriptions_pk', ['connection_id', 'topic'])
        .execute();
      await db.schema
        .createIndex('subscriptions_topic')
        .on('subscriptions')
        .columns(['app_id', 'topic', 'node'])
        .execute();
      await db.schema.createIndex('subscriptions_node').on('subscriptions').column('node').execute();
      await db.schema
        .createIndex('connections_app_online')
        .on('connections')
        .columns(['app_id', 'status', 'node'])
        .execute();
      await table('node_stats')
        .addColumn('node', id(128), (c) => c.primaryKey())
        .addColumn('at', big, (c) => c.notNull())
        .addColumn('stats', sql`text`, (c) => c.notNull())
        .execute();
    },
  };
}

/** Token revocation: one row per revoked user, the instant before which its tokens are refused. */
function safety(dialect: SqlDialect): Migration {
  const { id, big, table: createTable } = columnsFor(dialect);
  return {
    async up(db: Kysely<unknown>) {
      await createTable(db, 'revocations')
        .addColumn('app_id', id(64), (c) => c.notNull())
        .addColumn('user_id', id(128), (c) => c.notNull())
        .addColumn('before_ms', big, (c) => c.notNull())
        .addPrimaryKeyConstraint('revocations_pk', ['app_id', 'user_id'])
        .execute();
    },
  };
}
