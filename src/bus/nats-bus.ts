import { connect, type NatsConnection } from '@nats-io/transport-node';
import { PushError } from '../domain/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Bus, Envelope } from './bus.js';
import { EnvelopeCodec } from './remote-bus.js';

const SUBJECT = 'message-push.bus';

/**
 * Core NATS between nodes: one subject, every node subscribed. At-most-once like Redis
 * pub/sub; clients resume from the store, so nothing accepted is lost.
 */
export class NatsBus implements Bus {
  private readonly handlers: ((e: Envelope) => void)[] = [];
  private readonly codec: EnvelopeCodec;
  private readonly decoder = new TextDecoder();

  constructor(
    private readonly nc: NatsConnection,
    nodeId: string,
  ) {
    this.codec = new EnvelopeCodec(nodeId);
    nc.subscribe(SUBJECT, {
      callback: (err, msg) => {
        if (err) return;
        const e = this.codec.decode(this.decoder.decode(msg.data));
        if (e) for (const h of this.handlers) h(e);
      },
    });
  }

  publish(envelope: Envelope): void {
    for (const h of this.handlers) h(envelope);
    this.nc.publish(SUBJECT, this.codec.encode(envelope));
  }

  subscribe(handler: (envelope: Envelope) => void): void {
    this.handlers.push(handler);
  }

  async ready(): Promise<void> {
    if (this.nc.isClosed()) throw new Error('nats connection closed');
    await this.nc.flush();
  }

  async close(): Promise<void> {
    this.handlers.length = 0;
    await this.nc.drain().catch(() => this.nc.close());
  }
}

export async function createNatsBus(url: string, nodeId: string, log: Logger): Promise<NatsBus> {
  const u = new URL(url);
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: `${u.hostname}:${u.port || 4222}`,
      ...(u.username ? { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) } : {}),
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
  return new NatsBus(nc, nodeId);
}
