import { Redis, type RedisOptions } from 'ioredis';
import { PushError } from '../domain/errors.js';
import type { QueueDriverConfig, QueueDriverDeps } from './create-queue-consumers.js';
import { QueueDriverCore, reconnectDelay, startFailure } from './queue/queue-driver.js';
import { deadLetter, type QueueConsumer } from './queue-consumer.js';

/**
 * Redis Streams queue ingress (ioredis). Producers append one entry per message to the
 * stream `message-push:push`, the `/v1/push` body plus `"app"` in the field `body`:
 *
 *   XADD message-push:push * body '{"app":"a","id":"m1","to":{"users":["u1"]},"data":{}}'
 *
 * Every node reads through the consumer group `message-push` as its own consumer (its node
 * id), so each entry goes to one node. Refused entries are appended to `message-push:dead`,
 * the dead-letter JSON in the field `body`.
 *
 *   producer ─XADD─► message-push:push ─XREADGROUP─► accept ─► durable ─► XACK
 *                                                        └─► refused ─► XADD message-push:dead ─► XACK
 *
 * An entry stays pending until its XACK. Before it reads new entries, a starting node takes
 * over the pending entries of every consumer that has no connection open (a node killed, under
 * whatever name: the default node id changes with the pid) and reads them, with its own, in
 * stream order; so a crash does not let a user's newer entries overtake older ones. A node
 * whose push failed (store down) reads its own pending entries again after the shared retry
 * backoff. Every RECLAIM_INTERVAL_MS a running node takes over the entries of consumers gone
 * since, and with XAUTOCLAIM those idle for RECLAIM_MIN_IDLE_MS (a node alive but stuck, or a
 * Redis that refuses CLIENT LIST). Every read or claim counts as a delivery (XPENDING); an
 * entry delivered more than `maxDeliver` times is dead-lettered with reason `max_deliveries`.
 *
 * Liveness is read from connection names (`message-push:<node>:reader|commands`, CLIENT LIST):
 * Redis closes a killed process's connections at once, while an idle time would make the
 * restarted node wait, reading newer entries meanwhile.
 */

export const PUSH_STREAM = 'message-push:push';
export const DEAD_STREAM = 'message-push:dead';
export const GROUP = 'message-push';
const BODY_FIELD = 'body';
/** Connection names are `message-push:<consumer>:<role>`; a consumer without one is gone. */
const CONNECTION_NAME = /^message-push:(.+):(?:reader|commands)$/;

/** Longest blocking read: bounds how long close() waits when CLIENT UNBLOCK cannot reach the reader. */
const BLOCK_MS = 1_000;
/** Pending entries idle this long belong to a dead consumer (or failed here) and are claimed. */
const RECLAIM_MIN_IDLE_MS = 30_000;
/** Pending entries of one stopped consumer moved per XCLAIM. */
const ADOPT_BATCH = 1_000;
/** How often stopped consumers' and idle pending entries are looked for (also once at start). */
const RECLAIM_INTERVAL_MS = 10_000;
/** Reading pauses this long after a read failed (Redis down). */
const RETRY_PAUSE_MS = 1_000;
const CONNECT_TIMEOUT_MS = 5_000;
/** close() waits this long for XACKs before dropping them (Redis down): those entries are redelivered. */
const CLOSE_ACK_WAIT_MS = 5_000;

interface Entry {
  readonly id: string;
  /** Null for an entry deleted (XDEL, trimming) while pending. */
  readonly fields: Buffer[] | null;
}

type StreamReply = [key: Buffer, entries: [id: Buffer, fields: Buffer[] | null][]][] | null;
type AutoClaimReply = [cursor: Buffer, entries: [id: Buffer, fields: Buffer[] | null][], deleted?: Buffer[]];

export function createRedisStreamsConsumer(config: QueueDriverConfig, deps: QueueDriverDeps): QueueConsumer {
  return new RedisStreamsConsumer(config, deps);
}

/**
 * Reads with XREADGROUP, at most `prefetch` entries in flight, and acks each one only once its
 * push is durable or its dead letter is appended. Reconnects are ioredis' (backoff below).
 */
class RedisStreamsConsumer implements QueueConsumer {
  readonly name = 'redis';
  /** XACK, XADD, XAUTOCLAIM, XPENDING: never blocked, so acks are not held up by a read. */
  private readonly commands: Redis;
  /** XREADGROUP only: a connection in a blocking read can do nothing else. */
  private readonly reader: Redis;
  private readerId: number | null = null;
  private lastError: Error | null = null;
  private started = false;
  private stopping = false;
  private loop: Promise<void> = Promise.resolve();
  /** Entry id → its handling, until acked or left pending. At most ~prefetch. */
  private readonly inFlight = new Map<string, Promise<void>>();
  private waiters: (() => void)[] = [];
  /** Read our own pending entries again: at start, and after a reconnect lost replies or acks. */
  private rescanOwn = true;
  private nextReclaimAt = 0;
  private clientListRefused = false;
  private pauseUntil = 0;
  private readonly core: QueueDriverCore;

