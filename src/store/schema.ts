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

/** Per user: tokens issued (`iat`) before `before_ms` are refused (POST /v1/users/{user}/revoke). */
export interface RevocationsTable {
  app_id: string;
  user_id: string;
  before_ms: number;
}
