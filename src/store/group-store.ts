import type { Recipient, StoredMessage } from '../domain/message.js';
import type { PersistItem } from './store.js';

/**
 * The groups and live-rooms part of the store: member lists, group pushes written in
 * batches, and per-topic room settings. Every SQL driver provides it (`Store.groups`).
 *
 * Guarantees:
 * - Member edits are atomic per call and idempotent (adding a member twice or removing a
 *   non-member changes nothing); a group's size moves by the rows an edit really changed.
 * - A group push's deliveries are written in batches, each atomic with the job's cursor, in
 *   user id order: a member gets exactly one delivery (one seq) however often the writing
 *   is interrupted and resumed.
 */
export interface GroupStore {
  /**
   * How many batches written ahead of the walk (the online members) may run at once: 1 for
   * a store that runs one transaction at a time anyway, more where the database writes
   * several transactions in parallel.
   */
  readonly aheadWriters: number;
  /** Adds, then removes, members in one transaction; returns the group's size afterwards. */
  editMembers(
    appId: string,
    groupId: string,
    add: readonly string[],
    remove: readonly string[],
  ): Promise<number>;
  /** Members in user id order after `after` (exclusive; null = from the start), at most `limit`. */
  listMembers(appId: string, groupId: string, after: string | null, limit: number): Promise<string[]>;
  /** The groups a user is a member of, in id order. */
  groupsOf(appId: string, userId: string): Promise<string[]>;
  /** Removes every member, in bounded chunks (a million rows are not one transaction). */
  deleteGroup(appId: string, groupId: string): Promise<void>;
  /** Groups with their sizes, largest first, for operators (the dashboard). */
  listGroups(appId: string | null, limit: number): Promise<GroupSize[]>;

  /**
   * Stores a group push's message (no deliveries yet) and its job row, or reports what the
   * id already stands for: a finished push (duplicate), one still being written (running),
   * or a different body (conflict).
   */
  startGroupPush(item: PersistItem, groups: readonly string[], node: string): Promise<GroupPushStart>;
  /**
   * Writes one batch of deliveries and, when `advanceTo` is given, moves the job's cursor
   * there (the walk in id order has written everyone up to it), atomically. Batches written
   * ahead of the walk (online members first) pass null and leave the cursor. `onlineUsers`
   * for ttl 0 pushes: the others are expired at once. Rejects with `LostGroupPush` when
   * another node has taken the job over.
   */
  writeGroupBatch(
    job: GroupPushJob,
    users: readonly string[],
    onlineUsers: ReadonlySet<string> | null,
    advanceTo: string | null,
  ): Promise<Recipient[]>;
  /** Members of these groups with an online connection on a node alive since `freshSince`, in id order. */
  onlineMembers(appId: string, groups: readonly string[], freshSince: number): Promise<string[]>;
  /** Members past the job's cursor that already have its delivery (written ahead of the walk). */
  writtenAhead(job: GroupPushJob): Promise<string[]>;
  /** Records the final recipient count on the message and drops the job. */
  finishGroupPush(job: GroupPushJob): Promise<void>;
  /** Group pushes still being written, with the node writing each and that node's last heartbeat. */
  openGroupPushes(): Promise<GroupPushJob[]>;
  /** Moves a job to `toNode` if `fromNode` still holds it; false when someone else took it. */
  claimGroupPush(messagePk: number, fromNode: string, toNode: string): Promise<boolean>;
  /** A group push's reply for a repeated id: recipients once finished, null while being written. */
  groupPushResult(appId: string, messageId: string): Promise<number | null>;

  /** Room settings; merge_ms 0 removes the row (the default). */
  saveTopicSettings(appId: string, topic: string, mergeMs: number): Promise<void>;
  listTopicSettings(): Promise<TopicSettings[]>;
}

export interface GroupSize {
  readonly app: string;
  readonly group: string;
  readonly members: number;
}

export interface TopicSettings {
  readonly appId: string;
  readonly topic: string;
  readonly mergeMs: number;
}

export interface GroupPushJob {
  readonly messagePk: number;
  readonly message: StoredMessage;
  readonly groups: readonly string[];
  node: string;
  /** The writing node's last heartbeat (nodes table) when read by `openGroupPushes`; null = node gone. */
  nodeHeartbeat?: number | null;
  /** Last member written; null = none yet. */
  afterUser: string | null;
  written: number;
}

export type GroupPushStart =
  | { readonly kind: 'started'; readonly job: GroupPushJob }
  | { readonly kind: 'duplicate'; readonly id: string; readonly recipients: number }
  | { readonly kind: 'running'; readonly id: string }
  | { readonly kind: 'conflict'; readonly id: string };

/** The job's cursor moved under this writer: another node adopted it. */
export class LostGroupPush extends Error {
  constructor(readonly messagePk: number) {
    super(`group push ${messagePk} is written by another node now`);
  }
}
