import { describe, expect, it } from 'vitest';
import { rateKey, TrustedProxies } from '../../../src/limits/client-ip.js';

describe('client IP behind proxies', () => {
  const proxies = new TrustedProxies(['10.0.0.0/8', '2001:db8:ffff::/48', '192.0.2.7']);

  it('believes X-Forwarded-For only from a trusted peer', () => {
    expect(proxies.clientAddress('203.0.113.9', '1.2.3.4')).toBe('203.0.113.9');
    expect(proxies.clientAddress('10.1.2.3', '1.2.3.4')).toBe('1.2.3.4');
    expect(proxies.clientAddress('::ffff:10.1.2.3', '1.2.3.4')).toBe('1.2.3.4');
  });

  it('reads from the right, skipping trusted hops; what the client wrote on the left does not count', () => {
    // client spoofs "6.6.6.6", its real address 1.2.3.4 was appended by our edge proxy 192.0.2.7
    expect(proxies.clientAddress('10.0.0.1', '6.6.6.6, 1.2.3.4, 192.0.2.7')).toBe('1.2.3.4');
    expect(proxies.clientAddress('10.0.0.1', '10.9.9.9, 10.8.8.8')).toBe('10.9.9.9');
    expect(proxies.clientAddress('10.0.0.1', '2001:db8:ffff::5, 2001:db8:1::1')).toBe('2001:db8:1::1');
    // Garbage in the header: stop at the last address that could be believed.
    expect(proxies.clientAddress('10.0.0.1', 'hello, 192.0.2.7')).toBe('192.0.2.7');
  });

  it('an empty list trusts nobody', () => {
    expect(new TrustedProxies([]).clientAddress('127.0.0.1', '1.2.3.4')).toBe('127.0.0.1');
  });

  it('refuses entries that are not addresses or CIDRs', () => {
    expect(() => new TrustedProxies(['10.0.0.0/33'])).toThrow(/PUSH_TRUSTED_PROXIES/);
    expect(() => new TrustedProxies(['proxy.local'])).toThrow(/config_invalid|PUSH_TRUSTED_PROXIES/);
  });

  it('per-IP limits count IPv4 per address and IPv6 per /64', () => {
    expect(rateKey('1.2.3.4')).toBe('1.2.3.4');
    expect(rateKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(rateKey('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(rateKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(rateKey('::1')).toBe('0:0:0:0::/64');
    expect(rateKey('2001:0db8:0001:0002::9')).toBe(rateKey('2001:db8:1:2::8'));
  });
});