  constructor(
    private readonly config: QueueDriverConfig,
    private readonly deps: QueueDriverDeps,
  ) {
    this.core = new QueueDriverCore(this.name, config, deps);
    this.commands = new Redis(config.url, this.options('commands'));
    this.reader = new Redis(config.url, this.options('reader'));
    this.watch(this.commands, 'commands');
    this.watch(this.reader, 'reader');
  }

  async start(): Promise<void> {
    try {
      await Promise.all([this.commands.connect(), this.reader.connect()]);
      // From id 0: entries producers appended before the group existed are consumed too.
      await this.commands.xgroup('CREATE', PUSH_STREAM, GROUP, '0', 'MKSTREAM').catch(ignoreBusyGroup);
    } catch (err) {
      this.commands.disconnect();
      this.reader.disconnect();
      throw startFailure('Redis', this.config.url, this.lastError ?? err);
    }
    this.started = true;
    this.loop = this.run();
    this.deps.log.info(
      { stream: PUSH_STREAM, group: GROUP, consumer: this.config.consumerName },
      'redis: consuming',
    );
  }

  async ready(): Promise<void> {
    if (this.commands.status !== 'ready' || this.reader.status !== 'ready') {
      throw new PushError('unavailable', 'redis: not connected, reconnecting');
    }
  }

  async close(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.core.beginClose();
    this.signal();
    if (this.readerId !== null && this.commands.status === 'ready') {
      // Ends the blocking read now, as if it had timed out: no entry is taken and lost.
      await this.commands.client('UNBLOCK', this.readerId).catch(() => {});
    }
    // Redis down: commands wait in ioredis' offline queue; disconnecting fails them now instead.
    if (!(await settlesWithin(this.loop, BLOCK_MS * 2))) this.reader.disconnect();
    await this.loop;
    if (!(await settlesWithin(this.drain(), CLOSE_ACK_WAIT_MS))) this.commands.disconnect();
    await this.drain();
    await Promise.allSettled([this.commands.quit(), this.reader.quit()]);
  }

  private options(role: string): RedisOptions {
    return {
      lazyConnect: true,
      connectTimeout: CONNECT_TIMEOUT_MS,
      // No retries before start() succeeded: a wrong URL fails startup instead of hanging it.
      retryStrategy: (times) => (this.started && !this.stopping ? reconnectDelay(times - 1) : null),
      connectionName: `message-push:${this.config.consumerName}:${role}`,
      // RESP2: the raw XREADGROUP/XAUTOCLAIM replies keep their documented array shapes.
      protocol: 2,
    };
  }

  private watch(connection: Redis, role: string): void {
    let lostAt = 0;
    connection.on('error', (err: Error) => {
      this.lastError = err;
      this.deps.log.debug({ err, role }, 'redis: connection error');
    });
    connection.on('close', () => {
      if (!this.started || this.stopping || lostAt) return;
      lostAt = Date.now();
      this.deps.log.warn({ role, inFlight: this.inFlight.size }, 'redis: connection lost; reconnecting');
    });
    connection.on('ready', () => {
      if (lostAt) {
        this.deps.log.info({ role, downMs: Date.now() - lostAt }, 'redis: reconnected, consuming again');
        lostAt = 0;
        // Replies or acks may have been lost with the connection: those entries are pending here.
        this.rescanOwn = true;
      }
      if (role === 'reader') {
        void connection.client('ID').then(
          (id) => (this.readerId = Number(id)),
          () => (this.readerId = null),
        );
      }
      this.signal();
    });
  }

