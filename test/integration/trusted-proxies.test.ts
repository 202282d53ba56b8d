import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';

async function statusFrom(t: TestServer, token: string, xff: string): Promise<number> {
  try {
    const c = await TestClient.connect(`${t.ws}?app=a&token=${token}`, {
      headers: { 'x-forwarded-for': xff },
    });
    await c.close();
    return 101;
  } catch (err) {
    const status = (err as { status?: number }).status;
    if (status === undefined) throw err;
    return status;
  }
}

describe('per-IP handshake limit behind a trusted proxy', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ PUSH_TRUSTED_PROXIES: '127.0.0.1/32', PUSH_HANDSHAKES_PER_SECOND: '2' });
  });
  afterAll(() => t.stop());

  it('counts the address the proxy appended, not what the client wrote to its left', async () => {
    const token = await t.token('xff');
    // One client (1.1.1.1) spoofing a different left-most address each time: one bucket.
    const spoofed = await Promise.all(
      ['6.6.6.1', '6.6.6.2', '6.6.6.3'].map((fake) => statusFrom(t, token, `${fake}, 1.1.1.1`)),
    );
    expect(spoofed.sort()).toEqual([101, 101, 429]);
    // Another client behind the same proxy has its own bucket.
    expect(await statusFrom(t, token, '2.2.2.2')).toBe(101);
  });

  it('counts IPv6 clients per /64', async () => {
    const token = await t.token('v6');
    const statuses = await Promise.all(
      ['2001:db8:7:7::1', '2001:db8:7:7::2', '2001:db8:7:7:ffff::3'].map((addr) =>
        statusFrom(t, token, addr),
      ),
    );
    expect(statuses.sort()).toEqual([101, 101, 429]);
    expect(await statusFrom(t, token, '2001:db8:7:8::1')).toBe(101);
  });
});

describe('without trusted proxies X-Forwarded-For is ignored', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ PUSH_HANDSHAKES_PER_SECOND: '2' });
  });
  afterAll(() => t.stop());

  it('every handshake from this peer shares one bucket, whatever the header says', async () => {
    const token = await t.token('noxff');
    const statuses = await Promise.all(['3.3.3.1', '3.3.3.2', '3.3.3.3'].map((a) => statusFrom(t, token, a)));
    expect(statuses.sort()).toEqual([101, 101, 429]);
  });
});
