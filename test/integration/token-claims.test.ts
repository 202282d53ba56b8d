import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../helpers/client.js';
import { APPS, startServer, type TestServer } from '../helpers/server.js';

const now = () => Math.floor(Date.now() / 1000);

function token(claims: Record<string, unknown>, exp: number): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('aud-user')
    .setIssuedAt()
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(APPS.a));
}

async function status(t: TestServer, tk: string): Promise<number> {
  try {
    const c = await TestClient.open(t.ws, { app: 'a', token: tk });
    await c.close();
    return 101;
  } catch (err) {
    const s = (err as { status?: number }).status;
    if (s === undefined) throw err;
    return s;
  }
}

describe('PUSH_JWT_AUDIENCE and PUSH_JWT_CLOCK_TOLERANCE', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ PUSH_JWT_AUDIENCE: 'push.example,other', PUSH_JWT_CLOCK_TOLERANCE: '30s' });
  });
  afterAll(() => t.stop());

  it('accepts a token whose aud names an allowed audience; refuses a wrong or missing aud with 401', async () => {
    expect(await status(t, await token({ aud: 'push.example' }, now() + 600))).toBe(101);
    expect(await status(t, await token({ aud: ['x', 'other'] }, now() + 600))).toBe(101);
    expect(await status(t, await token({ aud: 'someone-else' }, now() + 600))).toBe(401);
    expect(await status(t, await token({}, now() + 600))).toBe(401);
  });

  it('a token expired within the clock tolerance still connects; one expired past it does not', async () => {
    expect(await status(t, await token({ aud: 'push.example' }, now() - 10))).toBe(101);
    expect(await status(t, await token({ aud: 'push.example' }, now() - 120))).toBe(401);
  });
});
