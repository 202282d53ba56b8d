import type { DeliveryStatus, PushRequest, Recipient, StoredMessage } from '../domain/message.js';
import type { GroupStore } from './group-store.js';

/**
 * The store seam: everything message-push keeps. Drivers: `SqliteStore` (embedded default,
 * one process) and the MySQL/MariaDB driver (several processes or nodes).
 *
 * Consumers depend on the role they use (`MessageStore`, `DeliveryStore`, `PresenceStore`,
 * `AppStore`, `LifecycleStore`, `GroupStore`); the composition root hands each the one `Store`.
 *
 * Guarantees every driver keeps (checked by test/contract/store.test.ts):
 * - `persistPushes` is atomic per call: all its messages and deliveries are durable when it
 *   resolves, or none are. Per-user seqs are strictly increasing with no gaps or duplicates,
 *   in the order of the items.
 * - Idempotency: one stored message per (app, id); a repeated id returns the first result.
 * - Statuses only move forward (pending → sent → acked; → failed; → expired).
 */
export interface Store extends AppStore, MessageStore, DeliveryStore, PresenceStore, LifecycleStore {
  readonly dialect: 'sqlite' | 'mysql';
  /** Server-managed groups, group pushes in batches, live-room settings. */
  readonly groups: GroupStore;

  /** Throws when the backend is unreachable; used by /readyz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Registered apps and the token revocations of their users. */
export interface AppStore {
  getApp(appId: string): Promise<AppRecord | undefined>;
  listApps(): Promise<AppRecord[]>;
  saveApp(app: AppRecord): Promise<void>;
  /**
   * Records that tokens of a user issued before `beforeMs` are refused. Never moves an
   * instant backwards: a later revocation with an earlier `before` keeps the later one.
   */
  revokeTokens(appId: string, userId: string, beforeMs: number): Promise<void>;
  /** Every revocation, for a node's cache at start: (app, user) → before (ms). */
  listRevocations(): Promise<{ appId: string; userId: string; beforeMs: number }[]>;
}

/** Messages: writing pushes, reading backlogs and histories, retention and recall. */
export interface MessageStore {
  /** Writes many pushes in one transaction (group commit). Results are in item order. */
  persistPushes(items: readonly PersistItem[]): Promise<PersistOutcome[]>;

  /**
   * A user's stored messages in seq order, starting after `afterSeq`. `unackedOnly` gives the
   * connect-time backlog (pending/sent/failed); otherwise every kept message. Expired and
   * live-only (ttl 0) deliveries are never returned.
   */
  readUserMessages(query: BacklogQuery): Promise<UserMessage[]>;

  /**
   * A page of a user's history in seq order (oldest first), forward after `afterSeq` or
   * backward (newest page) before `beforeSeq`. `hasMore`: more rows lie beyond the page in
   * the direction of travel.
   */
  readUserHistory(query: HistoryQuery): Promise<{ rows: HistoryRow[]; hasMore: boolean }>;

  /** A page of a topic's stream by offset, same rules as the user history. Expired messages are left out. */
  readTopicHistory(query: TopicHistoryQuery): Promise<{ rows: StoredMessage[]; hasMore: boolean }>;

  /** Newest offset of a topic, 0 if none. */
  topicOffset(appId: string, topic: string): Promise<number>;

  /** Topic retention: keeps at most `maxCount` messages per topic and none older than `cutoff`. */
  pruneTopics(maxCount: number, cutoff: number): Promise<number>;

  /** Newest seq the user has, 0 if none. */
  lastSeq(appId: string, userId: string): Promise<number>;

  getMessageStatus(appId: string, messageId: string, now: number): Promise<MessageStatus | undefined>;

  /**
   * The newest messages, newest first (insertion order), of one app or of every app when
   * `appId` is null; at most `limit` (0 = none). Each carries its status counts over all its
   * recipients and the first `maxRecipients` recipients by user id, with statuses as
   * `getMessageStatus` shows them. For operators (the dashboard), not a hot path.
   */
  listRecentMessages(query: RecentMessagesQuery): Promise<RecentMessage[]>;

  /** Marks deliveries whose ttl passed as expired, at most `limit` rows. Returns how many. */
  expireDue(now: number, limit: number): Promise<number>;
  /** Deletes messages older than `cutoff` (and their deliveries), at most `limit`. */
  pruneBefore(cutoff: number, limit: number): Promise<number>;

