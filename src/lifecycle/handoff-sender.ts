import { createHmac, randomUUID } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { Counter, Histogram, type Registry } from 'prom-client';
import { Agent, request } from 'undici';
import { STATUS_CODE } from '../domain/message.js';
import type { Logger } from '../observability/logger.js';
import type { ClaimedHandoffs, HandoffUpdate, LifecycleStore, WebhookRecord } from '../store/store.js';
import { guardedLookup, isPublicAddress } from './webhook-url.js';

export interface HandoffSenderOptions {
  readonly nodeId: string;
  readonly pollMs: number;
  readonly timeoutMs: number;
  readonly allowPrivate: boolean;
}

/** Is any device of the user connected anywhere in the cluster (for `after_ms` 0)? */
export type OnlineCheck = (appId: string, userId: string) => Promise<boolean>;

/** Users claimed per poll; each is one POST. */
const CLAIM_USERS = 50;
/** Messages per POST: a user with more due gets several POSTs over the next polls. */
const MAX_BATCH = 100;
/** Retry delays: 1 s, 2 s, 4 s … up to 10 min, each drawn between half and all of that (jitter). */
const BACKOFF_BASE_MS = 1000;
const BACKOFF_MAX_MS = 600_000;

export function webhookMetrics(registry: Registry) {
  return {
    sent: new Counter({
      name: 'push_webhook_sent_total',
      help: 'Hand-off webhook POSTs answered 2xx',
      registers: [registry],
    }),
    failed: new Counter({
      name: 'push_webhook_failed_total',
      help: 'Hand-off webhook POSTs that failed (non-2xx, timeout, connection error); each is retried until the ttl',
      registers: [registry],
    }),
    seconds: new Histogram({
      name: 'push_webhook_seconds',
      help: 'Hand-off webhook POST duration',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
  };
}

/** A retry's delay after `attempts` failed attempts: exponential with jitter. */
export function backoffMs(attempts: number, random = Math.random()): number {
  const full = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempts, 30));
  return Math.round(full / 2 + (full / 2) * random);
}

/**
 * The offline hand-off: every node polls the durable schedule (store `webhook_handoffs`),
 * claims due rows under a lease (so exactly one node sends a given hand-off; a node that
 * dies mid-send loses its claim when the lease runs out and another node retries) and
 * POSTs each user's due messages in one signed request. Messages acked or recalled in the
 * meantime are left out; failures are retried with exponential backoff and jitter until the
 * message's ttl. At-least-once: a node that dies after the receiver answered but before it
 * recorded that sends again (the receiver dedupes by message id or `X-Push-Delivery`).
 */
export class HandoffSender {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private readonly agent: Agent;
  private readonly metrics: ReturnType<typeof webhookMetrics>;

  constructor(
    private readonly store: LifecycleStore,
    private readonly online: OnlineCheck,
    private readonly options: HandoffSenderOptions,
    registry: Registry,
    private readonly log: Logger,
  ) {
    this.metrics = webhookMetrics(registry);
    this.agent = new Agent({
      connect: {
        timeout: options.timeoutMs,
        ...(options.allowPrivate ? {} : { lookup: guardedLookup as never }),
      },
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    });
  }

