import { generateKeyPairSync } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { AppRegistry } from '../../../src/auth/app-registry.js';
import { signClientToken } from '../../../src/auth/tokens.js';
import { isPushError } from '../../../src/domain/errors.js';
import { createSqliteStore, type SqliteStore } from '../../../src/store/sqlite/sqlite-store.js';

const stores: SqliteStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

async function registry() {
  const store = await createSqliteStore({ url: 'sqlite::memory:', sqliteSync: 'normal' });
  stores.push(store);
  return { store, apps: new AppRegistry(store) };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (isPushError(err)) return err.code;
    throw err;
  }
  return 'accepted';
}

describe('app registry: JWT keys', () => {
  it('refuses a public key that cannot serve the algorithm when the app is created, and stores nothing', async () => {
    const { store, apps } = await registry();
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ecPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(await codeOf(apps.createOrRotate('rs', { jwtAlg: 'RS256', jwtKey: 'not a key' }))).toBe(
      'bad_request',
    );
    expect(await codeOf(apps.createOrRotate('rs', { jwtAlg: 'RS256', jwtKey: ecPem }))).toBe('bad_request');
    expect(await store.getApp('rs')).toBeUndefined();
    expect(await codeOf(apps.createOrRotate('es', { jwtAlg: 'ES256', jwtKey: ecPem }))).toBe('accepted');
  });

  it('a stored key that cannot be used fails the app’s token checks with internal; its API secret still works', async () => {
    const { store, apps } = await registry();
    const { secret } = await apps.createOrRotate('hs');
    const record = await store.getApp('hs');
    // As an older version, or a hand edit, could have left it.
    await store.saveApp({ ...record!, jwtAlg: 'RS256', jwtKey: 'not a key' });
    const broken = new AppRegistry(store);
    const token = await signClientToken({ secret, userId: 'u', ttlSeconds: 60 });
    expect(await codeOf(broken.verifyToken('hs', token))).toBe('internal');
    expect(await broken.verifyBasic(`Basic ${Buffer.from(`hs:${secret}`).toString('base64')}`)).toBe('hs');
  });

  it('an HS256 app verifies its own tokens and refuses them for an unknown app', async () => {
    const { apps } = await registry();
    const { secret } = await apps.createOrRotate('hs');
    const token = await signClientToken({ secret, userId: 'u', ttlSeconds: 60 });
    expect((await apps.verifyToken('hs', token)).userId).toBe('u');
    expect(await codeOf(apps.verifyToken('nope', token))).toBe('unknown_app');
  });
});

describe('app registry: secrets and rotation', () => {
  it('generated secrets carry 256 bits; a given secret under 24 characters is refused', async () => {
    const { apps } = await registry();
    const { secret } = await apps.createOrRotate('gen');
    expect(Buffer.from(secret, 'base64url').length).toBeGreaterThanOrEqual(32);
    expect(await codeOf(apps.createOrRotate('weak', { secret: 'secret1' }))).toBe('bad_request');
  });

  it('rotating an RS256 app keeps its algorithm and public key (it does not become HS256 with the new secret)', async () => {
    const { store, apps } = await registry();
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    await apps.createOrRotate('rs', { jwtAlg: 'RS256', jwtKey: pem });
    const { secret } = await apps.createOrRotate('rs');
    const after = await store.getApp('rs');
    expect(after).toMatchObject({ jwtAlg: 'RS256', jwtKey: pem });
    // An HS256 token signed with the new API secret is not accepted for it.
    const forged = await signClientToken({ secret, userId: 'u', ttlSeconds: 60 });
    expect(await codeOf(apps.verifyToken('rs', forged))).toBe('unauthorized');
  });

  it('rotating a default app (the secret is its HS256 key) moves the key to the new secret', async () => {
    const { apps } = await registry();
    const first = await apps.createOrRotate('hs');
    const { secret } = await apps.createOrRotate('hs');
    const fresh = await signClientToken({ secret, userId: 'u', ttlSeconds: 60 });
    expect((await apps.verifyToken('hs', fresh)).userId).toBe('u');
    const stale = await signClientToken({ secret: first.secret, userId: 'u', ttlSeconds: 60 });
    expect(await codeOf(apps.verifyToken('hs', stale))).toBe('unauthorized');
  });
});

describe('app registry: API secrets', () => {
  const basic = (app: string, secret: string) =>
    `Basic ${Buffer.from(`${app}:${secret}`).toString('base64')}`;

  it('a secret verified once is accepted again; a wrong one of the same length and a rotated one are refused', async () => {
    const { apps } = await registry();
    const { secret } = await apps.createOrRotate('a1');
    expect(await apps.verifyBasic(basic('a1', secret))).toBe('a1');
    expect(await apps.verifyBasic(basic('a1', secret))).toBe('a1');
    const wrong = `${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`;
    expect(await codeOf(apps.verifyBasic(basic('a1', wrong)))).toBe('unauthorized');
    expect(await codeOf(apps.verifyBasic(basic('a1', `${secret}x`)))).toBe('unauthorized');
    const rotated = await apps.createOrRotate('a1');
    expect(await codeOf(apps.verifyBasic(basic('a1', secret)))).toBe('unauthorized');
    expect(await apps.verifyBasic(basic('a1', rotated.secret))).toBe('a1');
  });
});
