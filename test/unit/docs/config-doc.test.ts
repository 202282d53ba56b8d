import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SETTINGS } from '../../../src/config.js';
import { renderConfigDoc } from '../../../src/config-doc.js';

const committed = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');

describe('docs/configuration.md', () => {
  it('is what `npm run docs:config` generates from the settings table', () => {
    // On failure: run `npm run docs:config` and commit the result.
    expect(committed).toBe(renderConfigDoc());
  });

  it('has a row for every setting, with its environment variable', () => {
    for (const s of SETTINGS) expect(committed).toContain(`| ${s.key} | \`${s.env}\` |`);
  });

  it('renders a setting added to the table', () => {
    const extra = [...SETTINGS, { key: 'fooBar', env: 'PUSH_FOO_BAR', kind: 'int' as const, doc: 'a | b' }];
    expect(renderConfigDoc(extra)).toContain(
      '| fooBar | `PUSH_FOO_BAR` | `--foo-bar` | integer | — | a \\| b |',
    );
  });
});
