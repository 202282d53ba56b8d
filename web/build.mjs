// Builds the browser side into dist/web: the SDK bundle served at /client.js (global
// `MessagePush`), the demo page and the dashboard. No CDN: everything is bundled here.
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist/web');
const common = { bundle: true, minify: true, sourcemap: true, target: ['es2020'], logLevel: 'warning' };

await mkdir(join(out, 'demo'), { recursive: true });
await mkdir(join(out, 'dashboard'), { recursive: true });
await Promise.all([
  build({
    ...common,
    entryPoints: [join(root, 'client/src/browser.ts')],
    outfile: join(out, 'client.js'),
    format: 'iife',
    globalName: 'MessagePush',
  }),
  build({
    ...common,
    entryPoints: { demo: join(root, 'web/demo/demo.ts') },
    outdir: join(out, 'demo'),
    format: 'esm',
  }),
  build({
    ...common,
    entryPoints: { dashboard: join(root, 'web/dashboard/main.tsx') },
    outdir: join(out, 'dashboard'),
    format: 'esm',
    jsx: 'automatic',
    jsxImportSource: 'preact',
  }),
  copyFile(join(root, 'web/demo/index.html'), join(out, 'demo/index.html')),
  copyFile(join(root, 'web/demo/demo.css'), join(out, 'demo/demo.css')),
  copyFile(join(root, 'web/dashboard/index.html'), join(out, 'dashboard/index.html')),
]);
