import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, join } from 'node:path';
import { describe } from 'vitest';

/** Real backends the integration suites talk to, on their standard loopback ports unless overridden. */
export const SERVICES = {
  mysql: { env: 'PUSH_TEST_MYSQL_URL', url: 'mysql://root@127.0.0.1:3306/message_push_test' },
  redis: { env: 'PUSH_TEST_REDIS_URL', url: 'redis://127.0.0.1:6379' },
  rabbitmq: { env: 'PUSH_TEST_RABBITMQ_URL', url: 'amqp://guest:guest@127.0.0.1:5672' },
  nats: { env: 'PUSH_TEST_NATS_URL', url: 'nats://127.0.0.1:4222' },
  kafka: { env: 'PUSH_TEST_KAFKA_URL', url: 'kafka://127.0.0.1:9092' },
} as const;

export type ServiceName = keyof typeof SERVICES;

export function serviceUrl(name: ServiceName): string {
  return process.env[SERVICES[name].env] || SERVICES[name].url;
}

function reachable(url: string, timeoutMs = 1000): Promise<boolean> {
  // A Kafka URL may list several brokers: the first one answers for the cluster here.
  const u = new URL(url.replace(/^(kafka:\/\/[^,/]+),[^/]*/, '$1'));
  const port =
    Number(u.port) ||
    { 'mysql:': 3306, 'redis:': 6379, 'amqp:': 5672, 'nats:': 4222, 'kafka:': 9092 }[u.protocol] ||
    0;
  return new Promise((resolve) => {
    const socket = connect({ host: u.hostname, port, timeout: timeoutMs });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

function onPath(binary: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, binary)));
}

/**
 * `describe` for a suite that needs real services (and, optionally, programs on PATH such
 * as haproxy): skipped (and says so) when one is missing, except in CI (`CI=true` or
 * PUSH_TEST_REQUIRE_SERVICES=1), where a missing one fails the run instead of hiding
 * behind a skip.
 */
export async function describeWithServices(
  names: readonly ServiceName[],
  title: string,
  body: (urls: string[]) => void,
  options: { binaries?: readonly string[] } = {},
): Promise<void> {
  const urls = names.map(serviceUrl);
  const label = `${title} [${[...names, ...(options.binaries ?? [])].join(', ')}]`;
  const required = process.env.CI === 'true' || process.env.PUSH_TEST_REQUIRE_SERVICES === '1';
  const missing: string[] = [];
  for (const [i, name] of names.entries()) {
    if (!(await reachable(urls[i]!)))
      missing.push(`${name} not reachable at ${urls[i]} (set ${SERVICES[name].env})`);
  }
  for (const b of options.binaries ?? []) if (!onPath(b)) missing.push(`${b} not on PATH`);
  if (missing.length === 0) {
    describe(label, () => body(urls));
  } else if (required) {
    describe(label, () => {
      throw new Error(`required here but missing: ${missing.join('; ')}`);
    });
  } else {
    describe.skip(`${label}: ${missing.join('; ')}, skipped`, () => body(urls));
  }
}

/** `describeWithServices` for one service. */
export function describeWithService(
  name: ServiceName,
  title: string,
  body: (url: string) => void,
): Promise<void> {
  return describeWithServices([name], title, ([url]) => body(url!));
}
