import type { Bus, Envelope } from './bus.js';
import { type Interest, routesOf } from './interest.js';

/**
 * What Redis and NATS buses share: envelopes are delivered to this node's own handlers at
 * once (no round trip through the broker) and sent to the other nodes tagged with this
 * node's id, so each node drops its own echo. A driver adds only the transport.
 *
 *   node A: publish(e) ──► A's hub (now)
 *                     └──► broker ──► B's hub, C's hub   (A's echo dropped by id)
 */
export class EnvelopeCodec {
  constructor(readonly nodeId: string) {}

  encode(envelope: Envelope): string {
    return JSON.stringify({ from: this.nodeId, e: envelope });
  }

  /** The envelope of a frame from another node; null for our own echo or a malformed frame. */
  decode(text: string): Envelope | null {
    try {
      const parsed = JSON.parse(text) as { from?: unknown; e?: Envelope };
      if (parsed.from === this.nodeId || !parsed.e) return null;
      return parsed.e;
    } catch {
      return null;
    }
  }
}

/** `interest`: each node receives what its connections need; `broadcast`: every node everything. */
export type BusRouting = 'interest' | 'broadcast';

/** The namespace of a cluster whose configuration names none (see PUSH_BUS_NAMESPACE). */
export const DEFAULT_BUS_NAMESPACE = 'default';

/**
 * A broker-backed bus: routing by interest over the broker's own addressing (Redis channels,
 * NATS subjects). Listens asked for in one turn of the event loop go to the broker as one
 * subscribe and one confirmation, so a connect storm costs a round trip per batch.
 */
export abstract class RemoteBus implements Bus {
  private readonly handlers: ((e: Envelope) => void)[] = [];
  private readonly codec: EnvelopeCodec;
  private batch: { addresses: string[]; done: Promise<void> } | null = null;
  framesReceived = 0;

  constructor(
    nodeId: string,
    private readonly routing: BusRouting,
  ) {
    this.codec = new EnvelopeCodec(nodeId);
  }

  /** The broker address of an interest; null: the address every node listens to. */
  protected abstract addressOf(interest: Interest | null): string;
  protected abstract send(address: string, text: string): void;
  /** Subscribes to the addresses; resolves once the broker has them. */
  protected abstract subscribeAddresses(addresses: readonly string[]): Promise<void>;
  protected abstract unsubscribeAddresses(addresses: readonly string[]): void;

  publish(envelope: Envelope): void {
    for (const h of this.handlers) h(envelope);
    if (this.routing === 'broadcast') {
      this.send(this.addressOf(null), this.codec.encode(envelope));
      return;
    }
    for (const r of routesOf(envelope)) this.send(this.addressOf(r.to), this.codec.encode(r.envelope));
  }

  subscribe(handler: (envelope: Envelope) => void): void {
    this.handlers.push(handler);
  }

  listen(interests: readonly Interest[]): Promise<void> {
    if (this.routing === 'broadcast' || interests.length === 0) return Promise.resolve();
    if (!this.batch) {
      const batch = { addresses: [] as string[], done: Promise.resolve() };
      batch.done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        this.batch = null;
        return this.subscribeAddresses(batch.addresses);
      });
      this.batch = batch;
    }
    for (const i of interests) this.batch.addresses.push(this.addressOf(i));
    return this.batch.done;
  }

  unlisten(interests: readonly Interest[]): void {
    if (this.routing === 'broadcast' || interests.length === 0) return;
    this.unsubscribeAddresses(interests.map((i) => this.addressOf(i)));
  }

  /** A frame from the broker. */
  protected receive(text: string): void {
    this.framesReceived++;
    const e = this.codec.decode(text);
    if (e) for (const h of this.handlers) h(e);
  }

  protected clearHandlers(): void {
    this.handlers.length = 0;
  }

  abstract ready(): Promise<void>;
  abstract close(): Promise<void>;
}
