import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { hidden } from '../schemas.js';

/** Where `npm run build` puts the browser bundles (the same from src/ under tests and from dist/). */
export const DEFAULT_WEB_ROOT = fileURLToPath(new URL('../../../dist/web/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** A file name: word characters, dots between them, an extension; no path, no `..`. */
const FILE_NAME = /^[\w-]+(\.[\w-]+)+$/;

export interface WebRouteDeps {
  readonly root?: string;
  /** The dashboard page is only served when PUSH_ADMIN_TOKEN is set. */
  readonly dashboardEnabled: boolean;
}

/**
 * The browser side, built by `npm run build` into dist/web: `/client.js` (the SDK as the
 * global `MessagePush`), `/demo` and `/dashboard` with their assets. `/` leads to the demo.
 */
export function registerWebRoutes(app: FastifyInstance, deps: WebRouteDeps): void {
  const root = deps.root ?? DEFAULT_WEB_ROOT;

  const send = async (reply: FastifyReply, path: string) => {
    let body: Buffer;
    try {
      body = await readFile(join(root, path));
    } catch {
      return reply
        .status(404)
        .type('text/plain; charset=utf-8')
        .send(`not found: ${path} (the web assets are built by "npm run build")`);
    }
    return reply
      .type(TYPES[extname(path)] ?? 'application/octet-stream')
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .send(body);
  };

  const page = (name: 'demo' | 'dashboard') => {
    app.get(`/${name}`, hidden, (_req, reply) => {
      if (name === 'dashboard' && !deps.dashboardEnabled) {
        return reply
          .status(403)
          .type('text/plain; charset=utf-8')
          .send('The dashboard is disabled: set PUSH_ADMIN_TOKEN (at least 16 characters) and restart.');
      }
      return send(reply, `${name}/index.html`);
    });
    app.get(`/${name}/:file`, hidden, (req, reply) => {
      const { file } = req.params as { file: string };
      if (!FILE_NAME.test(file)) return reply.status(404).send();
      if (name === 'dashboard' && !deps.dashboardEnabled) return reply.status(403).send();
      return send(reply, `${name}/${file}`);
    });
  };
  page('demo');
  page('dashboard');
  app.get('/client.js', hidden, (_req, reply) => send(reply, 'client.js'));
  app.get('/client.js.map', hidden, (_req, reply) => send(reply, 'client.js.map'));
  app.get('/', hidden, (_req, reply) => reply.redirect('/demo'));
}
