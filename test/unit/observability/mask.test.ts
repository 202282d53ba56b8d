import { describe, expect, it } from 'vitest';
import { createHttpServer } from '../../../src/api/http-server.js';
import { registerOperationRoutes } from '../../../src/api/routes/operations.js';
import { describeConfig, loadConfig } from '../../../src/config.js';
import { createLogger } from '../../../src/observability/logger.js';
import { maskCredentials } from '../../../src/observability/mask.js';
import { createMetrics } from '../../../src/observability/metrics.js';

describe('credentials never reach the logs in clear', () => {
  it.each([
    ['redis://:hunter2@cache:6379/0', 'redis://:***@cache:6379/0'],
    ['redis://default:hunter2@cache:6379', 'redis://default:***@cache:6379'],
    ['rediss://user:p%40ss@cache:6380', 'rediss://user:***@cache:6380'],
    ['nats://s3cr3t-token@nats:4222', 'nats://***@nats:4222'],
    ['amqps://guest:guest@rabbit/vhost', 'amqps://guest:***@rabbit/vhost'],
    [
      'mysql://push:pw@db:3306/push?ssl=true&password=again',
      'mysql://push:***@db:3306/push?ssl=true&password=***',
    ],
    ['kafka://broker:9092?token=abc&x=1', 'kafka://broker:9092?token=***&x=1'],
    ['nats://nats:4222', 'nats://nats:4222'],
  ])('%s → %s', (url, masked) => {
    expect(maskCredentials(url)).toBe(masked);
  });

  it('the start-up configuration masks every backend URL', () => {
    const config = loadConfig({
      env: {
        PUSH_DB_URL: 'mysql://push:dbpw@db/push',
        PUSH_BUS_URL: 'nats://bustoken@nats:4222',
        PUSH_QUEUE_URL: 'redis://:qpw@cache:6379',
      },
    });
    const text = JSON.stringify(describeConfig(config));
    for (const secret of ['dbpw', 'bustoken', 'qpw']) expect(text).not.toContain(secret);
  });

  it('/readyz names the failing part without the raw error text', async () => {
    const app = createHttpServer(createLogger('silent'), 10_000);
    registerOperationRoutes(app, {
      metrics: createMetrics(),
      isStopping: () => false,
      checks: [
        { name: 'store', check: async () => {} },
        {
          name: 'bus',
          check: async () => {
            throw new Error('connect ECONNREFUSED redis://:hunter2@10.0.0.9:6379');
          },
        },
      ],
    });
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    const body = res.json();
    expect(body.error).toEqual({ code: 'unavailable', message: 'not ready: bus' });
    expect(body.checks).toEqual({ store: 'ok', bus: 'unreachable' });
    expect(res.body).not.toMatch(/hunter2|ECONNREFUSED|10\.0\.0\.9/);
    await app.close();
  });
});
