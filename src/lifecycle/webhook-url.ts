import { lookup } from 'node:dns';
import ipaddr from 'ipaddr.js';
import { PushError } from '../domain/errors.js';

/**
 * SSRF care for hand-off webhooks: only http(s) URLs, and unless private addresses are
 * allowed, none that name or resolve to loopback, private, link-local, unique-local,
 * carrier-grade NAT, multicast or unspecified addresses. The check runs when the URL is set
 * and again inside every connection (the sender's DNS lookup), so a name that later
 * resolves elsewhere (DNS rebinding) is refused too.
 */

export const MAX_WEBHOOK_URL = 2048;

/** Only ordinary public unicast addresses are allowed. */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  let ip = ipaddr.parse(address);
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) {
    ip = (ip as ipaddr.IPv6).toIPv4Address();
  }
  return ip.range() === 'unicast';
}

/** Parses and checks a URL's form (400 otherwise); addresses are checked by `checkWebhookTarget`. */
export function parseWebhookUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new PushError('bad_request', 'url: not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new PushError('bad_request', 'url: only http and https URLs');
  }
  if (url.username || url.password) throw new PushError('bad_request', 'url: no credentials in the URL');
  return url;
}

/** Resolves the host and refuses it when any address it has is not public (unless allowed). */
export async function checkWebhookTarget(url: URL, allowPrivate: boolean): Promise<void> {
  if (allowPrivate) return;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: string[];
  try {
    addresses = ipaddr.isValid(host) ? [host] : (await lookupAll(host)).map((a) => a.address);
  } catch {
    throw new PushError('bad_request', `url: cannot resolve ${host}`);
  }
  if (addresses.length === 0 || !addresses.every(isPublicAddress)) {
    throw new PushError('bad_request', 'url: private, loopback and link-local addresses are not allowed');
  }
}

function lookupAll(host: string): Promise<{ address: string; family: number }[]> {
  return new Promise((resolve, reject) =>
    lookup(host, { all: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))),
  );
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | { address: string; family: number }[],
  family?: number,
) => void;

/**
 * A `dns.lookup` for the sender's connections that fails on non-public addresses, so the
 * address connected to is the one checked.
 */
export function guardedLookup(
  hostname: string,
  options: { all?: boolean; family?: number | string },
  callback: LookupCallback,
): void {
  lookup(hostname, { ...options, all: true } as { all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    const bad = addresses.find((a) => !isPublicAddress(a.address));
    if (bad) {
      const refused = Object.assign(new Error(`webhook host ${hostname} resolves to ${bad.address}`), {
        code: 'EPRIVATEADDR',
      });
      return callback(refused, []);
    }
    if (options.all) return callback(null, addresses);
    const first = addresses[0]!;
    callback(null, first.address, first.family);
  });
}
