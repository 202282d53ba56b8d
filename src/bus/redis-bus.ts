import { Redis } from 'ioredis';
import { PushError } from '../domain/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Bus, Envelope } from './bus.js';
import { EnvelopeCodec } from './remote-bus.js';

const CHANNEL = 'message-push:bus';

/**
 * Redis pub/sub between nodes: one channel, every node subscribed. Pub/sub is at-most-once;
 * a node that misses envelopes while disconnected loses nothing because its clients resume
 * from the store (sessions repair seq gaps from the store too).
 */
export class RedisBus implements Bus {
  private readonly handlers: ((e: Envelope) => void)[] = [];
  private readonly codec: EnvelopeCodec;

  constructor(
    private readonly pub: Redis,
    private readonly sub: Redis,
    nodeId: string,
    private readonly log: Logger,
  ) {
    this.codec = new EnvelopeCodec(nodeId);
    sub.on('message', (_channel: string, text: string) => {
      const e = this.codec.decode(text);
      if (e) for (const h of this.handlers) h(e);
    });
  }

  publish(envelope: Envelope): void {
    for (const h of this.handlers) h(envelope);
    this.pub.publish(CHANNEL, this.codec.encode(envelope)).catch((err: unknown) => {
      this.log.warn({ err }, 'bus publish failed; remote clients will catch up from the store');
    });
  }

  subscribe(handler: (envelope: Envelope) => void): void {
    this.handlers.push(handler);
  }

  async ready(): Promise<void> {
    if (this.pub.status !== 'ready' || this.sub.status !== 'ready')
      throw new Error(`redis ${this.sub.status}`);
  }

  async close(): Promise<void> {
    this.handlers.length = 0;
    this.sub.disconnect();
    await this.pub.quit().catch(() => this.pub.disconnect());
  }
}

export async function createRedisBus(url: string, nodeId: string, log: Logger): Promise<RedisBus> {
  const options = { lazyConnect: true, maxRetriesPerRequest: null, enableOfflineQueue: true };
  const pub = new Redis(url, options);
  const sub = new Redis(url, options);
  for (const [name, conn] of [
    ['pub', pub],
    ['sub', sub],
  ] as const) {
    conn.on('error', (err: Error) =>
      log.warn({ err: err.message, conn: name }, 'redis bus connection error'),
    );
  }
  try {
    await Promise.all([pub.connect(), sub.connect()]);
    await sub.subscribe(CHANNEL);
  } catch (err) {
    pub.disconnect();
    sub.disconnect();
    throw new PushError('config_invalid', `PUSH_BUS_URL: cannot reach redis: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return new RedisBus(pub, sub, nodeId, log);
}
