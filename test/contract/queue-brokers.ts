import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { nanos, connect as natsConnect } from '@nats-io/transport-node';
import { Admin, Consumer, type Message, ProduceAcks, Producer } from '@platformatic/kafka';
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import { DEAD_SUBJECT, DURABLE, PUSH_SUBJECTS, STREAM } from '../../src/ingest/nats-jetstream-consumer.js';
import { DEAD_TOPIC, GROUP_ID, PUSH_TOPIC, parseKafkaUrl } from '../../src/ingest/queue/kafka-consumer.js';
import { DEAD_QUEUE, PUSH_QUEUE } from '../../src/ingest/rabbitmq-consumer.js';
import { DEAD_STREAM, GROUP, PUSH_STREAM } from '../../src/ingest/redis-streams-consumer.js';
import { waitUntil } from '../helpers/wait.js';

/**
 * A producer's and an operator's view of one broker, for the queue contract: publish bodies
 * where message-push reads them, read its dead letters, and count what its consumer group has
 * not acknowledged. The names are the contract's own (fixed), so each suite starts from reset().
 */
export interface QueueBroker {
  readonly name: 'rabbitmq' | 'nats' | 'redis' | 'kafka';
  readonly url: string;
  /** Nothing queued, nothing unacknowledged, no dead letters seen from here on. */
  reset(): Promise<void>;
  /** Publishes in order; `key` is the partition key where the broker has one (Kafka). */
  publish(items: readonly { body: string | Buffer; key?: string }[]): Promise<void>;
  /** Dead letters written since reset(), parsed, in order. */
  deadLetters(): Promise<any[]>;
  /** Messages published since reset() that the consumer group has not acknowledged (none consuming). */
  unacked(): Promise<number>;
  /** Empties what the tests used and closes: the broker as the driver would find it fresh. */
  close(): Promise<void>;
}

export function queueBroker(name: QueueBroker['name'], url: string): QueueBroker {
  switch (name) {
    case 'rabbitmq':
      return rabbitmq(url);
    case 'nats':
      return nats(url);
    case 'redis':
      return redis(url);
    case 'kafka':
      return kafka(url);
  }
}

function rabbitmq(url: string): QueueBroker {
  const letters: any[] = [];
  const withChannel = async <T>(fn: (ch: amqp.ConfirmChannel) => Promise<T>): Promise<T> => {
    const connection = await amqp.connect(url);
    try {
      return await fn(await connection.createConfirmChannel());
    } finally {
      await connection.close().catch(() => {});
    }
  };
  return {
    name: 'rabbitmq',
    url,
    reset: () =>
      withChannel(async (ch) => {
        letters.length = 0;
        await ch.deleteQueue(PUSH_QUEUE);
        await ch.deleteQueue(DEAD_QUEUE);
        await ch.assertQueue(PUSH_QUEUE, { durable: true });
        await ch.assertQueue(DEAD_QUEUE, { durable: true });
      }),
    publish: (items) =>
      withChannel(async (ch) => {
        for (const { body } of items) ch.sendToQueue(PUSH_QUEUE, Buffer.from(body), { persistent: true });
        await ch.waitForConfirms();
      }),
    deadLetters: () =>
      withChannel(async (ch) => {
        for (;;) {
          const m = await ch.get(DEAD_QUEUE, { noAck: true });
          if (!m) return [...letters];
          letters.push(JSON.parse(m.content.toString()));
        }
      }),
    unacked: () => withChannel(async (ch) => (await ch.checkQueue(PUSH_QUEUE)).messageCount),
    close: () =>
      withChannel(async (ch) => {
        await ch.purgeQueue(PUSH_QUEUE);
        await ch.purgeQueue(DEAD_QUEUE);
      }),
  };
}

function nats(url: string): QueueBroker {
  const withJs = async <T>(fn: (nc: Awaited<ReturnType<typeof natsConnect>>) => Promise<T>): Promise<T> => {
    const nc = await natsConnect({ servers: url });
    try {
      return await fn(nc);
    } finally {
      await nc.close();
    }
  };
  let subject = 'push.contract';
  return {
    name: 'nats',
    url,
    reset: () =>
      withJs(async (nc) => {
        const jsm = await jetstreamManager(nc);
        await jsm.streams.delete(STREAM).catch(() => false);
        await jsm.streams.add({
          name: STREAM,
          subjects: [PUSH_SUBJECTS],
          storage: StorageType.File,
          retention: RetentionPolicy.Limits,
        });
        // As the driver would create it, but with a 2 s ack wait: after a kill -9 the unacked
        // deliveries come back in 2 s, not 30 (the driver uses an existing consumer as it is).
        await jsm.consumers.add(STREAM, {
          durable_name: DURABLE,
          ack_policy: AckPolicy.Explicit,
          ack_wait: nanos(2_000),
          deliver_policy: DeliverPolicy.All,
          filter_subject: PUSH_SUBJECTS,
          max_deliver: -1,
          max_ack_pending: 64,
        });
        subject = `push.contract-${Date.now()}`;
      }),
    publish: (items) =>
      withJs(async (nc) => {
        const js = jetstream(nc);
        for (let at = 0; at < items.length; at += 500) {
          await Promise.all(items.slice(at, at + 500).map(({ body }) => js.publish(subject, body)));
        }
      }),
    deadLetters: () =>
      withJs(async (nc) => {
        const jsm = await jetstreamManager(nc);
        const letters: any[] = [];
        const info = await jsm.streams.info(STREAM);
        for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
          const m = await jsm.streams.getMessage(STREAM, { seq }).catch(() => null);
          if (m?.subject === DEAD_SUBJECT) letters.push(m.json());
        }
        return letters;
      }),
    unacked: () =>
      withJs(async (nc) => {
        const jsm = await jetstreamManager(nc);
        const info = await jsm.consumers.info(STREAM, DURABLE);
        return info.num_pending + info.num_ack_pending;
      }),
    // Not left with the tests' 2 s ack wait: the driver creates stream and consumer afresh.
    close: () =>
      withJs(async (nc) => {
        await (await jetstreamManager(nc)).streams.delete(STREAM).catch(() => false);
      }),
  };
}

