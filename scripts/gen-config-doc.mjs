// Writes docs/configuration.md from the settings table (run after `tsc -p tsconfig.build.json`).
import { writeFileSync } from 'node:fs';
import { renderConfigDoc } from '../dist/config-doc.js';

const target = new URL('../docs/configuration.md', import.meta.url);
writeFileSync(target, renderConfigDoc());
console.log(`wrote ${target.pathname}`);
