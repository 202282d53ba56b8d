import { describe, expect, it } from 'vitest';
import { joinQueueUrls } from '../../../src/ingest/create-queue-consumers.js';
import { parseKafkaUrl } from '../../../src/ingest/queue/kafka-consumer.js';
import { retryDelay } from '../../../src/ingest/queue/queue-driver.js';

describe('queue URLs', () => {
  it('PUSH_QUEUE_URL entries without a scheme after a kafka:// one are more brokers of that cluster', () => {
    // What config.ts makes of "kafka://k1:9092,k2:9092,amqp://rabbit,kafka://k3:9092,k4:9092".
    expect(
      joinQueueUrls(['kafka://k1:9092', 'k2:9092', 'amqp://rabbit', 'kafka://k3:9092', 'k4:9092']),
    ).toEqual(['kafka://k1:9092,k2:9092', 'amqp://rabbit', 'kafka://k3:9092,k4:9092']);
    expect(joinQueueUrls(['nats://n:4222', 'redis://r:6379'])).toEqual(['nats://n:4222', 'redis://r:6379']);
  });

  it('a Kafka URL gives brokers, SASL PLAIN credentials (URL-decoded) and TLS for kafkas://', () => {
    expect(parseKafkaUrl('kafka://127.0.0.1:9092')).toEqual({ brokers: ['127.0.0.1:9092'], tls: false });
    expect(parseKafkaUrl('kafkas://app:p%40ss@k1:9093,k2:9093/')).toEqual({
      brokers: ['k1:9093', 'k2:9093'],
      tls: true,
      sasl: { mechanism: 'PLAIN', username: 'app', password: 'p@ss' },
    });
  });

  it('a malformed Kafka URL is refused naming PUSH_QUEUE_URL, the password masked', () => {
    for (const bad of [
      'kafka://',
      'kafka://host',
      'kafka://u:secret@host',
      'kafka://h:9092,',
      'kafka://h:x',
    ]) {
      expect(() => parseKafkaUrl(bad)).toThrow(/PUSH_QUEUE_URL/);
    }
    expect(() => parseKafkaUrl('kafka://u:secret@host')).toThrow(/kafka:\/\/u:\*\*\*@host/);
    expect(() => parseKafkaUrl('kafka://u:secret@host')).not.toThrow(/secret/);
  });

  it('a failed push is retried after 1 s, doubling per delivery, at most 30 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map(retryDelay)).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  });
});
