import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';
import type { AllowedOrigins } from '../limits/allowed-origins.js';

/**
 * The client HTTP API's paths: the fallback transports and `/v1/me/*` are called by browser
 * pages with a user's token, so they answer CORS for the allowed origins. The server API is
 * called by backends with the app secret and never answers CORS: a page must not reach it.
 */
const CLIENT_API = /^\/v1\/(?:sse|poll|me\/)/;

/** CORS (preflight included) on the client HTTP API for the allowed origins only. */
export async function registerCors(app: FastifyInstance, origins: AllowedOrigins): Promise<void> {
  await app.register(cors, {
    hook: 'onRequest',
    delegator: (req, callback) => {
      const path = req.url.split('?', 1)[0] ?? '';
      if (!CLIENT_API.test(path)) {
        callback(null, { origin: false });
        return;
      }
      callback(null, {
        origin: (origin, done) => done(null, origin !== undefined && origins.allowsCors(origin)),
        methods: ['GET', 'POST'],
        allowedHeaders: ['Authorization', 'Content-Type', 'Last-Event-ID'],
        maxAge: 600,
      });
    },
  });
}
