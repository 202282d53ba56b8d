import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { maskCredentials } from '../../observability/mask.js';
import type { Metrics } from '../../observability/metrics.js';
import { ErrorBody, tagged } from '../schemas.js';

export interface ReadinessCheck {
  readonly name: string;
  check(): Promise<void>;
}

/** /healthz (process alive), /readyz (backends reachable), /metrics (Prometheus). */
export function registerOperationRoutes(
  app: FastifyInstance,
  deps: {
    metrics: Metrics;
    checks: readonly ReadinessCheck[];
    isStopping: () => boolean;
    log?: { warn(obj: object, msg: string): void };
  },
): void {
  const log = deps.log;
  app.get(
    '/healthz',
    {
      schema: tagged('operations', 'The process is alive', {
        response: { 200: Type.Object({ status: Type.Literal('ok') }, { additionalProperties: true }) },
      }),
    },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      schema: tagged('operations', 'The store and configured backends answer (503 naming the failing part)', {
        response: {
          200: Type.Object(
            { status: Type.Literal('ready'), checks: Type.Record(Type.String(), Type.String()) },
            { additionalProperties: true },
          ),
          503: Type.Composite(
            [
              ErrorBody,
              Type.Object({ status: Type.String(), checks: Type.Record(Type.String(), Type.String()) }),
            ],
            { additionalProperties: true },
          ),
        },
      }),
    },
    async (_req, reply) => {
      const checks: Record<string, string> = {};
      const failing: string[] = [];
      await Promise.all(
        deps.checks.map(async (c) => {
          try {
            await c.check();
            checks[c.name] = 'ok';
          } catch (err) {
            // The raw error (hosts, ports, driver text, sometimes credentials) goes to the log
            // only; the probe learns which part is failing.
            log?.warn(
              { check: c.name, err: maskCredentials((err as Error).message ?? String(err)) },
              'readiness check failed',
            );
            checks[c.name] = 'unreachable';
            failing.push(c.name);
          }
        }),
      );
      if (deps.isStopping()) failing.push('shutting down');
      if (failing.length === 0) return { status: 'ready', checks };
      return reply.status(503).send({
        error: { code: 'unavailable', message: `not ready: ${failing.join(', ')}` },
        status: 'unavailable',
        checks,
      });
    },
  );

  app.get(
    '/metrics',
    {
      schema: tagged('operations', 'Prometheus metrics (text format)', {
        response: {
          200: {
            description: 'Prometheus text format',
            content: { 'text/plain': { schema: Type.String() } },
          },
        },
      }),
    },
    async (_req, reply) => {
      const body = await deps.metrics.registry.metrics();
      return reply.header('content-type', deps.metrics.registry.contentType).send(body);
    },
  );
}
