import { SignJWT, UnsecuredJWT } from 'jose';

/**
 * Hand-crafted client tokens for negative handshake tests: the server's own minting helper
 * only makes good tokens, these make the ones a hostile or buggy client would present.
 */

const nowSec = () => Math.floor(Date.now() / 1000);
const key = (secret: string) => new TextEncoder().encode(secret);

export interface RawTokenOptions {
  /** Signing secret (HS256). */
  secret: string;
  sub?: string;
  /** Absolute exp in seconds; `null` leaves the claim out. Default: an hour from now. */
  exp?: number | null;
  platform?: string;
}

/** An HS256 token with full control over `exp` (past, absent, ...). */
export function hsToken(o: RawTokenOptions): Promise<string> {
  const claims: Record<string, unknown> = {};
  if (o.platform) claims.platform = o.platform;
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuedAt();
  if (o.sub !== undefined) jwt = jwt.setSubject(o.sub);
  const exp = o.exp === undefined ? nowSec() + 3600 : o.exp;
  if (exp !== null) jwt = jwt.setExpirationTime(exp);
  return jwt.sign(key(o.secret));
}

/** A token that expired `agoSeconds` ago (signed with the right key). */
export function expiredToken(secret: string, sub: string, agoSeconds = 60): Promise<string> {
  return hsToken({ secret, sub, exp: nowSec() - agoSeconds });
}

/** A validly shaped token without the required `exp` claim. */
export function tokenWithoutExp(secret: string, sub: string): Promise<string> {
  return hsToken({ secret, sub, exp: null });
}

/** `{"alg":"none"}` with an empty signature: must never be accepted. */
export function algNoneToken(sub: string): string {
  return new UnsecuredJWT({})
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(nowSec() + 3600)
    .encode();
}
