import type { IncomingHttpHeaders } from 'node:http';
import { PushError } from '../domain/errors.js';
import { isValidDeviceId, isValidPlatform } from '../domain/ids.js';
import type { TrustedProxies } from '../limits/client-ip.js';

/** What a client asks for when it opens a socket (or an SSE / long-poll request). */
export interface ClientCredentials {
  readonly appId: string;
  readonly token: string;
  /** From the seed-compatible `Bearer PLATFORM:JWT` form; counts only as `resolvePlatform` says. */
  readonly platform: string | null;
}

export interface HandshakeParams extends ClientCredentials {
  readonly device: string | null;
  readonly since: number | null;
}

/**
 * Reads app, token, device and since from the query or headers, as docs/reference/client-api.md lists them:
 * `app` / `auth-app-id`, `token` / `Authorization: Bearer` (also as a query parameter,
 * the seed's form). Throws 400 / 401 PushErrors.
 */
export function parseHandshake(headers: IncomingHttpHeaders, url: URL): HandshakeParams {
  const credentials = parseCredentials(headers, url);
  const device = url.searchParams.get('device');
  if (device !== null && !isValidDeviceId(device)) {
    throw new PushError('bad_request', 'device: 1..64 of [A-Za-z0-9._:-]');
  }
  return {
    ...credentials,
    device,
    since: parseSince(url.searchParams.get('since') ?? header(headers, 'last-event-id')),
  };
}

export function parseCredentials(headers: IncomingHttpHeaders, url: URL): ClientCredentials {
  const q = url.searchParams;
  const appId = q.get('app') ?? q.get('auth-app-id') ?? header(headers, 'auth-app-id');
  if (!appId) throw new PushError('bad_request', 'app is required (?app= or auth-app-id)');
  let token = q.get('token');
  if (token === null) {
    const auth = q.get('Authorization') ?? q.get('authorization') ?? header(headers, 'authorization');
    const m = auth ? /^Bearer\s+(\S+)\s*$/i.exec(auth) : null;
    token = m ? m[1]! : null;
  }
  if (!token) throw new PushError('unauthorized', 'token is required (?token= or Authorization: Bearer)');
  // A JWT never contains ':', so `pc:eyJ…` is the seed's platform prefix.
  let platform: string | null = null;
  const colon = token.indexOf(':');
  if (colon > 0) {
    platform = token.slice(0, colon);
    token = token.slice(colon + 1);
    if (!isValidPlatform(platform))
      throw new PushError('bad_request', 'platform prefix: 1..32 of [A-Za-z0-9._-]');
  }
  return { appId, token, platform };
}

export function parseSince(value: string | null | undefined): number | null {
  if (value === null || value === undefined || value === '') return null;
  if (!/^\d{1,15}$/.test(value)) throw new PushError('bad_request', 'since must be a non-negative integer');
  return Number(value);
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The client address for per-IP limits, given the TCP peer: X-Forwarded-For only from a
 * trusted proxy (see TrustedProxies).
 */
export function clientIp(peer: string, headers: IncomingHttpHeaders, proxies: TrustedProxies): string {
  return proxies.clientAddress(peer, header(headers, 'x-forwarded-for'));
}
