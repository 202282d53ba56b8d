import type { AppRegistry } from '../auth/app-registry.js';
import { isPushError, PushError, toErrorBody } from '../domain/errors.js';
import { isValidAppId, isValidMessageId } from '../domain/ids.js';
import type { PushResult } from '../domain/message.js';
import type { Logger } from '../observability/logger.js';
import type { Ingest } from './ingest.js';
import { parsePushRequest } from './push-request.js';

/**
 * The queue ingress seam. Drivers (RabbitMQ, NATS JetStream, Redis Streams, Kafka) only move
 * bytes: each hands its deliveries to the shared decision tree in queue/queue-driver.ts, which
 * calls `QueueIngest.accept` and tells the driver when to ack, retry or dead-letter; the
 * driver connects, reconnects with backoff and settles messages on its broker.
 *
 * Guarantees every driver keeps (test/contract/queue-contract.ts, test/integration/queue-*.test.ts):
 * - a message is acked to its broker only after its push is durable (or dead-lettered);
 * - messages of one user taken from one queue keep their queue order (accept is called in
 *   delivery order, and it submits pushes in call order);
 * - a malformed message never blocks the queue: it goes to the dead letter and is acked;
 * - a store failure is not acked: the broker redelivers it later.
 */
export interface QueueConsumer {
  /** `rabbitmq`, `nats`, `redis`, `kafka`: names the backend in /readyz and logs. */
  readonly name: string;
  /** Connects and starts consuming; rejects at startup when the URL is wrong (fail fast). */
  start(): Promise<void>;
  /** Throws while the broker is unreachable (readiness). */
  ready(): Promise<void>;
  /** Stops taking messages and waits for the ones in flight. */
  close(): Promise<void>;
}

/** What happened to one queue message, for its driver to act on. */
export type QueueOutcome =
  | { readonly kind: 'pushed'; readonly result: PushResult }
  /** Refused as HTTP would refuse it with a 4xx: dead-letter `deadLetter`, then ack. */
  | { readonly kind: 'dead'; readonly deadLetter: string; readonly reason: string };

/** Thrown for failures that must not be acked (store down): the broker redelivers. */
export class RetryableQueueError extends Error {}

/**
 * Turns queue message bodies (the `/v1/push` body plus `"app"`) into pushes. Validation
 * runs in call order through a chain, so pushes are submitted in queue order even when
 * app lookups take different times.
 */
export class QueueIngest {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ingest: Ingest,
    private readonly apps: AppRegistry,
    private readonly maxDataBytes: number,
    private readonly log: Logger,
    /** While the process is overloaded, queue messages wait here instead of being refused. */
    private readonly load?: { isOverloaded(): boolean; whenNotOverloaded(): Promise<void> },
  ) {}

  /**
   * `brokerId` is a stable id the broker gives this message (same on every redelivery). A body
   * without its own `id` takes it, so a message redelivered after a crash — or taken over by
   * another node — is persisted once, answered the second time as a duplicate.
   */
  accept(body: Buffer, source: string, brokerId?: string): Promise<QueueOutcome> {
    const step = this.chain.then(() => this.submit(body, source, brokerId));
    // The chain orders submission only; durability is awaited by each caller in parallel,
    // so one group commit takes many queue messages.
    this.chain = step.then(
      () => undefined,
      () => undefined,
    );
    return step.then((s) => s.outcome);
  }

  /** Validates and submits; resolves in call order with (a wrapper around) the outcome to come. */
  private async submit(
    body: Buffer,
    source: string,
    brokerId: string | undefined,
  ): Promise<{ outcome: Promise<QueueOutcome> }> {
    // Submissions are chained, so waiting here holds the consumer's prefetch window: it slows.
    if (this.load?.isOverloaded()) await this.load.whenNotOverloaded();
    const text = decodeUtf8(body);
    try {
      if (text === null) throw new PushError('bad_request', 'body is not UTF-8');
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new PushError('bad_request', 'body is not valid JSON');
      }
      const appId = (parsed as { app?: unknown } | null)?.app;
      if (!isValidAppId(appId) || !(await this.apps.find(appId))) {
        const err = new PushError('unauthorized', `unknown app ${JSON.stringify(appId ?? null)}`);
        return { outcome: Promise.resolve(this.refuse(err, body, text, 'unknown_app')) };
      }
      const parsedRequest = parsePushRequest(parsed, this.maxDataBytes);
      const request =
        parsedRequest.id === null && brokerId !== undefined && isValidMessageId(brokerId)
          ? { ...parsedRequest, id: brokerId }
          : parsedRequest;
      // Called synchronously in chain order: Ingest submits to the group commit before awaiting.
      const outcome = this.ingest.push(appId, request, source).then(
        (result): QueueOutcome => ({ kind: 'pushed', result }),
        (err: unknown) => this.refuse(err, body, text),
      );
      return { outcome };
    } catch (err) {
      return { outcome: new Promise((resolve) => resolve(this.refuse(err, body, text))) };
    }
  }

  /** 4xx-like refusals become dead letters; anything else is retryable and must not be acked. */
  private refuse(err: unknown, body: Buffer, text: string | null, reason?: string): QueueOutcome {
    if (!isPushError(err) || err.spec.status >= 500) {
      this.log.warn({ err }, 'queue message not accepted; the broker will redeliver it');
      throw new RetryableQueueError('push not durable', { cause: err });
    }
    return { kind: 'dead', reason: reason ?? err.code, deadLetter: deadLetter(err, body, text, reason) };
  }
}

/** `{"reason","error":{"code","message"},"body"|"body_base64"}` (docs/reference/queues.md). */
export function deadLetter(err: PushError, body: Buffer, text: string | null, reason?: string): string {
  return JSON.stringify({
    reason: reason ?? err.code,
    ...toErrorBody(err),
    ...(text !== null ? { body: text } : { body_base64: body.toString('base64') }),
  });
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The body as text, or null when it is not UTF-8 (dead letters then carry `body_base64`). */
export function decodeUtf8(body: Buffer): string | null {
  try {
    return utf8.decode(body);
  } catch {
    return null;
  }
}

/** The dead letter of a message whose push kept failing (store down) `deliveries` times. */
export function maxDeliveriesLetter(body: Buffer, deliveries: number, cause: unknown): string {
  const why = cause instanceof Error && cause.cause instanceof Error ? `: ${cause.cause.message}` : '';
  const err = new PushError('unavailable', `not durable after ${deliveries} deliveries${why}`);
  return deadLetter(err, body, decodeUtf8(body), 'max_deliveries');
}

/** A broker URL fit for logs and errors (the one masking helper lives in observability/mask.ts). */
export { maskCredentials } from '../observability/mask.js';