  /**
   * Recalls a message: recipients that have not acked become `revoked` (final), which takes it
   * out of their backlog, resends, history and unread counts; a topic message leaves the topic
   * history. Idempotent: only the first call reports `first` and a non-zero `revoked`.
   * Undefined for an unknown id.
   */
  revokeMessage(appId: string, messageId: string, now: number): Promise<RevokeResult | undefined>;
}

/** Deliveries: status moves (sent, acks, reads), unread counts, and the resends' state. */
export interface DeliveryStore {
  /**
   * Status updates from delivery, acks and reads, applied in one transaction. Resolves with,
   * per update, how many deliveries it moved (acks) or the new read cursor (reads).
   */
  applyDeliveryUpdates(updates: readonly DeliveryUpdate[]): Promise<number[]>;

  /** Unread counter: messages after the read cursor that are not expired. */
  readUnread(appId: string, userId: string, now: number): Promise<{ count: number; last_read_seq: number }>;

  /**
   * Deliveries written to a socket, not acked, whose resend time has come (not expired,
   * not live-only), oldest due first. The retry scheduler's whole state lives here.
   */
  dueRetries(now: number, limit: number, scope?: RetryScope): Promise<DueRetry[]>;
  /** Applies the scheduler's decisions; each only moves a delivery that is still `sent`. */
  updateRetries(updates: readonly RetryUpdate[]): Promise<void>;
}

/** Presence and nodes: the connections table, node liveness, and what nodes share in cluster mode. */
export interface PresenceStore {
  /** Connection bookkeeping (the seed's connections table). */
  recordConnections(changes: readonly ConnectionChange[]): Promise<void>;
  /** Records that a node is alive now (its row in the nodes table): one statement per interval. */
  touchNode(node: string, now: number): Promise<void>;
  /** Marks a node's connections offline and forgets the node (startup after a crash, shutdown). */
  markNodeOffline(node: string, now: number): Promise<number>;
  /**
   * Marks the online connections of nodes whose heartbeat is older than `before` offline
   * (the node died) and forgets those nodes. A node never sweeps itself: it knows it is alive.
   */
  markStaleOffline(before: number, now: number, exceptNode: string): Promise<number>;
  /**
   * Online connections of these users held by nodes other than `exceptNode` whose heartbeat
   * is `freshSince` or later: the rest of the cluster's share of presence. `last_heartbeat`
   * is the node's: a node drops its own silent clients within two intervals.
   */
  remoteConnections(
    appId: string,
    userIds: readonly string[],
    exceptNode: string,
    freshSince: number,
  ): Promise<ConnectionRecord[]>;