  /** The read loop: own pending entries, idle ones of others, then new ones, `prefetch` at most in flight. */
  private async run(): Promise<void> {
    while (!this.stopping) {
      try {
        // First: a failed push (store down) is read again from our pending entries only after its backoff.
        if (Date.now() < this.pauseUntil) {
          await this.pause(this.pauseUntil - Date.now());
          continue;
        }
        // Due at start: a dead node's entries join our own pending ones before any new entry is read.
        const reclaimDue = Date.now() >= this.nextReclaimAt;
        if (reclaimDue) {
          this.nextReclaimAt = Date.now() + RECLAIM_INTERVAL_MS;
          if ((await this.adoptOrphans()) > 0) this.rescanOwn = true;
        }
        if (this.rescanOwn) {
          this.rescanOwn = false;
          await this.readOwnPending();
        }
        if (reclaimDue) await this.reclaimIdle();
        await this.waitForSlots();
        if (this.stopping) break;
        const entries = await this.read('>', this.config.prefetch - this.inFlight.size);
        this.dispatch(entries, null);
      } catch (err) {
        if (this.stopping) break;
        if (String((err as Error).message).startsWith('NOGROUP')) {
          // The stream was deleted (or Redis restarted empty): create it and the group again.
          await this.commands.xgroup('CREATE', PUSH_STREAM, GROUP, '0', 'MKSTREAM').catch(() => {});
          continue;
        }
        this.deps.log.debug({ err }, 'redis: read failed; retrying');
        this.rescanOwn = true; // a read whose reply was lost left its entries pending here
        await this.pause(RETRY_PAUSE_MS);
      }
    }
  }

  /** `id` '>' = new entries (blocking); another id = our own pending entries after it (never blocks). */
  private async read(id: string, count: number): Promise<Entry[]> {
    const block = id === '>' ? ['BLOCK', BLOCK_MS] : [];
    const reply = (await this.reader.callBuffer('XREADGROUP', [
      'GROUP',
      GROUP,
      this.config.consumerName,
      'COUNT',
      count,
      ...block,
      'STREAMS',
      PUSH_STREAM,
      id,
    ])) as StreamReply;
    return (reply?.[0]?.[1] ?? []).map(([id, fields]) => ({ id: id.toString(), fields }));
  }

  private async readOwnPending(): Promise<void> {
    let after = '0-0';
    while (!this.stopping) {
      await this.waitForSlots();
      const entries = await this.read(after, this.config.prefetch);
      if (entries.length === 0) return;
      after = entries.at(-1)!.id;
      this.dispatch(entries, await this.countDeliveries(entries));
    }
  }

  /**
   * Moves the pending entries of consumers with no open connection to this one (XCLAIM JUSTID:
   * not counted as a delivery; reading them from our pending list counts), to be read in stream
   * order with our own. Returns how many moved.
   */
  private async adoptOrphans(): Promise<number> {
    const live = await this.liveConsumers();
    if (live === null) return 0;
    const consumers = (await this.commands.xinfo('CONSUMERS', PUSH_STREAM, GROUP)) as unknown[][];
    let adopted = 0;
    for (const row of consumers) {
      const info = fieldsOf(row);
      const name = String(info.name);
      if (name === this.config.consumerName || live.has(name)) continue;
      let pending = Number(info.pending);
      while (pending > 0 && !this.stopping) {
        const rows = (await this.commands.xpending(PUSH_STREAM, GROUP, '-', '+', ADOPT_BATCH, name)) as [
          id: string,
          ...rest: unknown[],
        ][];
        if (rows.length === 0) break;
        await this.commands.xclaim(
          PUSH_STREAM,
          GROUP,
          this.config.consumerName,
          0,
          ...rows.map(([id]) => id),
          'JUSTID',
        );
        adopted += rows.length;
        pending -= rows.length;
      }
      // Names carry the pid by default, so dead consumers would pile up in the group. Deleting
      // drops whatever is still pending on it: only when it has been silent long enough that a
      // node merely reconnecting (which would read again within seconds) is ruled out.
      if (pending <= 0 && Number(info.idle) >= RECLAIM_MIN_IDLE_MS && !this.stopping) {
        await this.commands.xgroup('DELCONSUMER', PUSH_STREAM, GROUP, name);
      }
    }
    if (adopted > 0)
      this.deps.log.info({ count: adopted }, 'redis: took over pending entries of stopped nodes');
    return adopted;
  }

  /** Consumers with a connection open now; null when Redis refuses CLIENT LIST (ACL, renamed). */
  private async liveConsumers(): Promise<Set<string> | null> {
    let list: string;
    try {
      list = String(await this.commands.call('CLIENT', 'LIST', 'TYPE', 'normal'));
    } catch (err) {
      if (!this.clientListRefused)
        this.deps.log.info(
          { err },
          "redis: CLIENT LIST refused; stopped nodes' entries are claimed once idle",
        );
      this.clientListRefused = true;
      return null;
    }
    const live = new Set<string>();
    for (const m of list.matchAll(/(?:^| )name=(\S*)/gm)) {
      const name = CONNECTION_NAME.exec(m[1]!)?.[1];
      if (name !== undefined) live.add(name);
    }
    return live;
  }

