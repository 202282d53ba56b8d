import { describe, expect, it } from 'vitest';
import { isValidDeviceId, isValidOpaqueId, isValidTopic, newMessageId } from '../../../src/domain/ids.js';
import {
  fingerprintPush,
  isAddressed,
  type PushRequest,
  recipientsOf,
  visibleStatus,
} from '../../../src/domain/message.js';

describe('identifiers (docs/reference/server-api.md "Words")', () => {
  it('accepts 1..128 code points including emoji and RTL text', () => {
    expect(isValidOpaqueId('u')).toBe(true);
    expect(isValidOpaqueId('😀'.repeat(128))).toBe(true);
    expect(isValidOpaqueId('שלום-עולם')).toBe(true);
  });

  it('refuses empty, too long, control characters and lone surrogates', () => {
    expect(isValidOpaqueId('')).toBe(false);
    expect(isValidOpaqueId('😀'.repeat(129))).toBe(false);
    expect(isValidOpaqueId('a\u0000b')).toBe(false);
    expect(isValidOpaqueId('a\u007fb')).toBe(false);
    expect(isValidOpaqueId('a\u0085b')).toBe(false);
    expect(isValidOpaqueId('a\ud800b')).toBe(false);
    expect(isValidOpaqueId(42)).toBe(false);
  });

  it('limits devices and topics to [A-Za-z0-9._:-]', () => {
    expect(isValidDeviceId('phone-1:a.b_c')).toBe(true);
    expect(isValidDeviceId('bad device')).toBe(false);
    expect(isValidDeviceId('x'.repeat(65))).toBe(false);
    expect(isValidTopic('room:1')).toBe(true);
    expect(isValidTopic('$all')).toBe(false);
  });
});

const base: PushRequest = {
  id: 'x',
  type: 'message',
  to: { users: ['u1'] },
  platforms: null,
  data: { a: 1, b: { c: 2, d: 3 } },
  dataJson: '',
  ttl: null,
};

describe('generated message ids', () => {
  it('are UUIDv7 strings, unique across pool refills, ordered by the millisecond they were made in', async () => {
    const first = Array.from({ length: 1000 }, () => newMessageId()); // > one pool of random bytes
    expect(new Set(first).size).toBe(1000);
    for (const id of first) {
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(isValidOpaqueId(id)).toBe(true);
    }
    const before = Date.now();
    await new Promise((r) => setTimeout(r, 2));
    const later = newMessageId();
    // The first 48 bits are the creation time in ms: a later millisecond sorts after.
    expect(Number.parseInt(later.replace('-', '').slice(0, 12), 16)).toBeGreaterThan(before);
    expect([...first, later].sort().at(-1)).toBe(later);
  });
});

describe('message domain', () => {
  it('fingerprints ignore key order but not values (idempotency "same body")', () => {
    const reordered = { ...base, data: { b: { d: 3, c: 2 }, a: 1 } };
    expect(fingerprintPush(reordered)).toBe(fingerprintPush(base));
    expect(fingerprintPush({ ...base, data: { a: 2, b: { c: 2, d: 3 } } })).not.toBe(fingerprintPush(base));
    expect(fingerprintPush({ ...base, ttl: 5 })).not.toBe(fingerprintPush(base));
    expect(fingerprintPush({ ...base, to: { users: ['u2'] } })).not.toBe(fingerprintPush(base));
  });

  it('dedupes users and merges device targets per user', () => {
    expect(recipientsOf({ users: ['a', 'b', 'a'] })).toEqual([
      { user: 'a', devices: null },
      { user: 'b', devices: null },
    ]);
    expect(
      recipientsOf({
        devices: [
          { user: 'a', device: 'd1' },
          { user: 'a', device: 'd2' },
          { user: 'b', device: 'd1' },
        ],
      }),
    ).toEqual([
      { user: 'a', devices: ['d1', 'd2'] },
      { user: 'b', devices: ['d1'] },
    ]);
    expect(recipientsOf({ all: true })).toEqual([]);
  });

  it('shows expiry as soon as the ttl has passed, but never un-acks and never expires ttl-0 deliveries', () => {
    expect(visibleStatus('pending', 1000, 1, 999)).toBe('pending');
    expect(visibleStatus('pending', 1000, 1, 1000)).toBe('expired');
    expect(visibleStatus('sent', 1000, 1, 2000)).toBe('expired');
    expect(visibleStatus('failed', 1000, 1, 2000)).toBe('expired');
    expect(visibleStatus('acked', 1000, 1, 2000)).toBe('acked');
    expect(visibleStatus('sent', null, 0, 2000)).toBe('sent');
    expect(visibleStatus('pending', null, null, 9e15)).toBe('pending');
  });

  it('addresses connections by platform filter and device list', () => {
    expect(isAddressed(null, null, 'web', 'd1')).toBe(true);
    expect(isAddressed(['mobile'], null, 'web', 'd1')).toBe(false);
    expect(isAddressed(['web', 'mobile'], null, 'web', 'd1')).toBe(true);
    expect(isAddressed(null, ['d2'], 'web', 'd1')).toBe(false);
  });
});