function redis(url: string): QueueBroker {
  const r = new Redis(url);
  return {
    name: 'redis',
    url,
    reset: async () => {
      await r.del(PUSH_STREAM, DEAD_STREAM);
    },
    publish: async (items) => {
      for (let at = 0; at < items.length; at += 1_000) {
        const pipeline = r.pipeline();
        for (const { body } of items.slice(at, at + 1_000)) pipeline.xadd(PUSH_STREAM, '*', 'body', body);
        for (const [err] of (await pipeline.exec())!) if (err) throw err;
      }
    },
    deadLetters: async () =>
      (await r.xrange(DEAD_STREAM, '-', '+')).map(([, fields]) => JSON.parse(fields[1]!)),
    unacked: async () => {
      const groups = (await r.xinfo('GROUPS', PUSH_STREAM)) as unknown[][];
      const group = groups.map(pairs).find((g) => g.name === GROUP);
      if (!group) return r.xlen(PUSH_STREAM);
      return Number(group.pending) + Number(group.lag);
    },
    close: async () => {
      await r.del(PUSH_STREAM, DEAD_STREAM);
      r.disconnect();
    },
  };
}

function pairs(row: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i + 1 < row.length; i += 2) out[String(row[i])] = row[i + 1];
  return out;
}

function kafka(url: string): QueueBroker {
  const { brokers } = parseKafkaUrl(url);
  const base = { bootstrapBrokers: brokers, clientId: 'queue-contract' };
  const admin = new Admin(base);
  const producer = new Producer({ ...base, acks: ProduceAcks.ALL });
  const offsets = new Consumer({ ...base, groupId: `queue-contract-offsets-${process.pid}` });
  let deadFrom: bigint[] = [];
  const ends = async (topic: string) => (await offsets.listOffsets({ topics: [topic] })).get(topic) ?? [];
  return {
    name: 'kafka',
    url,
    reset: async () => {
      const existing = new Set(await admin.listTopics());
      const missing = [PUSH_TOPIC, DEAD_TOPIC].filter((t) => !existing.has(t));
      if (missing.length > 0) await admin.createTopics({ topics: missing, partitions: 4, replicas: 1 });
      // The group starts at the end of the topic: earlier tests' records are not this one's. Only
      // an empty group takes new offsets: a server killed by the last test stays a member until
      // its session times out.
      await waitUntil(
        async () => {
          const end = await ends(PUSH_TOPIC);
          const partitionOffsets = end.map((offset, partition) => ({ partition, offset }));
          return admin
            .alterConsumerGroupOffsets({
              groupId: GROUP_ID,
              topics: [{ name: PUSH_TOPIC, partitionOffsets }],
            })
            .then(
              () => true,
              () => false,
            );
        },
        30_000,
        500,
      );
      deadFrom = await ends(DEAD_TOPIC);
    },
    publish: async (items) => {
      for (let at = 0; at < items.length; at += 1_000) {
        await producer.send({
          messages: items.slice(at, at + 1_000).map(({ body, key }) => ({
            topic: PUSH_TOPIC,
            value: Buffer.from(body),
            ...(key !== undefined ? { key: Buffer.from(key) } : {}),
          })),
        });
      }
    },
    deadLetters: async () => {
      const end = await ends(DEAD_TOPIC);
      const want = end.reduce((n, o, p) => n + Number(o - (deadFrom[p] ?? 0n)), 0);
      if (want === 0) return [];
      const reader = new Consumer({ ...base, groupId: `queue-contract-dead-${process.pid}-${Date.now()}` });
      const letters: { partition: number; offset: bigint; value: any }[] = [];
      try {
        const stream = await reader.consume({
          topics: [DEAD_TOPIC],
          mode: 'manual',
          offsets: end.map((_, partition) => ({
            topic: DEAD_TOPIC,
            partition,
            offset: deadFrom[partition] ?? 0n,
          })),
          autocommit: false,
          maxWaitTime: 200,
        });
        for await (const m of stream as AsyncIterable<Message>) {
          if (m.offset < end[m.partition]!) {
            letters.push({ partition: m.partition, offset: m.offset, value: JSON.parse(m.value.toString()) });
          }
          if (letters.length >= want) break;
        }
        await stream.close();
      } finally {
        await reader.close(true);
      }
      return letters
        .sort((a, b) => a.partition - b.partition || Number(a.offset - b.offset))
        .map((l) => l.value);
    },
    unacked: async () => {
      const end = await ends(PUSH_TOPIC);
      const [group] = await admin.listConsumerGroupOffsets({ groups: [GROUP_ID] });
      const committed = new Map<number, bigint>();
      for (const t of group?.topics ?? []) {
        if (t.name !== PUSH_TOPIC) continue;
        for (const p of t.partitions) committed.set(p.partitionIndex, p.committedOffset);
      }
      return end.reduce((n, o, p) => n + Number(o - (committed.get(p) ?? 0n)), 0);
    },
    close: async () => {
      await Promise.allSettled([admin.close(), producer.close(), offsets.close(true)]);
    },
  };
}
