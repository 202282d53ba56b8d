import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERRORS } from '../../../src/domain/errors.js';

const doc = readFileSync(new URL('../../../docs/reference/errors.md', import.meta.url), 'utf8');

/** The rows of the markdown table under `## <heading>`, as trimmed cells, header excluded. */
function tableRows(heading: string): string[][] {
  const section = doc.split(/^## /m).find((s) => s.startsWith(`${heading}\n`));
  if (!section) throw new Error(`docs/reference/errors.md has no "## ${heading}" section`);
  return section
    .split('\n')
    .filter((l) => l.startsWith('|'))
    .slice(2)
    .map((l) =>
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    );
}

const unquote = (cell: string) => cell.replace(/`/g, '');

describe('docs/reference/errors.md', () => {
  const registry = new Map(tableRows('Registry').map((r) => [unquote(r[0]!), r]));
  const closeCodes = new Set(tableRows('Close codes').map((r) => Number(r[0])));
  const wireCodes = new Set(tableRows('Wire codes').map((r) => unquote(r[0]!)));

  it.each(Object.entries(ERRORS))('documents %s as the registry defines it', (code, spec) => {
    const row = registry.get(code);
    expect(row, `no row for \`${code}\` in the Registry table`).toBeDefined();
    expect(unquote(row![1]!)).toBe(spec.wire);
    expect(Number(row![2])).toBe(spec.status);
    const close = 'closeCode' in spec ? String(spec.closeCode) : '—';
    expect(row![3]).toBe(close);
    expect(wireCodes.has(spec.wire), `wire code ${spec.wire} missing from the Wire codes table`).toBe(true);
    if ('closeCode' in spec) expect(closeCodes.has(spec.closeCode)).toBe(true);
  });

  it('lists no registry code that does not exist', () => {
    for (const code of registry.keys()) expect(Object.keys(ERRORS)).toContain(code);
  });
});