  private async reclaimIdle(): Promise<void> {
    let cursor = '0-0';
    do {
      await this.waitForSlots();
      const [next, claimed] = (await this.commands.callBuffer('XAUTOCLAIM', [
        PUSH_STREAM,
        GROUP,
        this.config.consumerName,
        RECLAIM_MIN_IDLE_MS,
        cursor,
        'COUNT',
        this.config.prefetch,
      ])) as AutoClaimReply;
      cursor = next.toString();
      const entries = claimed.map(([id, fields]) => ({ id: id.toString(), fields }));
      if (entries.length > 0) {
        this.deps.log.info({ count: entries.length }, 'redis: claimed idle pending entries');
        this.dispatch(entries, await this.countDeliveries(entries));
      }
    } while (cursor !== '0-0' && !this.stopping);
  }

  /** Delivery counts (XPENDING) of entries read again or claimed; a first read is delivery 1. */
  private async countDeliveries(entries: Entry[]): Promise<Map<string, number>> {
    const rows = await Promise.all(
      entries.map((e) => this.commands.xpending(PUSH_STREAM, GROUP, e.id, e.id, 1) as Promise<unknown[][]>),
    );
    const counts = new Map<string, number>();
    for (const row of rows) if (row[0]) counts.set(String(row[0][0]), Number(row[0][3]));
    return counts;
  }

  /** Hands entries to accept in stream order (accept is called synchronously, one by one). */
  private dispatch(entries: Entry[], deliveries: Map<string, number> | null): void {
    for (const entry of entries) {
      if (this.inFlight.has(entry.id)) continue; // read again while still being handled
      const task = this.handleEntry(entry, deliveries?.get(entry.id) ?? 1)
        .catch((err: unknown) =>
          this.deps.log.warn({ err, id: entry.id }, 'redis: entry not settled; it stays pending'),
        )
        .finally(() => {
          this.inFlight.delete(entry.id);
          this.signal();
        });
      this.inFlight.set(entry.id, task);
    }
  }

  private handleEntry(entry: Entry, deliveries: number): Promise<void> {
    // Deleted (XDEL, trimming) while pending: nothing to push.
    if (entry.fields === null) return this.core.track(this.ack(entry.id));
    const body = fieldOf(entry.fields, BODY_FIELD);
    if (body === null) {
      const err = new PushError('bad_request', `stream entry has no "${BODY_FIELD}" field`);
      const letter = deadLetter(err, Buffer.alloc(0), '');
      return this.core.track(this.xadd(letter).then(() => this.ack(entry.id)));
    }
    // Entry ids are unique and time-ordered per stream, the same on every redelivery.
    return this.core.handle(
      { body, deliveries, brokerId: `redis-${entry.id}` },
      {
        ack: () => this.ack(entry.id),
        // Left pending; reading pauses for the backoff (the store is likely down), then our own
        // pending entries are read again, which counts as their next delivery.
        retry: (delayMs) => {
          this.pauseUntil = Math.max(this.pauseUntil, Date.now() + delayMs);
          this.rescanOwn = true;
        },
        deadLetter: (letter) => this.xadd(letter),
      },
    );
  }

  private async xadd(letter: string): Promise<void> {
    await this.commands.xadd(DEAD_STREAM, '*', BODY_FIELD, letter);
  }

  private async ack(id: string): Promise<void> {
    await this.commands.xack(PUSH_STREAM, GROUP, id);
  }

  /** Waits until at most half the window is in flight, so reads fetch entries in batches. */
  private async waitForSlots(): Promise<void> {
    while (this.inFlight.size > this.config.prefetch / 2 && !this.stopping) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  private drain(): Promise<unknown> {
    return Promise.allSettled([...this.inFlight.values()]);
  }

  /** Sleeps up to `ms`; woken early by close, a freed slot or a reconnect. */
  private async pause(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      this.waiters.push(resolve);
    });
    clearTimeout(timer);
  }

  private signal(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** XINFO's flat `[name, value, name, value…]` reply as an object. */
function fieldsOf(row: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i + 1 < row.length; i += 2) out[String(row[i])] = row[i + 1];
  return out;
}

function fieldOf(fields: Buffer[], name: string): Buffer | null {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i]!.toString() === name) return fields[i + 1]!;
  return null;
}

function ignoreBusyGroup(err: Error): void {
  if (!String(err.message).startsWith('BUSYGROUP')) throw err;
}

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const settled = promise.then(
    () => true,
    () => true,
  );
  const result = await Promise.race([settled, timeout]);
  clearTimeout(timer);
  return result;
}
