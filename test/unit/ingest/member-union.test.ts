import { describe, expect, it } from 'vitest';
import { compareIds, memberBatches } from '../../../src/ingest/member-union.js';

const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

describe('member union', () => {
  it('orders ids by UTF-8 bytes, as the stores do (characters past U+FFFF after U+E000–U+FFFF)', () => {
    const ids = ['b', 'a', '\u{1F600}', '\uFFFD', '\uE000', 'é', 'ab', 'a\u{10000}', 'a\uFFFF', ''];
    expect([...ids].sort(compareIds)).toEqual([...ids].sort(byBytes));
  });

  it('merges pages of overlapping groups into distinct ids in order, in batches, after a cursor', async () => {
    const groups: Record<string, string[]> = {
      g1: ['u01', 'u03', 'u05', 'u07', 'u09', 'u10'],
      g2: ['u02', 'u03', 'u04', 'u10', 'u11'],
      g3: [],
      g4: ['u05', '\u{1F600}', '\uFFFD'],
    };
    for (const g of Object.keys(groups)) groups[g]!.sort(byBytes);
    const reads: number[] = [];
    const read = async (group: string, after: string | null, limit: number) => {
      const page = groups[group]!.filter((u) => after === null || byBytes(u, after) > 0).slice(0, limit);
      reads.push(page.length);
      return page;
    };
    const union = [...new Set(Object.values(groups).flat())].sort(byBytes);
    const batches: string[][] = [];
    for await (const b of memberBatches(read, ['g1', 'g2', 'g3', 'g4', 'g1'], null, 4)) batches.push(b);
    expect(batches.flat()).toEqual(union);
    expect(batches.map((b) => b.length)).toEqual([4, 4, 3]);
    // No page is larger than a batch: memory is bounded by groups × batch size.
    expect(Math.max(...reads)).toBeLessThanOrEqual(4);
    const resumed: string[] = [];
    for await (const b of memberBatches(read, ['g1', 'g2', 'g4'], 'u05', 4)) resumed.push(...b);
    expect(resumed).toEqual(union.filter((u) => byBytes(u, 'u05') > 0));
  });
});