  /** Cluster mode: topic subscriptions as nodes report them (group-committed, like connections). */
  recordSubscriptions(changes: readonly SubscriptionChange[]): Promise<void>;
  /** Cluster mode: a topic's (or `$all`'s) connections on other live nodes, and their users if asked. */
  remoteTopicAudience(query: TopicAudienceQuery): Promise<{ connections: number; users: string[] }>;
  /** Cluster mode: a node's dashboard figures (JSON), one row per node, rewritten each interval. */
  recordNodeStats(node: string, at: number, stats: string): Promise<void>;
  /** Cluster mode: the other nodes' figures written since `freshSince`. */
  readNodeStats(exceptNode: string, freshSince: number): Promise<NodeStatsRow[]>;
}

/** The offline hand-off webhook and its hand-off rows (see sql/lifecycle-sql.ts). */
export interface LifecycleStore {
  /** The app's offline hand-off webhook. Pushes stored while one is set get a hand-off row per recipient. */
  getWebhook(appId: string): Promise<WebhookRecord | undefined>;
  listWebhooks(): Promise<WebhookRecord[]>;
  saveWebhook(webhook: WebhookRecord): Promise<void>;
  /** Removes it and the hand-offs not yet made; false when there was none. */
  deleteWebhook(appId: string): Promise<boolean>;
  /** Claims due hand-offs for one sender (see sql/lifecycle-sql.ts): one entry per user, at most `limit` users. */
  claimHandoffs(query: HandoffQuery): Promise<ClaimedHandoffs[]>;
  /** Records what happened to claimed rows; rows whose claim `token` no longer holds are left alone. */
  finishHandoffs(token: string, updates: readonly HandoffUpdate[]): Promise<void>;
  /** Hand-off rows by state, of one app or all. */
  handoffCounts(appId: string | null): Promise<HandoffCounts>;
}

export interface AppRecord {
  readonly appId: string;
  readonly secretHash: string;
  readonly secretSalt: string;
  readonly jwtAlg: string;
  readonly jwtKey: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface PersistItem {
  readonly appId: string;
  readonly request: PushRequest;
  /** Canonical hash of the body, compared when an id repeats; empty for generated ids (never repeated). */
  readonly fingerprint: string;
  /** Generated id when the request carries none. */
  readonly messageId: string;
  readonly timestamp: number;
  /** For ttl 0: which of the targeted users have a live connection now; others are expired at once. */
  readonly onlineUsers: ReadonlySet<string> | null;
  /** For topic and `$all` pushes: how many connections it was handed to (the reply's `recipients`). */
  readonly connectionCount: number;
}

export type PersistOutcome =
  | { readonly kind: 'stored'; readonly message: StoredMessage; readonly recipients: readonly Recipient[] }
  | { readonly kind: 'duplicate'; readonly id: string; readonly recipients: number }
  | { readonly kind: 'conflict'; readonly id: string };

export interface BacklogQuery {
  readonly appId: string;
  readonly userId: string;
  readonly afterSeq: number;
  readonly unackedOnly: boolean;
  readonly limit: number;
  readonly now: number;
}

export interface HistoryQuery {
  readonly appId: string;
  readonly userId: string;
  readonly afterSeq: number | null;
  readonly beforeSeq: number | null;
  readonly from: number | null;
  readonly to: number | null;
  readonly limit: number;
  /** Forward pages go oldest → newest from `afterSeq`; otherwise the newest page before `beforeSeq`. */
  readonly forward: boolean;
  /** Server API shows expired messages with their status; client-facing reads never do. */
  readonly includeExpired: boolean;
  readonly now: number;
}

export interface HistoryRow {
  readonly seq: number;
  readonly status: DeliveryStatus;
  readonly message: StoredMessage;
}

export interface TopicHistoryQuery {
  readonly appId: string;
  readonly topic: string;
  /** Retention as clients see it: only the newest `keepCount` offsets, none older than `keepSince` (ms). */
  readonly keepCount: number;
  readonly keepSince: number;
  readonly afterOffset: number | null;
  readonly beforeOffset: number | null;
  readonly limit: number;
  readonly forward: boolean;
  readonly now: number;
}

export interface UserMessage {
  readonly seq: number;
  readonly devices: readonly string[] | null;
  readonly message: StoredMessage;
}

export type DeliveryUpdate =
  | {
      readonly kind: 'sent';
      readonly appId: string;
      readonly userId: string;
      readonly seqs: readonly number[];
      readonly at: number;
      /** First resend time, set on deliveries that have none armed (first send, or after a reconnect). */
      readonly retryAt: number;
    }
  | {
      readonly kind: 'ack_upto';
      readonly appId: string;
      readonly userId: string;
      /** The acking device; null = the user as a whole (HTTP acks without a device): any device's messages. */
      readonly device: string | null;
      readonly seq: number;
      readonly at: number;
    }
  | {
      readonly kind: 'ack_ids';
      readonly appId: string;
      readonly userId: string;
      readonly device: string | null;
      readonly ids: readonly string[];
      readonly at: number;
    }
  | { readonly kind: 'read'; readonly appId: string; readonly userId: string; readonly seq: number };

export interface DueRetry extends UserMessage {
  readonly userId: string;
  readonly retries: number;
  /** With a RetryScope: the user is online on another live node, which makes (or disarms) this resend. */
  readonly onlineElsewhere?: boolean;
}

export type RetryUpdate = RetryDecision & {
  /**
   * Applies only while the resend is still due at this time: when two nodes hold sessions of
   * one user and both resend, the retry is counted once.
   */
  readonly dueBy?: number;
};

type RetryDecision =
  /** Resent on a live connection: count it and arm the next resend. */
  | {
      readonly kind: 'resent';
      readonly appId: string;
      readonly userId: string;
      readonly seq: number;
      readonly nextRetryAt: number;
    }
  /** Resends ran out. */
  | { readonly kind: 'failed'; readonly appId: string; readonly userId: string; readonly seq: number }
  /** No live connection: wait for the next one, whose backlog resends it and re-arms the timer. */
  | { readonly kind: 'disarm'; readonly appId: string; readonly userId: string; readonly seq: number };

export interface MessageStatus {
  readonly id: string;
  readonly type: string;
  readonly timestamp: number;
  readonly ttl: number | null;
  readonly data: unknown;
  readonly to: unknown;
  readonly platforms: readonly string[] | null;
  readonly topic?: string;
  readonly offset?: number;
  /** When it was recalled (DELETE /v1/messages/{id}); absent while it stands. */
  readonly revoked_at?: number;
  readonly recipients: readonly RecipientStatus[];
}

export interface RecentMessagesQuery {
  readonly appId: string | null;
  readonly limit: number;
  readonly maxRecipients: number;
  readonly now: number;
}

export interface RecentMessage extends MessageStatus {
  readonly app: string;
  /** Users targeted (deliveries stored), whatever `maxRecipients` cut from `recipients`. */
  readonly recipients_total: number;
  /** Deliveries by stored status (the ttl sweeper moves expired ones within a second). */
  readonly status_counts: Readonly<Record<DeliveryStatus, number>>;
}

export interface RecipientStatus {
  readonly user: string;
  readonly seq: number;
  readonly status: DeliveryStatus;
  readonly retries: number;
  readonly sent_at: number | null;
  readonly acked_at: number | null;
  /** The offline hand-off's state, once one is due for this recipient (the app has a webhook). */
  readonly webhook?: HandoffState;
}

export type HandoffState = 'pending' | 'delivered' | 'failed';

export interface RevokeResult {
  readonly id: string;
  /** Recipients moved to `revoked` by this call. */
  readonly revoked: number;
  /** This call recalled it (a repeated call changes nothing and notifies nobody). */
  readonly first: boolean;
  readonly topic: string | null;
  readonly offset: number | null;
  /** Every recipient of a user message (acked ones too: their screens drop it), for the `revoke` frame. */
  readonly recipients: readonly { readonly user: string; readonly seq: number }[];
}

export interface WebhookRecord {
  readonly appId: string;
  readonly url: string;
  readonly afterMs: number;
  readonly secret: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface HandoffQuery {
  readonly node: string;
  readonly now: number;
  /** How long the claim holds; past it another node may take the rows (this one died). */
  readonly leaseMs: number;
  readonly limit: number;
}

export interface ClaimedHandoffs {
  readonly appId: string;
  readonly userId: string;
  readonly token: string;
  readonly rows: readonly ClaimedHandoff[];
}

export interface ClaimedHandoff {
  readonly seq: number;
  readonly attempts: number;
  readonly giveUpAt: number;
  /** The delivery's STATUS_CODE now: acked or revoked ones are left out of the hand-off. */
  readonly deliveryStatus: number;
  readonly expiresAt: number | null;
  readonly id: string;
  readonly type: string;
  readonly timestamp: number;
  readonly dataJson: string;
}

export type HandoffUpdate = {
  readonly appId: string;
  readonly userId: string;
  readonly seq: number;
} & (
  | { readonly kind: 'delivered' | 'failed' | 'drop' }
  /** Not delivered this time: try again at `dueAt`. */
  | { readonly kind: 'retry'; readonly dueAt: number }
);

export type HandoffCounts = Record<HandoffState, number>;

/** One row of the connections table as presence reports it. */
export interface ConnectionRecord {
  readonly user_id: string;
  readonly connection_id: string;
  readonly device: string;
  readonly platform: string;
  readonly node: string;
  readonly connected_at: number;
  readonly last_heartbeat: number;
}

export type ConnectionChange =
  | {
      readonly kind: 'open';
      readonly connectionId: string;
      readonly appId: string;
      readonly userId: string;
      readonly device: string;
      readonly platform: string;
      readonly node: string;
      readonly at: number;
    }
  | { readonly kind: 'close'; readonly connectionId: string; readonly at: number };

/**
 * Cluster mode: which due resends a node looks at. Only deliveries of users with an online
 * connection on `node`, or online on no live node at all (someone has to disarm those);
 * `heldHere` / `onlineElsewhere` say which, so a node never disarms a resend that a node
 * holding the user's session should make.
 */
export interface RetryScope {
  readonly node: string;
  /** Nodes whose heartbeat is older are dead: their connections do not count. */
  readonly freshSince: number;
}

export type SubscriptionChange =
  | {
      readonly kind: 'subscribe';
      readonly connectionId: string;
      readonly appId: string;
      readonly userId: string;
      readonly topic: string;
      readonly node: string;
    }
  | { readonly kind: 'unsubscribe'; readonly connectionId: string; readonly topic: string }
  /** The connection closed: all of its rows go. */
  | { readonly kind: 'close'; readonly connectionId: string };

export interface TopicAudienceQuery {
  readonly appId: string;
  readonly topic: string;
  readonly exceptNode: string;
  readonly freshSince: number;
  /** Also list the distinct users (topic presence); a count alone is one index range. */
  readonly users: boolean;
}

export interface NodeStatsRow {
  readonly node: string;
  readonly at: number;
  readonly stats: string;
}
