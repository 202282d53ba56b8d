import { afterAll, beforeAll, expect, it } from 'vitest';
import { createNatsBus } from '../../src/bus/nats-bus.js';
import { isPushError } from '../../src/domain/errors.js';
import { createLogger } from '../../src/observability/logger.js';
import { natsConnectOptions } from '../../src/util/nats-url.js';
import { describeWithServices } from '../helpers/services.js';
import { type Backend, startNatsWithToken } from '../helpers/tls-backends.js';

it('reads user and password, or a lone token, from the URL', () => {
  expect(natsConnectOptions('nats://127.0.0.1:4223')).toEqual({ servers: '127.0.0.1:4223' });
  expect(natsConnectOptions('nats://me:p%40ss@nats.local')).toEqual({
    servers: 'nats.local:4222',
    user: 'me',
    pass: 'p@ss',
  });
  expect(natsConnectOptions('nats://s3cr%2Ft@nats.local:4300')).toEqual({
    servers: 'nats.local:4300',
    token: 's3cr/t',
  });
});

await describeWithServices(
  [],
  'the NATS bus presents the token a nats://token@host URL carries',
  () => {
    const token = `tok-${Math.random().toString(36).slice(2)}`;
    const log = createLogger('silent');
    let nats: Backend;
    beforeAll(async () => {
      nats = await startNatsWithToken(token);
    });
    afterAll(() => nats.stop());

    it('connects with the right token and refuses a start with a wrong one', async () => {
      const bus = await createNatsBus(`nats://${token}@127.0.0.1:${nats.port}`, 'node-a', log);
      await expect(bus.ready()).resolves.toBeUndefined();
      await bus.close();
      const refused = await createNatsBus(`nats://wrong-token@127.0.0.1:${nats.port}`, 'node-b', log).then(
        async (b) => {
          await b.close();
          return null;
        },
        (err: unknown) => err,
      );
      expect(isPushError(refused) && refused.code).toBe('config_invalid');
    });
  },
  { binaries: ['nats-server'] },
);
