import type { QueueConfig } from '../config.js';
import { PushError } from '../domain/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { createNatsJetStreamConsumer } from './nats-jetstream-consumer.js';
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

/** One consumer per PUSH_QUEUE_URL entry, chosen by scheme; an unknown scheme fails at startup. */
export function createQueueConsumers(
  config: QueueConfig,
  nodeId: string,
  deps: QueueDriverDeps,
): QueueConsumer[] {
  return config.urls.map((url) => {
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
      default:
        void driverConfig;
        throw new PushError(
          'config_invalid',
          `PUSH_QUEUE_URL: no queue driver for "${scheme}:" (amqp, nats, redis)`,
        );
    }
  });
}
