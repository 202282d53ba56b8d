import { describe, expect, it } from 'vitest';
import { ERRORS, PushError, toErrorBody } from '../../../src/domain/errors.js';

const WIRE_CODES = [
  'bad_request',
  'unauthorized',
  'forbidden',
  'not_found',
  'method_not_allowed',
  'conflict',
  'payload_too_large',
  'rate_limited',
  'internal',
  'unavailable',
  'unknown_op',
  'kicked',
  'request_timeout',
  'overloaded',
];

describe('error registry', () => {
  it.each(Object.entries(ERRORS))('%s has a documented status, wire code and doc line', (code, spec) => {
    // 408 and 431 only come from the HTTP parser's edges (slow or oversized headers).
    expect([200, 400, 401, 403, 404, 405, 408, 409, 413, 429, 431, 500, 503]).toContain(spec.status);
    expect(WIRE_CODES).toContain(spec.wire);
    expect(spec.doc.length).toBeGreaterThan(5);
    const body = toErrorBody(new PushError(code as keyof typeof ERRORS, 'why'));
    expect(body).toEqual({ error: { code: spec.wire, message: 'why' } });
  });

  it('close codes are the ones docs/reference/errors.md lists (1002 and 1009: protocol v2 framing)', () => {
    const closeCodes = Object.values(ERRORS).flatMap((s) => ('closeCode' in s ? [s.closeCode] : []));
    for (const c of closeCodes)
      expect([1001, 1002, 1008, 1009, 1011, 1013, 4001, 4003, 4008, 4009]).toContain(c);
  });
});
