import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { PushError } from '../domain/errors.js';
import type { Logger } from '../observability/logger.js';
import { natsConnectOptions } from '../util/nats-url.js';
import type { Interest } from './interest.js';
import { type BusRouting, DEFAULT_BUS_NAMESPACE, RemoteBus } from './remote-bus.js';

/** One subject token for any text: base64url has no '.', '*', '>' or whitespace, and is never empty here. */
const token = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

/**
 * Core NATS between nodes. Every node subscribes to `message-push.<ns>.bus` (envelopes for every
 * node) and, routing by interest, to `message-push.<ns>.bus.u.<app>.<user>` per user it holds,
 * `….t.<app>.<topic>` per topic it has subscribers for and `….a.<app>` per app with
 * connections here (app, user and topic base64url-encoded, one token each), so
 * `message-push.<ns>.bus.>` sees everything and `message-push.<ns>.bus.u.<app>.*` one app's users.
 * At-most-once like Redis pub/sub; clients resume from the store, so nothing accepted is lost.
 */
export class NatsBus extends RemoteBus {
  private readonly decoder = new TextDecoder();
  private readonly subs = new Map<string, Subscription>();

  constructor(
    private readonly nc: NatsConnection,
    nodeId: string,
    routing: BusRouting,
    private readonly subject: string,
  ) {
    super(nodeId, routing);
    this.subscribeOne(subject);
  }

  protected addressOf(i: Interest | null): string {
    if (i === null) return this.subject;
    switch (i.kind) {
      case 'user':
        return `${this.subject}.u.${token(i.appId)}.${token(i.userId)}`;
      case 'topic':
        return `${this.subject}.t.${token(i.appId)}.${token(i.topic)}`;
      case 'app':
        return `${this.subject}.a.${token(i.appId)}`;
    }
  }

  protected send(subject: string, text: string): void {
    this.nc.publish(subject, text);
  }

  protected async subscribeAddresses(subjects: readonly string[]): Promise<void> {
    for (const s of subjects) this.subscribeOne(s);
    // The server has every SUB sent before the PONG of this flush.
    await this.nc.flush();
  }

  protected unsubscribeAddresses(subjects: readonly string[]): void {
    for (const s of subjects) {
      this.subs.get(s)?.unsubscribe();
      this.subs.delete(s);
    }
  }

  private subscribeOne(subject: string): void {
    if (this.subs.has(subject)) return;
    const sub = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (!err) this.receive(this.decoder.decode(msg.data));
      },
    });
    this.subs.set(subject, sub);
  }

  async ready(): Promise<void> {
    if (this.nc.isClosed()) throw new Error('nats connection closed');
    await this.nc.flush();
  }

  async close(): Promise<void> {
    this.clearHandlers();
    await this.nc.drain().catch(() => this.nc.close());
  }
}

export async function createNatsBus(
  url: string,
  nodeId: string,
  log: Logger,
  routing: BusRouting = 'interest',
  namespace = DEFAULT_BUS_NAMESPACE,
): Promise<NatsBus> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      ...natsConnectOptions(url),
      name: `message-push ${nodeId}`,
      maxReconnectAttempts: -1,
      waitOnFirstConnect: false,
    });
  } catch (err) {
    throw new PushError('config_invalid', `PUSH_BUS_URL: cannot reach nats: ${(err as Error).message}`, {
      cause: err,
    });
  }
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect')
        log.warn({ status: s.type }, 'nats bus connection');
    }
  })();
  return new NatsBus(nc, nodeId, routing, `message-push.${namespace}.bus`);
}
