import { PushError } from '../../domain/errors.js';
import type { QueueDriverConfig, QueueDriverDeps } from '../create-queue-consumers.js';
import { maskCredentials, maxDeliveriesLetter, type QueueOutcome } from '../queue-consumer.js';

/**
 * The part every queue driver shares: what to do with one delivered message, keeping count of
 * the ones in flight, draining them on close, and the wording and pacing of failures. A driver
 * only says how its broker acks, hands a message back, takes a dead letter and reconnects.
 *
 *   delivery n > maxDeliver ───────────────────────────► dead letter "max_deliveries" ─► ack
 *   accept ─► durable ──────────────────────────────────────────────────────────────► ack
 *          ├► refused (4xx) ────────────────────────────► dead letter with the error ─► ack
 *          └► not durable (store down) ─► n < maxDeliver ─► retry after a backoff
 *                                       └► otherwise ───► dead letter "max_deliveries" ─► ack
 *   a dead letter the broker did not take ─► retry after a backoff
 */

/** One message as its broker delivered it. */
export interface Delivery {
  readonly body: Buffer;
  /** This delivery's number: 1 the first time, counted by the broker or by the driver. */
  readonly deliveries: number;
  /**
   * Same on every redelivery of this message: the push's id when the body has none, so a
   * message pushed but not acked before a crash is stored once (QueueIngest.accept).
   */
  readonly brokerId?: string | undefined;
}

/** How a driver settles one delivery on its broker. */
export interface Settle {
  /** The push is durable, or its dead letter is stored: the broker may forget the message. */
  ack(): void | Promise<void>;
  /** Not durable: the broker (or the driver) delivers it again, not before `delayMs`. */
  retry(delayMs: number): void | Promise<void>;
  /** Stores the dead letter; rejects when the broker did not take it (the message is then retried). */
  deadLetter(letter: string): Promise<void>;
}

/** A message whose push failed (store down) is tried again after 1 s, 2 s, 4 s … at most 30 s. */
const RETRY_DELAY_MS = 1_000;
const RETRY_DELAY_MAX_MS = 30_000;

export function retryDelay(deliveries: number): number {
  return Math.min(RETRY_DELAY_MAX_MS, RETRY_DELAY_MS * 2 ** Math.max(0, deliveries - 1));
}

/** Reconnect delays: doubling from 250 ms to a 10 s cap, each drawn from [d/2, d] so nodes spread out. */
const RECONNECT_INITIAL_MS = 250;
const RECONNECT_MAX_MS = 10_000;

export function reconnectDelay(attempt: number): number {
  const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_INITIAL_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

/** The error start() throws when the first connection fails: names the setting, never the password. */
export function startFailure(broker: string, url: string, err: unknown): PushError {
  return new PushError(
    'unavailable',
    `PUSH_QUEUE_URL: cannot consume from ${broker} at ${maskCredentials(url)}: ${(err as Error).message}`,
    { cause: err },
  );
}

/**
 * One per driver instance. `handle` runs the decision tree above for a delivery; it calls
 * `QueueIngest.accept` synchronously, so calling `handle` in delivery order submits the pushes
 * in delivery order. Tasks are tracked until settled; `drain` waits for all of them.
 */
export class QueueDriverCore {
  private readonly tasks = new Set<Promise<void>>();
  private readonly wakers = new Set<() => void>();
  private closing = false;

  constructor(
    /** `rabbitmq`, `nats`, `redis`, `kafka`: the source of its pushes and its metric label. */
    readonly name: string,
    private readonly config: Pick<QueueDriverConfig, 'maxDeliver'>,
    private readonly deps: QueueDriverDeps,
  ) {}

  /** Messages taken and not yet settled. */
  get inFlight(): number {
    return this.tasks.size;
  }

  get isClosing(): boolean {
    return this.closing;
  }

  /** Handles one delivery and tracks it; the returned promise never rejects. */
  handle(delivery: Delivery, settle: Settle): Promise<void> {
    const task = this.decide(delivery, settle).catch((err: unknown) =>
      this.deps.log.warn({ err }, `${this.name}: message not settled; the broker will deliver it again`),
    );
    return this.track(task);
  }

  /** Tracks other work a close must wait for (a driver's own acks, say). */
  track(task: Promise<void>): Promise<void> {
    this.tasks.add(task);
    void task.finally(() => this.tasks.delete(task));
    return task;
  }

  /** Waits until nothing is in flight (tasks started while waiting included). */
  async drain(): Promise<void> {
    while (this.tasks.size > 0) await Promise.allSettled([...this.tasks]);
  }

  /** Resolves when one task settles (or at once when none is in flight). */
  async oneSettled(): Promise<void> {
    if (this.tasks.size > 0) await Promise.race(this.tasks);
  }

  /** From now on pauses end at once: closing hands unacked messages back to the broker anyway. */
  beginClose(): void {
    this.closing = true;
    for (const wake of this.wakers) wake();
  }

  /** Sleeps `ms`, or less when the driver closes. */
  async pause(ms: number): Promise<void> {
    if (this.closing) return;
    let wake = () => {};
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
      this.wakers.add(wake);
    });
    this.wakers.delete(wake);
  }

  private async decide(d: Delivery, settle: Settle): Promise<void> {
    const { maxDeliver } = this.config;
    if (d.deliveries > maxDeliver) {
      return this.deadLetterAndAck(d, settle, maxDeliveriesLetter(d.body, d.deliveries - 1, null));
    }
    let outcome: QueueOutcome;
    try {
      outcome = await this.deps.queue.accept(d.body, this.name, d.brokerId);
    } catch (err) {
      // RetryableQueueError (store down; QueueIngest logged it): not durable, so not acked.
      this.count('retry');
      if (d.deliveries >= maxDeliver) {
        return this.deadLetterAndAck(d, settle, maxDeliveriesLetter(d.body, d.deliveries, err));
      }
      return settle.retry(retryDelay(d.deliveries));
    }
    if (outcome.kind === 'dead') return this.deadLetterAndAck(d, settle, outcome.deadLetter);
    await settle.ack();
    this.count('pushed');
  }

  private async deadLetterAndAck(d: Delivery, settle: Settle, letter: string): Promise<void> {
    try {
      await settle.deadLetter(letter);
    } catch (err) {
      this.count('retry');
      this.deps.log.warn(
        { err },
        `${this.name}: dead letter not stored; the message will be delivered again`,
      );
      return settle.retry(retryDelay(d.deliveries));
    }
    await settle.ack();
    this.count('dead');
  }

  private count(outcome: 'pushed' | 'dead' | 'retry'): void {
    this.deps.metrics.queueMessages.inc({ queue: this.name, outcome });
  }
}
