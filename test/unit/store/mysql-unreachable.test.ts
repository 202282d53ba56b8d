import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { isPushError } from '../../../src/domain/errors.js';
import { createMysqlStore } from '../../../src/store/mysql/mysql-store.js';

/**
 * A "MySQL" that hangs up right after the connection opens, as a server refusing a client
 * (or a TLS handshake going wrong) does: the start must fail with config_invalid, not an
 * uncaught 'error' event.
 */
let server: Server;
let port = 0;
beforeAll(async () => {
  server = createServer((socket: Socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

it('a store whose server hangs up at once fails the start with config_invalid', async () => {
  const failure = await createMysqlStore({
    url: `mysql://root@127.0.0.1:${port}/mp_unreachable`,
    sqliteSync: 'normal',
  }).then(
    () => null,
    (err: unknown) => err,
  );
  expect(isPushError(failure) && failure.code).toBe('config_invalid');
});
