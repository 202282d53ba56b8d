import { createHash } from 'node:crypto';
import amqp, { type ChannelModel, type ConfirmChannel, type ConsumeMessage } from 'amqplib';
import { PushError } from '../domain/errors.js';
import type { QueueDriverConfig, QueueDriverDeps } from './create-queue-consumers.js';
import { QueueDriverCore, reconnectDelay, startFailure } from './queue/queue-driver.js';
import type { QueueConsumer } from './queue-consumer.js';

/**
 * RabbitMQ queue ingress (amqplib). Producers publish the `/v1/push` body plus `"app"` to
 * the durable queue `message-push.push` (default exchange, routing key = queue name,
 * persistent); refused messages are published, persistent, to `message-push.dead`.
 *
 *   producer ─► message-push.push ─► accept ─► durable ─► basic.ack
 *                                          └─► refused ─► message-push.dead (confirmed) ─► basic.ack
 *
 * Both queues are declared durable when missing. An operator may declare them beforehand
 * with other arguments (a quorum queue brings `x-delivery-count`, which this driver uses);
 * an existing queue is then used as it is.
 */

export const PUSH_QUEUE = 'message-push.push';
export const DEAD_QUEUE = 'message-push.dead';

/** A broker that accepts TCP but never answers the handshake must not hang startup. */
const CONNECT_TIMEOUT_MS = 5_000;
/** Bodies remembered for delivery counting on classic queues (no x-delivery-count); oldest dropped first. */
const MAX_TRACKED_FAILURES = 10_000;

/** One live connection: replaced as a whole when the connection or its channel drops. */
interface Link {
  readonly connection: ChannelModel;
  readonly channel: ConfirmChannel;
  consumerTag: string | null;
}

export function createRabbitMqConsumer(config: QueueDriverConfig, deps: QueueDriverDeps): QueueConsumer {
  return new RabbitMqConsumer(config, deps);
}

/**
 * Consumes with manual acks and `prefetch` unacked messages in flight. A message is acked
 * only once its push is durable or its dead letter is confirmed by the broker; anything
 * unacked when the connection drops is requeued by the broker and, once redelivered, found
 * to be a duplicate (by its `id`) and acked.
 */
class RabbitMqConsumer implements QueueConsumer {
  readonly name = 'rabbitmq';
  private link: Link | null = null;
  private connecting: Promise<void> | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private attempts = 0;
  private lostAt = 0;
  /** Set once the first connection consumed: from then on a loss is retried, before it fails start(). */
  private started = false;
  private closing = false;
  private readonly core: QueueDriverCore;
  /** Retryable failures per body hash: a classic queue only says `redelivered`, not how often. */
  private readonly failures = new Map<string, number>();

  constructor(
    private readonly config: QueueDriverConfig,
    private readonly deps: QueueDriverDeps,
  ) {
    this.core = new QueueDriverCore(this.name, config, deps);
  }

  async start(): Promise<void> {
    try {
      await this.connectOnce();
    } catch (err) {
      throw startFailure('RabbitMQ', this.config.url, err);
    }
    this.started = true;
    this.deps.log.info({ queue: PUSH_QUEUE, prefetch: this.config.prefetch }, 'rabbitmq: consuming');
  }

  async ready(): Promise<void> {
    if (!this.link) throw new PushError('unavailable', 'rabbitmq: not connected, reconnecting');
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    // Retry pauses end now: closing the connection requeues those messages anyway.
    this.core.beginClose();
    await this.connecting?.catch(() => {});
    const link = this.link;
    if (link?.consumerTag) {
      // basic.cancel: the broker stops delivering; messages already here are finished below.
      await link.channel.cancel(link.consumerTag).catch(() => {});
    }
    await this.core.drain();
    this.link = null;
    // The channel first: its close goes out behind the acks just written on it and waits for the
    // broker's answer. A connection close alone can overtake them (amqplib writes each channel's
    // frames through its own buffer), and the broker drops what arrives after it: those
    // messages, already stored, would be delivered again.
    if (link) await link.channel.close().catch(() => {});
    if (link) await link.connection.close().catch(() => {});
  }

