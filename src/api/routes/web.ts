import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { PushError, toErrorBody } from '../../domain/errors.js';
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

/**
 * The pages load only their own scripts and styles and talk only to this server; no page may
 * frame them (clickjacking of the dashboard's kick and push forms).
 */
export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const DASHBOARD_DISABLED = new PushError(
  'forbidden',
  'the dashboard is disabled: set PUSH_ADMIN_TOKEN (at least 16 characters) and restart',
);

/** A file name: word characters, dots between them, an extension; no path, no `..`. */
const FILE_NAME = /^[\w-]+(\.[\w-]+)+$/;

export interface WebRouteDeps {
  readonly root?: string;
  /** The dashboard page is only served when PUSH_ADMIN_TOKEN is set. */
  readonly dashboardEnabled: boolean;
  /** The demo page (and `/` leading to it) only in demo mode; otherwise they are 404. */
  readonly demoEnabled?: boolean;
}

/**
 * The browser side, built by `npm run build` into dist/web: `/client.js` (the SDK as the
 * global `MessagePush`), `/demo` (demo mode only) and `/dashboard` with their assets. `/` leads to the demo.
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
        .send(
          toErrorBody(
            new PushError('not_found', `not found: ${path} (web assets are built by "npm run build")`),
          ),
        );
    }
    return reply
      .type(TYPES[extname(path)] ?? 'application/octet-stream')
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', CSP)
      .send(body);
  };

  const page = (name: 'demo' | 'dashboard') => {
    app.get(`/${name}`, hidden, (_req, reply) => {
      if (name === 'dashboard' && !deps.dashboardEnabled) {
        return reply.status(403).send(toErrorBody(DASHBOARD_DISABLED));
      }
      return send(reply, `${name}/index.html`);
    });
    app.get(`/${name}/:file`, hidden, (req, reply) => {
      const { file } = req.params as { file: string };
      if (!FILE_NAME.test(file))
        return reply.status(404).send(toErrorBody(new PushError('not_found', 'no such file')));
      if (name === 'dashboard' && !deps.dashboardEnabled)
        return reply.status(403).send(toErrorBody(DASHBOARD_DISABLED));
      return send(reply, `${name}/${file}`);
    });
  };
  if (deps.demoEnabled) page('demo');
  page('dashboard');
  app.get('/client.js', hidden, (_req, reply) => send(reply, 'client.js'));
  app.get('/client.js.map', hidden, (_req, reply) => send(reply, 'client.js.map'));
  if (deps.demoEnabled) app.get('/', hidden, (_req, reply) => reply.redirect('/demo'));
}
