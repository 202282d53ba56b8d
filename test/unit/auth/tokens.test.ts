import { createHmac, generateKeyPairSync } from 'node:crypto';
import { SignJWT, UnsecuredJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createTokenVerifier, signClientToken, verifyClientToken } from '../../../src/auth/tokens.js';
import { isPushError } from '../../../src/domain/errors.js';

const SECRET = 'app-secret-for-token-tests';
const nowSec = () => Math.floor(Date.now() / 1000);
const hmacKey = (secret: string) => new TextEncoder().encode(secret);

/** The PushError code and message a verification (or building the verifier) failed with. */
function refusal(token: string, alg = 'HS256', key = SECRET) {
  try {
    verifyClientToken(token, createTokenVerifier(alg, key));
  } catch (err) {
    if (isPushError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('token was accepted');
}

describe('client tokens', () => {
  it('a token minted by signClientToken verifies to its user, expiry, platform and topics', async () => {
    const token = await signClientToken({
      secret: SECRET,
      userId: 'alice',
      ttlSeconds: 600,
      platform: 'ios',
      topics: ['room:*'],
    });
    const claims = verifyClientToken(token, createTokenVerifier('HS256', SECRET));
    expect(claims.userId).toBe('alice');
    expect(claims.platform).toBe('ios');
    expect(claims.topics).toEqual(['room:*']);
    expect(Math.abs(claims.exp - (Date.now() + 600_000))).toBeLessThan(2000);
  });

  it('without platform and topics claims: platform "unknown", topics null', async () => {
    const token = await signClientToken({ secret: SECRET, userId: 'bob', ttlSeconds: 60 });
    const claims = verifyClientToken(token, createTokenVerifier('HS256', SECRET));
    expect(claims).toMatchObject({ userId: 'bob', platform: 'unknown', topics: null });
  });

  it('expired → token_expired', async () => {
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('u')
      .setIssuedAt(nowSec() - 120)
      .setExpirationTime(nowSec() - 60)
      .sign(hmacKey(SECRET));
    expect(refusal(token).code).toBe('token_expired');
  });

  it('wrong key → unauthorized, signature mismatch', async () => {
    const token = await signClientToken({ secret: 'another-secret', userId: 'u', ttlSeconds: 60 });
    expect(refusal(token)).toEqual({
      code: 'unauthorized',
      message: 'invalid token: signature mismatch',
    });
  });

  it('alg none, and another HMAC algorithm than the app’s → unauthorized', async () => {
    const none = new UnsecuredJWT({})
      .setSubject('u')
      .setExpirationTime(nowSec() + 60)
      .encode();
    expect(refusal(none).code).toBe('unauthorized');
    const hs512 = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS512' })
      .setSubject('u')
      .setExpirationTime(nowSec() + 60)
      .sign(hmacKey(SECRET));
    expect(refusal(hs512)).toEqual({
      code: 'unauthorized',
      message: 'invalid token: algorithm not allowed',
    });
  });

  it('missing exp or sub, a bad sub, platform or topics → unauthorized', async () => {
    const sign = (claims: Record<string, unknown>, sub?: string, exp: number | null = nowSec() + 60) => {
      let jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' });
      if (sub !== undefined) jwt = jwt.setSubject(sub);
      if (exp !== null) jwt = jwt.setExpirationTime(exp);
      return jwt.sign(hmacKey(SECRET));
    };
    for (const token of [
      await sign({}, 'u', null),
      await sign({}),
      await sign({}, 'bad user\n'),
      await sign({ platform: 'x'.repeat(200) }, 'u'),
      await sign({ topics: 'room:*' }, 'u'),
      await sign({ topics: [1] }, 'u'),
    ]) {
      expect(refusal(token).code).toBe('unauthorized');
    }
  });

  it('a critical header the server does not understand → unauthorized', async () => {
    // Signed by hand: jose itself refuses to sign with an extension it does not know.
    const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const sign = (header: object) => {
      const input = `${part(header)}.${part({ sub: 'u', exp: nowSec() + 60 })}`;
      return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
    };
    const plain = verifyClientToken(sign({ alg: 'HS256' }), createTokenVerifier('HS256', SECRET));
    expect(plain.userId).toBe('u');
    expect(refusal(sign({ alg: 'HS256', crit: ['exp-ext'], 'exp-ext': true }))).toEqual({
      code: 'unauthorized',
      message: 'invalid token: unsupported critical header',
    });
  });

  it('garbage → unauthorized, malformed', async () => {
    for (const token of ['', 'abc', 'a.b.c', `${'x'.repeat(20)}.${'y'.repeat(20)}.`]) {
      expect(refusal(token)).toEqual({ code: 'unauthorized', message: 'invalid token: malformed' });
    }
  });

  it('RS256 and ES256 apps verify with the public key, and refuse a token MACed with the PEM as an HMAC secret', async () => {
    for (const [alg, type, options] of [
      ['RS256', 'rsa', { modulusLength: 2048 }],
      ['ES256', 'ec', { namedCurve: 'P-256' }],
    ] as const) {
      const { privateKey, publicKey } = generateKeyPairSync(
        type as 'rsa',
        options as { modulusLength: number },
      );
      const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const good = await new SignJWT({ platform: 'web' })
        .setProtectedHeader({ alg })
        .setSubject('carol')
        .setExpirationTime(nowSec() + 60)
        .sign(privateKey);
      const claims = verifyClientToken(good, createTokenVerifier(alg, pem));
      expect(claims).toMatchObject({ userId: 'carol', platform: 'web' });
      // Algorithm confusion: the public key (known to anyone) used as an HS256 secret.
      const forged = await new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('carol')
        .setExpirationTime(nowSec() + 60)
        .sign(hmacKey(pem));
      expect(refusal(forged, alg, pem).code).toBe('unauthorized');
    }
  });

  it('a public key that cannot serve the algorithm, or an unsupported algorithm → bad_request', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ecPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    for (const [alg, key] of [
      ['RS256', 'not a key'],
      ['RS256', ecPem],
      ['PS256', ecPem],
    ] as const) {
      expect(refusal('a.b.c', alg, key), `${alg} with ${key.slice(0, 12)}`).toMatchObject({
        code: 'bad_request',
      });
    }
  });
});
