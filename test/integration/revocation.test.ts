import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TestClient } from '../helpers/client.js';
import { dropDatabase, withDatabase } from '../helpers/mysql.js';
import { hsToken } from '../helpers/raw-tokens.js';
import { APPS, startServer, type TestServer } from '../helpers/server.js';
import { describeWithServices } from '../helpers/services.js';
import { waitUntil } from '../helpers/wait.js';

async function refusedWith(t: TestServer, token: string): Promise<number | null> {
  try {
    const c = await TestClient.open(t.ws, { app: 'a', token });
    await c.close();
    return null;
  } catch (err) {
    const status = (err as { status?: number }).status;
    if (status === undefined) throw err;
    return status;
  }
}

await describeWithServices(['mysql', 'redis'], 'token revocation across nodes', ([mysqlBase, redisUrl]) => {
  const db = withDatabase(mysqlBase!, `mp_revoke_${randomBytes(4).toString('hex')}`);
  const user = `leaked-${randomBytes(4).toString('hex')}`;
  const nodes: TestServer[] = [];
  const env = (i: number) => ({ PUSH_DB_URL: db, PUSH_BUS_URL: redisUrl!, PUSH_NODE_ID: `rv-${user}-${i}` });

  beforeAll(async () => {
    // One after the other: the first creates the schema.
    nodes.push(await startServer(env(0)));
    nodes.push(await startServer(env(1)));
  }, 60_000);

  afterAll(async () => {
    for (const n of nodes) await n.stop();
    await dropDatabase(db);
  });

  it('revoke on one node closes the user on every node with 4003 and refuses older tokens there, and on a node started later', async () => {
    const [a, b] = nodes as [TestServer, TestServer];
    const old = await hsToken({ secret: APPS.a, sub: user });
    const other = await hsToken({ secret: APPS.a, sub: `${user}-bystander` });
    const onA = await TestClient.open(a.ws, { app: 'a', token: old });
    const onB = await TestClient.open(b.ws, { app: 'a', token: old });
    const bystander = await TestClient.open(b.ws, { app: 'a', token: other });
    await waitUntil(
      async () => (await a.api('GET', `/v1/users/${user}/presence`)).body.connections?.length === 2,
    );

    const res = await a.api('POST', `/v1/users/${user}/revoke`, {});
    expect(res).toEqual({ status: 200, body: { closed: 2 } });
    expect(await onA.closed()).toBe(4003);
    expect(await onB.closed()).toBe(4003);
    expect(bystander.closeCode).toBeNull();

    // The other node heard it over the bus: the old token is refused there (and here).
    await waitUntil(async () => (await refusedWith(b, old)) === 401);
    expect(await refusedWith(a, old)).toBe(401);
    // A refresh with a revoked token is refused as unauthorized; the connection is unchanged.
    const reply = await bystander.request({ op: 'refresh', token: old });
    expect(reply).toMatchObject({ op: 'error', code: 'unauthorized' });
    expect(bystander.closeCode).toBeNull();
    await bystander.close();

    // A node that starts after the revocation reads it from the store.
    const c = await startServer(env(2));
    nodes.push(c);
    expect(await refusedWith(c, old)).toBe(401);

    // Tokens issued after the revocation's second work everywhere.
    const revokedAt = Date.now();
    await waitUntil(() => Math.floor(Date.now() / 1000) * 1000 > revokedAt, 3000);
    const fresh = await hsToken({ secret: APPS.a, sub: user });
    expect(await refusedWith(c, fresh)).toBeNull();
    expect(await refusedWith(b, fresh)).toBeNull();
  });

  it('"before" picks the instant; bad bodies and users are 400, wrong credentials 401', async () => {
    const [a] = nodes as [TestServer];
    const u2 = `${user}-past`;
    const token = await hsToken({ secret: APPS.a, sub: u2 });
    // A revocation of tokens issued before a minute ago leaves this one alone.
    expect((await a.api('POST', `/v1/users/${u2}/revoke`, { before: Date.now() - 60_000 })).status).toBe(200);
    expect(await refusedWith(a, token)).toBeNull();
    // No body at all: revoke as of now.
    expect(await a.api('POST', `/v1/users/${u2}/revoke`)).toEqual({ status: 200, body: { closed: 0 } });
    expect((await a.api('POST', `/v1/users/${u2}/revoke`, { before: -1 })).status).toBe(400);
    expect((await a.api('POST', `/v1/users/${u2}/revoke`, { before: 'soon' })).status).toBe(400);
    expect((await a.api('POST', '/v1/users/%zz/revoke', {})).status).toBe(400);
    const wrong = await fetch(`${a.http}/v1/users/${u2}/revoke`, {
      method: 'POST',
      headers: { authorization: 'Basic YTp3cm9uZw==' },
    });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
  });
});
