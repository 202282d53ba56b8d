import type { FastifyReply, FastifyRequest } from 'fastify';
import { PushError } from '../domain/errors.js';
import type { AppRateLimiter } from './app-rate.js';
import type { LoadMonitor } from './load-monitor.js';

/**
 * The server API's admission of pushes, after authentication: 503 `overloaded` while the
 * event loop is stalled, 429 `rate_limited` past the app's push rate; both with Retry-After.
 * A batch counts as its number of messages.
 */
export function pushAdmission(load: LoadMonitor, rate: AppRateLimiter) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const now = Date.now();
    if (load.isOverloaded(now)) {
      void reply.header('retry-after', String(load.retryAfterSeconds(now)));
      throw new PushError('overloaded', 'the server is overloaded; retry after Retry-After seconds');
    }
    const messages = (req.body as { messages?: unknown } | undefined)?.messages;
    const n = req.url.startsWith('/v1/push/batch') && Array.isArray(messages) ? messages.length : 1;
    const wait = rate.take(req.appId, n, now);
    if (wait > 0) {
      void reply.header('retry-after', String(wait));
      throw new PushError('rate_limited', `app over its push rate of ${rate.ratePerSecond} messages/s`);
    }
  };
}
