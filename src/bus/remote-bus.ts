import type { Envelope } from './bus.js';

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
