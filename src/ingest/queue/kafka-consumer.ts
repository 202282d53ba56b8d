import {
  Admin,
  Consumer,
  type Message,
  type MessagesStream,
  ProduceAcks,
  Producer,
  type SASLOptions,
} from '@platformatic/kafka';
import { PushError } from '../../domain/errors.js';
import { isValidMessageId } from '../../domain/ids.js';
import type { QueueDriverConfig, QueueDriverDeps } from '../create-queue-consumers.js';
import { maskCredentials, type QueueConsumer } from '../queue-consumer.js';
import { QueueDriverCore, reconnectDelay, startFailure } from './queue-driver.js';

/**
 * Kafka queue ingress (@platformatic/kafka, pure JavaScript). Producers write the `/v1/push`
 * body plus `"app"` as the record value to the topic `message-push.push`, keyed by user when
 * a user's messages must stay in order (one key → one partition → one order); refused records
 * are written to `message-push.dead`, the dead-letter JSON as value, the original key as key.
 *
 *   producer ─► message-push.push ─► group "message-push" ─► accept ─► durable ───────┐
 *                                                                └─► refused ─► message-push.dead (acks=all)
 *                                      commit offset n+1 once n and all before it in its partition are done
 *
 * Offsets: a record is done once its push is durable or its dead letter is acknowledged by
 * every in-sync replica. Per partition the committed offset only moves past a record when it
 * and every earlier record of that partition are done, so a crash, a rebalance or a lost
 * connection hands the unfinished tail back to the group; those records come again and, being
 * duplicates by id, are stored once.
 *
 * Ids: a body without an `id` takes the record key when that is a valid message id, else
 * `kafka-<topic>-<partition>-<offset>` (the same on every redelivery).
 *
 * Retries: Kafka has no per-record redelivery, so a record whose push failed (store down) is
 * tried again here, after the shared backoff, counting its deliveries; past
 * PUSH_QUEUE_MAX_DELIVER it is dead-lettered as `max_deliveries`. The count lives in this
 * process: after a restart a record starts again from 1. Records of its partition behind it
 * go on being taken meanwhile, but its offset holds their commit back.
 *
 * Both topics are created when missing (the broker's default partition count and replication).
 */

export const PUSH_TOPIC = 'message-push.push';
export const DEAD_TOPIC = 'message-push.dead';
export const GROUP_ID = 'message-push';

/** How long a batch of done offsets waits to be committed in one request. */
const COMMIT_DELAY_MS = 100;
/** A fetch waits at most this long for records: bounds how fast new records are seen when idle. */
const FETCH_MAX_WAIT_MS = 500;
const CONNECT_TIMEOUT_MS = 5_000;
const SESSION_TIMEOUT_MS = 10_000;
const HEARTBEAT_INTERVAL_MS = 1_000;

/** Brokers and credentials from `kafka://[user:password@]host:port[,host:port…]` (`kafkas://`: TLS). */
export interface KafkaTarget {
  readonly brokers: string[];
  readonly tls: boolean;
  readonly sasl?: SASLOptions;
}

