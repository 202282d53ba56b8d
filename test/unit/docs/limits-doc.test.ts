import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseDuration, SETTINGS } from '../../../src/config.js';

const doc = readFileSync(new URL('../../../docs/reference/limits.md', import.meta.url), 'utf8');

/** Settings that bound what a client, a request or the process may do: each one is a limit. */
const LIMIT =
  /max|PerSecond|PerIp|Rate$|Timeout|Retention|Prefetch|MaxDeliver|heartbeat|resend|overload|Retries/i;
const limits = SETTINGS.filter((s) => LIMIT.test(s.key));

/** Table rows of the limits page: [limit, setting, default, past it]. */
const rows = doc
  .split('\n')
  .filter((line) => line.startsWith('| ') && !line.startsWith('| limit') && !line.startsWith('| ---'))
  .map((line) => line.slice(2, -2).split(' | '));

/** The first number of a cell, in the setting's unit (ms for durations): `15000` ms, 7 days, `10s`. */
function firstValue(cell: string, duration: boolean): number | undefined {
  const m = /(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|days?)?\b/.exec(cell.replaceAll('`', ''));
  if (!m) return undefined;
  if (!duration) return Number(m[1]);
  return parseDuration(`${m[1]}${(m[2] ?? 'ms').replace(/^days?$/, 'd')}`);
}

describe('docs/reference/limits.md', () => {
  it('has a row for every limit setting', () => {
    expect(limits.length).toBeGreaterThan(15);
    const missing = limits.filter((s) => !rows.some((r) => r[1]?.includes(`\`${s.env}\``)));
    expect(missing.map((s) => s.env)).toEqual([]);
  });

  it("states each limit's default as the settings table does", () => {
    const mismatched: string[] = [];
    for (const s of limits) {
      // A row shared by two settings states both defaults in prose; the single ones are checked.
      const row = rows.find((r) => r[1] === `\`${s.env}\`` || r[1]?.startsWith(`\`${s.env}\` (`));
      if (!row || s.default === undefined) continue;
      const duration = s.kind === 'duration';
      const documented = firstValue(row[2]!, duration);
      const configured = firstValue(String(s.default), duration);
      if (documented !== configured) mismatched.push(`${s.env}: ${row[2]} vs ${s.default}`);
    }
    expect(mismatched).toEqual([]);
  });
});
