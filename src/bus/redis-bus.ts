import { Redis } from 'ioredis';
import { PushError } from '../domain/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Interest } from './interest.js';
import { type BusRouting, DEFAULT_BUS_NAMESPACE, RemoteBus } from './remote-bus.js';

/** Channels per SUBSCRIBE / UNSUBSCRIBE command. */
const CHUNK = 1000;

/**
 * Redis pub/sub between nodes. Every node listens to `message-push:<ns>:bus` (envelopes for
 * every node; `<ns>` is the cluster's namespace) and, routing by interest, to one channel per
 * user it holds (`…:bus:u:<app>:<user>`), per topic it has subscribers for (`…:t:<app>:<topic>`)
 * and per app with connections here (`…:a:<app>`, `$all`). Pub/sub is at-most-once; a node
 * that misses envelopes while disconnected loses nothing because its clients resume from the
 * store (sessions repair seq gaps from the store too).
 */
export class RedisBus extends RemoteBus {
  constructor(
    private readonly pub: Redis,
    private readonly sub: Redis,
    nodeId: string,
    routing: BusRouting,
    private readonly log: Logger,
    private readonly channel: string,
  ) {
    super(nodeId, routing);
    sub.on('message', (_channel: string, text: string) => this.receive(text));
  }

  protected addressOf(i: Interest | null): string {
    if (i === null) return this.channel;
    // App ids have no ':'; the user or topic is the last part, so any text is unambiguous.
    switch (i.kind) {
      case 'user':
        return `${this.channel}:u:${i.appId}:${i.userId}`;
      case 'topic':
        return `${this.channel}:t:${i.appId}:${i.topic}`;
      case 'app':
        return `${this.channel}:a:${i.appId}`;
    }
  }

  protected send(channel: string, text: string): void {
    this.pub.publish(channel, text).catch((err: unknown) => {
      this.log.warn({ err }, 'bus publish failed; remote clients will catch up from the store');
    });
  }

  protected async subscribeAddresses(channels: readonly string[]): Promise<void> {
    // Resolves when Redis confirms: from then on every publish to them reaches this node.
    for (let i = 0; i < channels.length; i += CHUNK)
      await this.sub.subscribe(...channels.slice(i, i + CHUNK));
  }

  protected unsubscribeAddresses(channels: readonly string[]): void {
    for (let i = 0; i < channels.length; i += CHUNK) {
      this.sub.unsubscribe(...channels.slice(i, i + CHUNK)).catch((err: unknown) => {
        this.log.warn({ err }, 'bus unsubscribe failed; the node receives a few envelopes it drops');
      });
    }
  }

  async ready(): Promise<void> {
    if (this.pub.status !== 'ready' || this.sub.status !== 'ready')
      throw new Error(`redis ${this.sub.status}`);
  }

  async close(): Promise<void> {
    this.clearHandlers();
    this.sub.disconnect();
    await this.pub.quit().catch(() => this.pub.disconnect());
  }
}

export async function createRedisBus(
  url: string,
  nodeId: string,
  log: Logger,
  routing: BusRouting = 'interest',
  namespace = DEFAULT_BUS_NAMESPACE,
): Promise<RedisBus> {
  const channel = `message-push:${namespace}:bus`;
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
    await sub.subscribe(channel);
  } catch (err) {
    pub.disconnect();
    sub.disconnect();
    throw new PushError('config_invalid', `PUSH_BUS_URL: cannot reach redis: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return new RedisBus(pub, sub, nodeId, routing, log, channel);
}
