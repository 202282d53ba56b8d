import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';

function url(t: TestServer, path: string, query: Record<string, string>): string {
  return `ws://127.0.0.1:${t.port}${path}?${new URLSearchParams(query)}`;
}

/** Opens a socket and returns the platform presence shows for it, or the refusal status. */
async function platformOf(
  t: TestServer,
  user: string,
  path: string,
  bearer: string,
): Promise<string | number> {
  let c: TestClient;
  try {
    c = await TestClient.connect(url(t, path, { Authorization: `Bearer ${bearer}`, 'auth-app-id': 'a' }));
  } catch (err) {
    const status = (err as { status?: number }).status;
    if (status === undefined) throw err;
    return status;
  }
  const w = await c.next((f) => f.op === 'welcome');
  const p = await t.api('GET', `/v1/users/${user}/presence`);
  await c.close();
  return p.body.connections.find((x: { connection_id: string }) => x.connection_id === w.connection_id)
    .platform;
}

describe('platform comes from the token', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  const SEED = '/message-push/v1/message';

  it('on the seed path a prefix fills in a token without a platform claim', async () => {
    expect(await platformOf(t, 'p1', SEED, `pc:${await t.token('p1')}`)).toBe('pc');
  });

  it('on the seed path a prefix equal to the claim is accepted, a different one → 401', async () => {
    const mobile = await t.token('p2', { platform: 'mobile' });
    expect(await platformOf(t, 'p2', SEED, `mobile:${mobile}`)).toBe('mobile');
    expect(await platformOf(t, 'p2', SEED, `pc:${mobile}`)).toBe(401);
  });

  it('on other paths the prefix does not count: the token decides', async () => {
    const mobile = await t.token('p3', { platform: 'mobile' });
    expect(await platformOf(t, 'p3', '/v1/ws', `pc:${mobile}`)).toBe('mobile');
    expect(await platformOf(t, 'p3', '/v1/ws', `pc:${await t.token('p3')}`)).toBe('unknown');
  });

  it('push_connections labels stay bounded: unknown platforms count as "other"', async () => {
    const clients = await Promise.all(
      ['zz-1', 'zz-2', 'web'].map(async (platform, i) =>
        TestClient.open(t.ws, { app: 'a', token: await t.token(`m${i}`, { platform }) }),
      ),
    );
    const text = await (await fetch(`${t.http}/metrics`)).text();
    expect(text).toMatch(/push_connections\{platform="other"\} 2/);
    expect(text).toMatch(/push_connections\{platform="web"\} 1/);
    expect(text).not.toContain('zz-1');
    for (const c of clients) await c.close();
  });
});
