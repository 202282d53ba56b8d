import type { Generated } from 'kysely';

/** Table shapes as Kysely sees them. Times are epoch milliseconds; statuses are STATUS_CODE numbers. */
export interface Database {
  apps: AppsTable;
  messages: MessagesTable;
  deliveries: DeliveriesTable;
  user_state: UserStateTable;
  topic_state: TopicStateTable;
  connections: ConnectionsTable;
  nodes: NodesTable;
  group_members: GroupMembersTable;
  group_state: GroupStateTable;
  group_pushes: GroupPushesTable;
  topic_settings: TopicSettingsTable;
  webhooks: WebhooksTable;
  webhook_handoffs: WebhookHandoffsTable;
  subscriptions: SubscriptionsTable;
  node_stats: NodeStatsTable;
  revocations: RevocationsTable;
}

export interface AppsTable {
  app_id: string;
  /** Salted SHA-256 of the API secret; generated secrets carry 256 random bits, so a fast hash is enough. */
  secret_hash: string;
  secret_salt: string;
  jwt_alg: string;
  /** HS256: the shared key (by default the app secret, which the server must hold to verify HMACs); RS/ES: a PEM public key. */
  jwt_key: string;
  created_at: number;
  updated_at: number;
}

export interface MessagesTable {
  pk: Generated<number>;
  app_id: string;
  msg_id: string;
  type: string;
  timestamp: number;
  ttl: number | null;
  expires_at: number | null;
  data: string;
  /** The `to` of the push, as JSON. */
  target: string;
  platforms: string | null;
  topic: string | null;
  topic_offset: number | null;
  fingerprint: string;
  recipients: number;
  /** When the message was recalled (DELETE /v1/messages/{id}); null while it stands. */
  revoked_at: Generated<number | null>;
}

export interface DeliveriesTable {
  app_id: string;
  user_id: string;
  seq: number;
  message_pk: number;
  /** JSON array of device ids for device-targeted pushes; null = every device. */
  devices: string | null;
  status: number;
  retries: number;
  sent_at: number | null;
  acked_at: number | null;
  next_retry_at: number | null;
  /** Copied from the message so sweeps and backlogs need no join to filter. */
  expires_at: number | null;
  /** 1 for ttl 0: delivered to connections online at accept time, never replayed. */
  live_only: number;
}

export interface UserStateTable {
  app_id: string;
  user_id: string;
  last_seq: number;
  last_read_seq: number;
}

export interface TopicStateTable {
  app_id: string;
  topic: string;
  last_offset: number;
}

export interface ConnectionsTable {
  connection_id: string;
  app_id: string;
  user_id: string;
  device: string;
  platform: string;
  node: string;
  /** 'online' | 'offline' (the seed's connections table). */
  status: string;
  connected_at: number;
  /** Written when the row is opened; liveness is the node's (`nodes.last_heartbeat`). */
  last_heartbeat: number;
  disconnected_at: number | null;
}

/** One row per running node, refreshed every heartbeat interval: its connections live while it does. */
export interface NodesTable {
  node: string;
  last_heartbeat: number;
}

/** One member of a server-managed group. */
export interface GroupMembersTable {
  app_id: string;
  group_id: string;
  user_id: string;
}

/** A group's size; no row = no members. */
export interface GroupStateTable {
  app_id: string;
  group_id: string;
  members: number;
}

/** A group push whose deliveries are still being written, batch by batch, in user id order. */
export interface GroupPushesTable {
  message_pk: number;
  app_id: string;
  /** JSON array of the group ids. */
  group_ids: string;
  /** The node writing it; another node adopts it once this one's heartbeat is stale. */
  node: string;
  /** Last user whose delivery is written; null = none yet. */
  after_user: string | null;
  /** Deliveries written so far (distinct members). */
  written: number;
}

/** Live-room settings of a topic; no row = defaults (no merging). */
export interface TopicSettingsTable {
  app_id: string;
  topic: string;
  merge_ms: number;
}

/** An app's offline hand-off webhook (one per app). */
export interface WebhooksTable {
  app_id: string;
  url: string;
  after_ms: number;
  /** HMAC-SHA256 signing key, shown to the app; 256 random bits, base64url. */
  secret: string;
  created_at: number;
  updated_at: number;
}

/** The durable hand-off schedule: one row per recipient of a user message while the app has a webhook. */
export interface WebhookHandoffsTable {
  app_id: string;
  user_id: string;
  seq: number;
  message_pk: number;
  /** 0 pending, 1 delivered, 2 failed (see HANDOFF_STATUS). */
  status: Generated<number>;
  attempts: Generated<number>;
  /** When the next attempt may be made. */
  due_at: number;
  /** The message's ttl (or retention): attempts stop there and the row is `failed`. */
  give_up_at: number;
  /** The node holding the row while it sends, until `claim_until` (a lease: a dead node's claims lapse). */
  claimed_by: string | null;
  claim_until: number | null;
}

/** A connection's topic subscription, for topic recipients and presence on other nodes. */
export interface SubscriptionsTable {
  connection_id: string;
  /** A topic, or `$all-muted` for a connection that unsubscribed from `$all`. */
  topic: string;
  app_id: string;
  user_id: string;
  node: string;
}

/** A node's dashboard figures (JSON), rewritten once per stats interval. */
export interface NodeStatsTable {
  node: string;
  at: number;
  stats: string;
}

/** Per user: tokens issued (`iat`) before `before_ms` are refused (POST /v1/users/{user}/revoke). */
export interface RevocationsTable {
  app_id: string;
  user_id: string;
  before_ms: number;
}