export function parseKafkaUrl(url: string): KafkaTarget {
  const match = /^(kafkas?):\/\/(?:([^:@/]*):([^@/]*)@)?([^/?#]+)\/?$/i.exec(url.trim());
  const hosts = match?.[4]?.split(',').map((h) => h.trim()) ?? [];
  if (!match || hosts.length === 0 || hosts.some((h) => !/^[^\s:]+:\d{1,5}$/.test(h))) {
    throw new PushError(
      'config_invalid',
      `PUSH_QUEUE_URL: ${maskCredentials(url)} is not kafka://[user:password@]host:port[,host:port…]`,
    );
  }
  const [, scheme, user, password] = match;
  const sasl: SASLOptions | undefined =
    user !== undefined
      ? { mechanism: 'PLAIN', username: decodeURIComponent(user), password: decodeURIComponent(password!) }
      : undefined;
  return { brokers: hosts, tls: scheme!.toLowerCase() === 'kafkas', ...(sasl ? { sasl } : {}) };
}

/** Records of one partition taken and not yet committed, in offset order. */
interface PartitionTrack {
  readonly topic: string;
  readonly partition: number;
  /** Taken, oldest first; the head leaves once done, moving the commit point. */
  readonly pending: { offset: bigint; done: boolean }[];
  /** The newest offset taken: a record at or below it fetched again (after a rejoin) is skipped. */
  highest: bigint;
  /** The next offset to commit (one past the last done prefix), or -1n while nothing is due. */
  commitAt: bigint;
}

export function createKafkaConsumer(config: QueueDriverConfig, deps: QueueDriverDeps): QueueConsumer {
  return new KafkaConsumer(config, deps);
}

/** One link to the cluster: replaced as a whole when its stream fails. */
interface Link {
  readonly consumer: Consumer;
  readonly stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>;
}

export class KafkaConsumer implements QueueConsumer {
  readonly name = 'kafka';
  private readonly target: KafkaTarget;
  private readonly core: QueueDriverCore;
  private producer: Producer | null = null;
  private link: Link | null = null;
  /** `topic:partition` → its track; replaced or dropped when the group takes the partition away. */
  private tracks = new Map<string, PartitionTrack>();
  private commitTimer: NodeJS.Timeout | null = null;
  private committing: Promise<void> = Promise.resolve();
  private reconnectTimer: NodeJS.Timeout | null = null;
  private attempts = 0;
  private lostAt = 0;
  private started = false;
  private closing = false;
  private paused = false;

  constructor(
    private readonly config: QueueDriverConfig,
    private readonly deps: QueueDriverDeps,
  ) {
    this.target = parseKafkaUrl(config.url);
    this.core = new QueueDriverCore(this.name, config, deps);
  }

  async start(): Promise<void> {
    try {
      await this.ensureTopics();
      this.producer = new Producer({ ...this.clientOptions('dead-letters'), acks: ProduceAcks.ALL });
      await this.connect();
    } catch (err) {
      await this.producer?.close().catch(() => {});
      this.producer = null;
      throw startFailure('Kafka', this.config.url, err);
    }
    this.started = true;
    this.deps.log.info(
      { topic: PUSH_TOPIC, group: GROUP_ID, prefetch: this.config.prefetch },
      'kafka: consuming',
    );
  }

  async ready(): Promise<void> {
    const link = this.link;
    if (!link?.consumer.isActive() || link.stream.destroyed) {
      throw new PushError('unavailable', 'kafka: not connected, reconnecting');
    }
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.core.beginClose();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const link = this.link;
    // Records fetched but not taken are simply not committed: the group hands them out again.
    link?.stream.pause();
    await this.core.drain();
    if (this.commitTimer) clearTimeout(this.commitTimer);
    await this.commitNow();
    this.link = null;
    if (link) {
      await link.stream.close().catch(() => {});
      await forceClose(link.consumer);
    }
    await this.producer?.close().catch(() => {});
  }

  private clientOptions(role: string) {
    return {
      clientId: `message-push-${this.config.consumerName}-${role}`,
      bootstrapBrokers: this.target.brokers,
      connectTimeout: CONNECT_TIMEOUT_MS,
      retries: 6,
      retryDelay: 500,
      ...(this.target.tls ? { tls: {} } : {}),
      ...(this.target.sasl ? { sasl: this.target.sasl } : {}),
    };
  }

  private async ensureTopics(): Promise<void> {
    const admin = new Admin(this.clientOptions('admin'));
    try {
      const existing = new Set(await admin.listTopics());
      const missing = [PUSH_TOPIC, DEAD_TOPIC].filter((t) => !existing.has(t));
      if (missing.length > 0) {
        await admin.createTopics({ topics: missing }).catch((err: unknown) => {
          // Another node created it meanwhile.
          if (
            !String((err as Error).message).includes('already exists') &&
            !hasCode(err, 'TOPIC_ALREADY_EXISTS')
          )
            throw err;
        });
      }
    } finally {
      await admin.close().catch(() => {});
    }
  }

  private async connect(): Promise<void> {
    const consumer = new Consumer<Buffer, Buffer, Buffer, Buffer>({
      ...this.clientOptions('consumer'),
      groupId: GROUP_ID,
      autocommit: false,
      sessionTimeout: SESSION_TIMEOUT_MS,
      heartbeatInterval: HEARTBEAT_INTERVAL_MS,
      rebalanceTimeout: SESSION_TIMEOUT_MS,
      maxWaitTime: FETCH_MAX_WAIT_MS,
    });
    consumer.on('consumer:group:join', () => this.onAssignment(consumer));
    try {
      const stream = await consumer.consume({
        topics: [PUSH_TOPIC],
        mode: 'committed',
        fallbackMode: 'earliest',
        autocommit: false,
        maxWaitTime: FETCH_MAX_WAIT_MS,
      });
      const link: Link = { consumer, stream };
      this.link = link;
      this.paused = false; // a new stream flows until the window fills
      this.onAssignment(consumer);
      stream.on('data', (message: Message<Buffer, Buffer, Buffer, Buffer>) => this.take(link, message));
      stream.on('error', (err: Error) => this.handleLoss(link, err));
      stream.on('close', () => this.handleLoss(link, new Error('stream closed')));
    } catch (err) {
      await forceClose(consumer);
      throw err;
    }
  }

  /** Keeps the tracks of partitions still ours; the others' records are the new owner's now. */
  private onAssignment(consumer: Consumer<Buffer, Buffer, Buffer, Buffer>): void {
    const owned = new Set<string>();
    for (const a of consumer.assignments ?? []) for (const p of a.partitions) owned.add(`${a.topic}:${p}`);
    const kept = new Map<string, PartitionTrack>();
    for (const [key, track] of this.tracks) if (owned.has(key)) kept.set(key, track);
    if (kept.size !== this.tracks.size) {
      this.deps.log.info(
        { revoked: [...this.tracks.keys()].filter((k) => !owned.has(k)) },
        'kafka: partitions reassigned; their uncommitted records go to the new owner',
      );
    }
    this.tracks = kept;
  }

  private handleLoss(link: Link, err: Error): void {
    if (this.link !== link) return;
    this.link = null;
    this.tracks = new Map(); // uncommitted records come again from the last commit
    void link.stream.close().catch(() => {});
    void forceClose(link.consumer);
    if (this.closing || !this.started) return;
    this.lostAt = Date.now();
    this.deps.log.warn(
      { reason: err.message, inFlight: this.core.inFlight },
      'kafka: consumer lost; uncommitted records come again; reconnecting',
    );
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(
      () => {
        this.reconnectTimer = null;
        if (this.closing) return;
        this.connect().then(
          () => {
            if (this.closing) return void this.link?.stream.close().catch(() => {});
            this.deps.log.info(
              { attempts: this.attempts + 1, downMs: Date.now() - this.lostAt },
              'kafka: reconnected, consuming again',
            );
            this.attempts = 0;
          },
          (err: unknown) => {
            if (this.closing) return;
            this.deps.log.warn(
              { reason: (err as Error).message, attempts: this.attempts + 1 },
              'kafka: reconnect failed; retrying',
            );
            this.scheduleReconnect();
          },
        );
      },
      reconnectDelay(this.attempts++),
    );
  }

  /** Called in fetch order; hands each new record to the core at once (that fixes its push order). */
  private take(link: Link, message: Message<Buffer, Buffer, Buffer, Buffer>): void {
    if (this.link !== link || this.closing) return;
    const key = `${message.topic}:${message.partition}`;
    let track = this.tracks.get(key);
    if (!track) {
      track = {
        topic: message.topic,
        partition: message.partition,
        pending: [],
        highest: -1n,
        commitAt: -1n,
      };
      this.tracks.set(key, track);
    }
    if (message.offset <= track.highest) return; // fetched again after a rejoin: already ours
    track.highest = message.offset;
    const entry = { offset: message.offset, done: false };
    track.pending.push(entry);
    const recordKey = message.key && message.key.length > 0 ? message.key.toString('utf8') : '';
    const brokerId = isValidMessageId(recordKey)
      ? recordKey
      : `kafka-${message.topic}-${message.partition}-${message.offset}`;
    this.deliver(track, entry, message, brokerId, 1);
    this.applyBackpressure(link);
  }

  private deliver(
    track: PartitionTrack,
    entry: { offset: bigint; done: boolean },
    message: Message<Buffer, Buffer, Buffer, Buffer>,
    brokerId: string,
    deliveries: number,
  ): void {
    const body = message.value ?? Buffer.alloc(0);
    void this.core
      .handle(
        { body, deliveries, brokerId },
        {
          ack: () => {
            entry.done = true;
            this.advance(track);
          },
          // Not committed meanwhile; a close or a lost partition leaves it to the next delivery.
          retry: async (delayMs) => {
            await this.core.pause(delayMs);
            if (this.closing || this.tracks.get(`${track.topic}:${track.partition}`) !== track) return;
            this.deliver(track, entry, message, brokerId, deliveries + 1);
          },
          deadLetter: async (letter) => {
            const producer = this.producer;
            if (!producer) throw new Error('kafka: no producer');
            await producer.send({
              messages: [
                {
                  topic: DEAD_TOPIC,
                  value: Buffer.from(letter),
                  ...(message.key && message.key.length > 0 ? { key: message.key } : {}),
                },
              ],
            });
          },
        },
      )
      .finally(() => {
        const link = this.link;
        if (link) this.applyBackpressure(link);
      });
  }

  /** At most `prefetch` records in flight: the stream stops flowing above it, resumes at half. */
  private applyBackpressure(link: Link): void {
    const inFlight = this.core.inFlight;
    if (!this.paused && inFlight >= this.config.prefetch) {
      this.paused = true;
      link.stream.pause();
    } else if (this.paused && inFlight <= this.config.prefetch / 2) {
      this.paused = false;
      link.stream.resume();
    }
  }

  /** Moves the commit point past the done prefix of a partition. */
  private advance(track: PartitionTrack): void {
    let moved = false;
    while (track.pending.length > 0 && track.pending[0]!.done) {
      track.commitAt = track.pending.shift()!.offset + 1n;
      moved = true;
    }
    if (moved && !this.commitTimer) {
      this.commitTimer = setTimeout(() => {
        this.commitTimer = null;
        void this.commitNow();
      }, COMMIT_DELAY_MS);
    }
  }

  /** Commits the due offsets of the partitions still ours, one request; a failure is retried later. */
  private commitNow(): Promise<void> {
    this.committing = this.committing.then(async () => {
      const consumer = this.link?.consumer;
      if (!consumer) return;
      const due = [...this.tracks.values()].filter((t) => t.commitAt >= 0n);
      if (due.length === 0) return;
      const offsets = due.map((t) => ({
        topic: t.topic,
        partition: t.partition,
        offset: t.commitAt,
        leaderEpoch: -1,
      }));
      for (const t of due) t.commitAt = -1n;
      try {
        await consumer.commit({ offsets });
      } catch (err) {
        this.deps.log.warn({ err }, 'kafka: offset commit failed; those records may come again');
        // Only the still-owned ones are tried again, and only if nothing newer is due.
        for (const [i, t] of due.entries()) {
          if (this.tracks.get(`${t.topic}:${t.partition}`) === t && t.commitAt < 0n) {
            t.commitAt = offsets[i]!.offset;
          }
        }
      }
    });
    return this.committing;
  }
}

function hasCode(err: unknown, code: string): boolean {
  const e = err as { code?: string; errors?: unknown[] } | null;
  if (!e) return false;
  if (e.code === code || String(e.code).includes(code)) return true;
  return Array.isArray(e.errors) && e.errors.some((x) => hasCode(x, code));
}

/** Leaves the group without waiting for fetches in progress; never rejects. */
function forceClose(consumer: Consumer<Buffer, Buffer, Buffer, Buffer>): Promise<void> {
  return new Promise<void>((resolve) => consumer.close(true, () => resolve()));
}
