import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../helpers/client.js';
import { APPS, startServer, type TestServer } from '../helpers/server.js';
import { waitUntil } from '../helpers/wait.js';

/**
 * Apps whose token key is a JWKS URL, against a real HTTP server serving the key set: keys are
 * picked by `kid`, the set is cached, fetched again for a new `kid` (after the cooldown) and
 * when its cache age passes, and a set that cannot be fetched is the server's 503, not the client's 401.
 */

type Signer = {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  jwk: JWK;
};

async function keyPair(kid: string, alg: 'RS256' | 'ES256' = 'RS256'): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

function sign(key: Signer, user = 'jwks-user', header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
    .setSubject(user)
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(key.privateKey);
}

/** A key-set endpoint whose keys the test changes, counting fetches. */
class KeySetServer {
  keys: JWK[] = [];
  fetches = 0;
  private readonly http: Server = createServer((_req, res) => {
    this.fetches++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: this.keys }));
  });
  url = '';

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.http.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.http.address() as AddressInfo).port}/.well-known/jwks.json`;
    return this;
  }

  stop(): Promise<void> {
    this.http.closeAllConnections();
    return new Promise((resolve) => this.http.close(() => resolve()));
  }
}

/** The client HTTP API's answer to a bearer token: status and error code. */
async function answer(t: TestServer, token: string, app = 'a'): Promise<{ status: number; code?: string }> {
  const res = await fetch(`${t.http}/v1/me/unread`, {
    headers: { authorization: `Bearer ${token}`, 'auth-app-id': app },
  });
  const body = (await res.json()) as { error?: { code: string } };
  return { status: res.status, ...(body.error ? { code: body.error.code } : {}) };
}

const servers: TestServer[] = [];
const sets: KeySetServer[] = [];
async function setup(env: Record<string, string>, alg: 'RS256' | 'ES256' = 'RS256') {
  const jwks = await new KeySetServer().start();
  sets.push(jwks);
  const t = await startServer(env);
  servers.push(t);
  await t.server.apps.updateTokenKey('a', { jwtAlg: alg, jwtKey: jwks.url });
  return { t, jwks };
}
afterAll(async () => {
  for (const t of servers) await t.stop();
  for (const s of sets) await s.stop();
});

describe('a JWKS token key, fetched again at once for a new kid (PUSH_JWKS_COOLDOWN_MS=0)', () => {
  let t: TestServer;
  let jwks: KeySetServer;
  let k1: Signer;
  let k2: Signer;
  beforeAll(async () => {
    ({ t, jwks } = await setup({ PUSH_JWKS_COOLDOWN_MS: '0' }));
    [k1, k2] = await Promise.all([keyPair('k1'), keyPair('k2')]);
    jwks.keys = [k1.jwk];
  });

  it('verifies a token by its kid over the socket and the HTTP API, fetching the set once', async () => {
    const c = await TestClient.open(t.ws, { app: 'a', token: await sign(k1) });
    await c.close();
    expect(await answer(t, await sign(k1))).toEqual({ status: 200 });
    expect(jwks.fetches).toBe(1);
  });

  it('a rotated-in kid is fetched and accepted; the old kid keeps working while the set lists it', async () => {
    jwks.keys = [k1.jwk, k2.jwk];
    expect(await answer(t, await sign(k2))).toEqual({ status: 200 });
    expect(jwks.fetches).toBe(2);
    expect(await answer(t, await sign(k1))).toEqual({ status: 200 });
    expect(jwks.fetches).toBe(2);
  });

  it('an unknown kid, a forged signature and an HS256 token made with the public key are 401 unauthorized', async () => {
    const stranger = await keyPair('k9');
    expect(await answer(t, await sign(stranger))).toEqual({ status: 401, code: 'unauthorized' });
    // Right kid, wrong private key.
    const forged = await sign({ ...stranger, kid: 'k1' });
    expect(await answer(t, forged)).toEqual({ status: 401, code: 'unauthorized' });
    const confused = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .setSubject('u')
      .setExpirationTime('10m')
      .sign(new TextEncoder().encode(JSON.stringify(k1.jwk)));
    expect(await answer(t, confused)).toEqual({ status: 401, code: 'unauthorized' });
    expect(await answer(t, 'not.a.token')).toEqual({ status: 401, code: 'unauthorized' });
  });

  it('a key set that cannot be fetched answers 503 unavailable, not 401', async () => {
    const gone = await new KeySetServer().start();
    const url = gone.url;
    await gone.stop();
    await t.server.apps.updateTokenKey('b', { jwtAlg: 'RS256', jwtKey: url });
    expect(await answer(t, await sign(k1), 'b')).toEqual({ status: 503, code: 'unavailable' });
  });

  it('rotating the API secret keeps the JWKS key', async () => {
    await t.server.apps.createOrRotate('a', { secret: APPS.a });
    expect(await answer(t, await sign(k2))).toEqual({ status: 200 });
    expect((await t.server.apps.find('a'))!.jwtKey).toBe(jwks.url);
  });
});

describe('a JWKS token key past its cache age (PUSH_JWKS_CACHE_MS) is fetched again', () => {
  it('a kid dropped from the set is refused once the cached set is stale', async () => {
    const { t, jwks } = await setup({ PUSH_JWKS_CACHE_MS: '20ms', PUSH_JWKS_COOLDOWN_MS: '1h' }, 'ES256');
    const [old, fresh] = await Promise.all([keyPair('old', 'ES256'), keyPair('new', 'ES256')]);
    jwks.keys = [old.jwk, fresh.jwk];
    expect(await answer(t, await sign(old))).toEqual({ status: 200 });
    const fetchedAt = Date.now();
    jwks.keys = [fresh.jwk];
    await waitUntil(() => Date.now() > fetchedAt + 20);
    expect(await answer(t, await sign(old))).toEqual({ status: 401, code: 'unauthorized' });
    expect(await answer(t, await sign(fresh))).toEqual({ status: 200 });
    expect(jwks.fetches).toBeGreaterThanOrEqual(2);
  });
});

describe('the default cooldown bounds fetches caused by unknown kids', () => {
  it('a flood of tokens with made-up kids fetches the set once', async () => {
    const { t, jwks } = await setup({}, 'ES256');
    const real = await keyPair('real', 'ES256');
    jwks.keys = [real.jwk];
    expect(await answer(t, await sign(real))).toEqual({ status: 200 });
    for (let i = 0; i < 20; i++) {
      const stranger = await keyPair(`made-up-${i}`, 'ES256');
      expect((await answer(t, await sign(stranger))).status).toBe(401);
    }
    expect(jwks.fetches).toBe(1);
  });
});
