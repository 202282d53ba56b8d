import type { QueueConfig } from '../config.js';
import { PushError } from '../domain/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { createNatsJetStreamConsumer } from './nats-jetstream-consumer.js';
import { createKafkaConsumer } from './queue/kafka-consumer.js';
import type { QueueConsumer, QueueIngest } from './queue-consumer.js';
import { createRabbitMqConsumer } from './rabbitmq-consumer.js';
import { createRedisStreamsConsumer } from './redis-streams-consumer.js';

/** What a queue driver is built from: its URL and the shared settings, plus its collaborators. */
export interface QueueDriverConfig {
  readonly url: string;
  readonly prefetch: number;
  readonly maxDeliver: number;
  /** This node's name: consumer names, so a restarted node takes over its own pending entries. */
  readonly consumerName: string;
}

export interface QueueDriverDeps {
  readonly queue: QueueIngest;
  readonly metrics: Metrics;
  readonly log: Logger;
}

/**
 * PUSH_QUEUE_URL is split at commas, and so is a Kafka URL's broker list: an entry without a
 * scheme after a `kafka://` one is another broker of that cluster (`kafka://h1:9092,h2:9092`).
 */
export function joinQueueUrls(urls: readonly string[]): string[] {
  const joined: string[] = [];
  for (const url of urls) {
    const last = joined.at(-1);
    if (!url.includes('://') && last !== undefined && /^kafkas?:\/\//i.test(last)) {
      joined[joined.length - 1] = `${last},${url}`;
    } else joined.push(url);
  }
  return joined;
}

/** One consumer per PUSH_QUEUE_URL entry, chosen by scheme; an unknown scheme fails at startup. */
export function createQueueConsumers(
  config: QueueConfig,
  nodeId: string,
  deps: QueueDriverDeps,
): QueueConsumer[] {
  return joinQueueUrls(config.urls).map((url) => {
    const scheme = url.split(':')[0]!.toLowerCase();
    const driverConfig: QueueDriverConfig = {
      url,
      prefetch: config.prefetch,
      maxDeliver: config.maxDeliver,
      consumerName: nodeId,
    };
    switch (scheme) {
      case 'amqp':
      case 'amqps':
        return createRabbitMqConsumer(driverConfig, deps);
      case 'redis':
      case 'rediss':
        return createRedisStreamsConsumer(driverConfig, deps);
      case 'nats':
        return createNatsJetStreamConsumer(driverConfig, deps);
      case 'kafka':
      case 'kafkas':
        return createKafkaConsumer(driverConfig, deps);
      default:
        throw new PushError(
          'config_invalid',
          `PUSH_QUEUE_URL: no queue driver for "${scheme}:" (amqp, nats, redis, kafka)`,
        );
    }
  });
}