  /** A claim outlives the slowest POST, so a live sender never loses its rows to another node. */
  private get leaseMs(): number {
    return this.options.timeoutMs * 2 + 1000;
  }

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.poll()
        .catch((err: unknown) => this.log.warn({ err }, 'webhook hand-off poll failed'))
        .finally(() => {
          this.running = null;
          if (!this.stopped) this.timer = setTimeout(tick, this.options.pollMs);
        });
    };
    this.timer = setTimeout(tick, this.options.pollMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    await this.agent.close();
  }

  /** One pass: claim what is due and send it. Exposed for tests. */
  async poll(): Promise<void> {
    const now = Date.now();
    const claims = await this.store.claimHandoffs({
      node: this.options.nodeId,
      now,
      leaseMs: this.leaseMs,
      limit: CLAIM_USERS,
    });
    if (claims.length === 0) return;
    const hooks = new Map<string, Promise<WebhookRecord | undefined>>();
    const hookOf = (appId: string) => {
      let h = hooks.get(appId);
      if (!h) {
        h = this.store.getWebhook(appId);
        hooks.set(appId, h);
      }
      return h;
    };
    await Promise.all(claims.map(async (c) => this.handle(c, await hookOf(c.appId))));
  }

  private async handle(c: ClaimedHandoffs, hook: WebhookRecord | undefined): Promise<void> {
    const now = Date.now();
    const updates: HandoffUpdate[] = [];
    const key = { appId: c.appId, userId: c.userId };
    const due: ClaimedHandoffs['rows'][number][] = [];
    for (const r of c.rows) {
      const settled =
        r.deliveryStatus === STATUS_CODE.acked ||
        r.deliveryStatus === STATUS_CODE.revoked ||
        r.deliveryStatus === STATUS_CODE.expired;
      if (!hook || settled) updates.push({ ...key, seq: r.seq, kind: 'drop' });
      else if (r.giveUpAt <= now || (r.expiresAt !== null && r.expiresAt <= now))
        updates.push({ ...key, seq: r.seq, kind: 'failed' });
      else if (due.length >= MAX_BATCH) updates.push({ ...key, seq: r.seq, kind: 'retry', dueAt: now });
      else due.push(r);
    }
    // after_ms 0 means "when no device is online": a connected user gets it over the socket.
    if (hook && hook.afterMs === 0 && due.length > 0 && (await this.online(c.appId, c.userId))) {
      for (const r of due.splice(0)) updates.push({ ...key, seq: r.seq, kind: 'drop' });
    }
    if (hook && due.length > 0) {
      const ok = await this.post(hook, c.appId, c.userId, due);
      const at = Date.now();
      for (const r of due) {
        if (ok) {
          updates.push({ ...key, seq: r.seq, kind: 'delivered' });
          continue;
        }
        const next = at + backoffMs(r.attempts);
        const giveUp = Math.min(r.giveUpAt, r.expiresAt ?? Number.POSITIVE_INFINITY);
        updates.push(
          next >= giveUp
            ? { ...key, seq: r.seq, kind: 'failed' }
            : { ...key, seq: r.seq, kind: 'retry', dueAt: next },
        );
      }
    }
    await this.store.finishHandoffs(c.token, updates);
  }

  /** POSTs one batch; true on a 2xx answer within the timeout. */
  private async post(
    hook: WebhookRecord,
    appId: string,
    userId: string,
    rows: readonly { seq: number; id: string; type: string; timestamp: number; dataJson: string }[],
  ): Promise<boolean> {
    const messages = rows.map(
      (r) =>
        `{"seq":${r.seq},"id":${JSON.stringify(r.id)},"type":${JSON.stringify(r.type)},"timestamp":${r.timestamp},"data":${r.dataJson}}`,
    );
    const body = `{"app":${JSON.stringify(appId)},"user":${JSON.stringify(userId)},"messages":[${messages.join(',')}]}`;
    const signature = createHmac('sha256', hook.secret).update(body).digest('hex');
    const started = process.hrtime.bigint();
    try {
      // An address literal is connected to without a lookup: check it here (the URL may have
      // been stored while private addresses were allowed).
      const host = new URL(hook.url).hostname.replace(/^\[|\]$/g, '');
      if (!this.options.allowPrivate && ipaddr.isValid(host) && !isPublicAddress(host)) {
        throw new Error(`webhook address ${host} is not public`);
      }
      const res = await request(hook.url, {
        method: 'POST',
        dispatcher: this.agent,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'message-push-webhook',
          'x-push-signature': `sha256=${signature}`,
          'x-push-delivery': randomUUID(),
        },
        body,
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      await res.body.dump();
      const ok = res.statusCode >= 200 && res.statusCode < 300;
      (ok ? this.metrics.sent : this.metrics.failed).inc();
      if (!ok) this.log.warn({ app: appId, status: res.statusCode }, 'webhook hand-off refused; retrying');
      return ok;
    } catch (err) {
      this.metrics.failed.inc();
      this.log.warn({ app: appId, err: (err as Error).message }, 'webhook hand-off failed; retrying');
      return false;
    } finally {
      this.metrics.seconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    }
  }
}