  private connectOnce(): Promise<void> {
    this.connecting = this.openLink().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  private async openLink(): Promise<void> {
    const connection = await amqp.connect(this.config.url, {
      timeout: CONNECT_TIMEOUT_MS,
      // Acks are tiny frames: with Nagle each would wait for the previous one's TCP ack (~40 ms
      // with delayed ACKs), and the broker sends nothing new until acks arrive.
      noDelay: true,
      clientProperties: { connection_name: `message-push ${this.config.consumerName}` },
    });
    try {
      // 'error' is always followed by 'close', which is where loss is handled.
      connection.on('error', () => {});
      connection.on('blocked', (reason: string) =>
        this.deps.log.warn({ reason }, 'rabbitmq: broker blocked this connection; dead letters wait'),
      );
      await declareQueue(connection, PUSH_QUEUE);
      await declareQueue(connection, DEAD_QUEUE);
      const channel = await connection.createConfirmChannel();
      channel.on('error', () => {});
      await channel.prefetch(this.config.prefetch);
      if (this.closing) throw new Error('closing');
      const link: Link = { connection, channel, consumerTag: null };
      connection.once('close', (err?: Error) => this.handleLoss(link, err));
      // A dying connection closes its channels first: a tick later its own close names the cause.
      channel.once('close', () => setImmediate(() => this.handleLoss(link, new Error('channel closed'))));
      // Current before consume: deliveries may arrive before consume() resolves.
      this.link = link;
      const { consumerTag } = await channel.consume(PUSH_QUEUE, (msg) => {
        if (msg) void this.handleMessage(link, msg);
        // A null delivery: the broker cancelled us (queue deleted). Reconnecting declares it again.
        else this.handleLoss(link, new Error(`consumer cancelled by the broker (${PUSH_QUEUE} deleted?)`));
      });
      link.consumerTag = consumerTag;
    } catch (err) {
      if (this.link?.connection === connection) this.link = null;
      await connection.close().catch(() => {});
      throw err;
    }
  }

  /** Runs once per link: the connection's and the channel's close events both land here. */
  private handleLoss(link: Link, err: Error | undefined): void {
    if (this.link !== link) return;
    this.link = null;
    void link.connection.close().catch(() => {});
    // Before the first connection consumed, the failure is start()'s to report.
    if (this.closing || !this.started) return;
    this.lostAt = Date.now();
    this.deps.log.warn(
      { reason: err?.message ?? 'closed', inFlight: this.core.inFlight },
      'rabbitmq: connection lost; unacked messages go back to the queue; reconnecting',
    );
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer) return; // a loss during a reconnect attempt lands here twice
    const delay = reconnectDelay(this.attempts++);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.closing) return;
      this.connectOnce().then(
        () => {
          this.deps.log.info(
            { attempts: this.attempts, downMs: Date.now() - this.lostAt },
            'rabbitmq: reconnected, consuming again',
          );
          this.attempts = 0;
        },
        (err: unknown) => {
          if (this.closing) return;
          this.deps.log.warn(
            { reason: (err as Error).message, attempts: this.attempts },
            'rabbitmq: reconnect failed; retrying',
          );
          this.scheduleReconnect();
        },
      );
    }, delay);
  }

  /** Settles on the channel that delivered the message; the core decides which way. */
  private handleMessage(link: Link, msg: ConsumeMessage): Promise<void> {
    const deliveries = this.countDeliveries(msg);
    // AMQP has no broker-assigned id; a producer's message-id property serves as one.
    const brokerId = msg.properties.messageId as string | undefined;
    return this.core.handle(
      { body: msg.content, deliveries, brokerId },
      {
        ack: () => {
          this.forgetFailure(msg);
          this.settle(link, () => link.channel.ack(msg));
        },
        retry: async (delayMs) => {
          this.rememberFailure(msg, deliveries);
          await this.core.pause(delayMs);
          this.settle(link, () => link.channel.nack(msg, false, true));
        },
        deadLetter: (letter) => {
          // Its channel is gone: the broker has requeued it already.
          if (this.link !== link) return Promise.reject(new Error('rabbitmq: channel closed'));
          return new Promise<void>((resolve, reject) => {
            link.channel.sendToQueue(
              DEAD_QUEUE,
              Buffer.from(letter),
              { persistent: true, contentType: 'application/json' },
              (err: unknown) => (err ? reject(err) : resolve()),
            );
          });
        },
      },
    );
  }

  /** Acks/nacks on the channel that delivered the message; once it is gone the broker has requeued it. */
  private settle(link: Link, op: () => void): void {
    if (this.link !== link) return;
    try {
      op();
    } catch {
      // The channel closed under us: the broker requeues the message; its redelivery is a duplicate.
    }
  }

  /** This delivery's number: x-delivery-count (quorum queues), else failures seen by this process. */
  private countDeliveries(msg: ConsumeMessage): number {
    const header = msg.properties.headers?.['x-delivery-count'];
    if (typeof header === 'number') return header + 1;
    if (!msg.fields.redelivered) return 1;
    return Math.max(2, (this.failures.get(bodyKey(msg)) ?? 0) + 1);
  }

  private rememberFailure(msg: ConsumeMessage, deliveries: number): void {
    const key = bodyKey(msg);
    this.failures.delete(key);
    this.failures.set(key, deliveries);
    if (this.failures.size > MAX_TRACKED_FAILURES) this.failures.delete(this.failures.keys().next().value!);
  }

  private forgetFailure(msg: ConsumeMessage): void {
    if (msg.fields.redelivered && this.failures.size > 0) this.failures.delete(bodyKey(msg));
  }
}

/** Declares a durable queue; one that exists with other arguments (quorum, TTL) is used as it is. */
async function declareQueue(connection: ChannelModel, queue: string): Promise<void> {
  // A refused declaration closes its channel, so it gets one of its own.
  const channel = await connection.createChannel();
  channel.on('error', () => {});
  try {
    await channel.assertQueue(queue, { durable: true });
    await channel.close();
  } catch (err) {
    if ((err as { code?: number }).code !== 406) throw err; // 406 PRECONDITION_FAILED: other arguments
    const check = await connection.createChannel();
    await check.checkQueue(queue);
    await check.close();
  }
}

function bodyKey(msg: ConsumeMessage): string {
  return createHash('sha1').update(msg.content).digest('base64');
}
