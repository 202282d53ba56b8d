/**
 * Producers for the bench's queue-ingest scenario: each publishes message bodies (the
 * `/v1/push` body plus `"app"`) where message-push's consumer for that broker reads them,
 * the way a backend service would, and returns once the broker has them.
 */
import { jetstream } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { ProduceAcks, Producer } from '@platformatic/kafka';
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import { PUSH_TOPIC, parseKafkaUrl } from '../src/ingest/queue/kafka-consumer.js';
import { PUSH_QUEUE } from '../src/ingest/rabbitmq-consumer.js';
import { PUSH_STREAM } from '../src/ingest/redis-streams-consumer.js';

export type QueueKind = 'rabbitmq' | 'redis' | 'nats' | 'kafka';

export const DEFAULT_QUEUE_URLS: Record<QueueKind, string> = {
  rabbitmq: 'amqp://guest:guest@127.0.0.1:5672',
  redis: 'redis://127.0.0.1:6379',
  nats: 'nats://127.0.0.1:4222',
  kafka: 'kafka://127.0.0.1:9092',
};

export function queueKind(url: string): QueueKind {
  if (url.startsWith('amqp')) return 'rabbitmq';
  if (url.startsWith('redis')) return 'redis';
  if (url.startsWith('kafka')) return 'kafka';
  return 'nats';
}

const CHUNK = 1000;

export async function publishBodies(url: string, bodies: readonly string[]): Promise<void> {
  const kind = queueKind(url);
  if (kind === 'rabbitmq') {
    const connection = await amqp.connect(url);
    try {
      const ch = await connection.createConfirmChannel();
      await ch.assertQueue(PUSH_QUEUE, { durable: true });
      for (const b of bodies) ch.sendToQueue(PUSH_QUEUE, Buffer.from(b), { persistent: true });
      await ch.waitForConfirms();
    } finally {
      await connection.close().catch(() => {});
    }
  } else if (kind === 'redis') {
    const redis = new Redis(url);
    try {
      for (let at = 0; at < bodies.length; at += CHUNK) {
        const pipeline = redis.pipeline();
        for (const b of bodies.slice(at, at + CHUNK)) pipeline.xadd(PUSH_STREAM, '*', 'body', b);
        for (const [err] of (await pipeline.exec()) ?? []) if (err) throw err;
      }
    } finally {
      redis.disconnect();
    }
  } else if (kind === 'kafka') {
    // Unkeyed: the bench's bodies carry no id, and a record key would become the message id.
    // Records spread over the partitions, as a producer without ordering needs would send them.
    const { brokers, tls, sasl } = parseKafkaUrl(url);
    const producer = new Producer({
      clientId: 'message-push-bench',
      bootstrapBrokers: brokers,
      acks: ProduceAcks.ALL,
      ...(tls ? { tls: {} } : {}),
      ...(sasl ? { sasl } : {}),
    });
    try {
      for (let at = 0; at < bodies.length; at += CHUNK) {
        await producer.send({
          messages: bodies.slice(at, at + CHUNK).map((b) => ({ topic: PUSH_TOPIC, value: Buffer.from(b) })),
        });
      }
    } finally {
      await producer.close();
    }
  } else {
    const u = new URL(url);
    const nc = await natsConnect({ servers: `${u.hostname}:${u.port || 4222}` });
    try {
      const js = jetstream(nc);
      for (let at = 0; at < bodies.length; at += CHUNK) {
        await Promise.all(bodies.slice(at, at + CHUNK).map((b) => js.publish('push.bench', b)));
      }
    } finally {
      await nc.drain();
    }
  }
}
