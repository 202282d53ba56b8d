import { describe, expect, it } from 'vitest';
import { parseJsonKeepingNumbersAt } from '../../src/ingest/exact-json.js';

describe('exact JSON numbers for seed uids', () => {
  it('keeps number literals at the path as exact text and parses everything else as JSON.parse does', () => {
    const text =
      '{"audience":{"uids":[57098049, 12345678901234567890, "u\\"1"]},"n":12345678901234567890,"s":"9 \\\\ 8","f":-1.5e3}';
    const v = parseJsonKeepingNumbersAt(text, ['audience', 'uids']) as any;
    expect(v.audience.uids).toEqual([
      { exactNumber: '57098049' },
      { exactNumber: '12345678901234567890' },
      'u"1',
    ]);
    expect(v.n).toBe(Number('12345678901234567890')); // what JSON.parse makes of it
    expect(v.s).toBe('9 \\ 8');
    expect(v.f).toBe(-1500);
  });

  it('keeps __proto__ as a plain key', () => {
    const v = parseJsonKeepingNumbersAt('{"__proto__":{"polluted":1},"a":[1]}', ['a']) as any;
    expect(Object.keys(v)).toEqual(['__proto__', 'a']);
    expect(({} as any).polluted).toBeUndefined();
    expect(v.a).toEqual([{ exactNumber: '1' }]);
  });

  it('rejects invalid JSON', () => {
    expect(() => parseJsonKeepingNumbersAt('{"a":', [])).toThrow();
    expect(() => parseJsonKeepingNumbersAt('{"a":01}', [])).toThrow();
  });
});
