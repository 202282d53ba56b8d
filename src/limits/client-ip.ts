import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { PushError } from '../domain/errors.js';

/**
 * Which peers may speak for a client with `X-Forwarded-For`. Only a peer in the list is
 * believed; the header is read from the right (the hop nearest to us), skipping addresses of
 * trusted proxies, and the first untrusted address is the client. Anything to its left was
 * written by the client itself and could be anything.
 */
export class TrustedProxies {
  private readonly list = new BlockList();
  readonly size: number;

  /** `cidrs`: `10.0.0.0/8`, `2001:db8::/32` or single addresses; a bad entry is `config_invalid`. */
  constructor(cidrs: readonly string[]) {
    for (const entry of cidrs) {
      const [addr, bits] = entry.split('/');
      const family = isIP(addr ?? '');
      const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits);
      if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) {
        throw new PushError('config_invalid', `PUSH_TRUSTED_PROXIES: "${entry}" is not an address or CIDR`);
      }
      this.list.addSubnet(addr!, prefix, family === 6 ? 'ipv6' : 'ipv4');
    }
    this.size = cidrs.length;
  }

  isTrusted(address: string): boolean {
    const plain = unmapped(address);
    const family = isIP(plain);
    return family !== 0 && this.list.check(plain, family === 6 ? 'ipv6' : 'ipv4');
  }

  /** The client's address given the TCP peer and the X-Forwarded-For header (if any). */
  clientAddress(peer: string, forwardedFor: string | undefined): string {
    let client = unmapped(peer);
    if (!forwardedFor || !this.isTrusted(client)) return client;
    const hops = forwardedFor.split(',').map((h) => h.trim());
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = unmapped(hops[i]!);
      if (isIP(hop) === 0) return client; // garbage: stop at the last address we could believe
      client = hop;
      if (!this.isTrusted(hop)) return hop;
    }
    return client;
  }
}

/** Loopback and private networks: what `PUSH_TRUST_PROXY=true` trusts when no list is given. */
export const PRIVATE_NETWORKS = [
  '127.0.0.0/8',
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '::1/128',
  'fc00::/7',
] as const;

/** `::ffff:1.2.3.4` (an IPv4 peer on a dual-stack socket) is `1.2.3.4`. */
function unmapped(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/**
 * The key per-IP limits count by: the address for IPv4, its /64 for IPv6 (one subscriber
 * usually holds a whole /64, so counting per address would let it rotate past the limit).
 */
export function rateKey(address: string): string {
  if (isIP(address) !== 6) return address;
  const [head = '', tail = ''] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = address.includes('::')
    ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g || '0', 16).toString(16))
    .join(':')}::/64`;
}

/**
 * The uWS engine owns the public port and forwards plain HTTP to Fastify on a private unix
 * socket; those requests carry the real peer in this header. It is believed only on sockets
 * of that private listener (marked with `markBridged`), never from the network.
 */
export const BRIDGE_PEER_HEADER = 'x-push-peer';
const bridged = new WeakSet<object>();

/** Marks a socket of the private listener behind the uWS engine. */
export function markBridged(socket: object): void {
  bridged.add(socket);
}

/** The TCP peer of a request: the socket's, or the one the uWS engine saw for a forwarded request. */
export function peerAddress(req: IncomingMessage): string {
  if (bridged.has(req.socket)) {
    const peer = req.headers[BRIDGE_PEER_HEADER];
    if (typeof peer === 'string') return peer;
  }
  return req.socket.remoteAddress ?? 'unknown';
}
