import type { Recipient, StoredMessage } from '../domain/message.js';

/**
 * What travels between nodes once a message is durable. Every node's hub receives every
 * envelope it may hold connections for and delivers it to its own sessions.
 */
export type Envelope =
  | { readonly kind: 'users'; readonly message: StoredMessage; readonly recipients: readonly Recipient[] }
  | { readonly kind: 'topic'; readonly message: StoredMessage }
  /** Close a user's connections (all, or one device's) with 4003 wherever they are. */
  | { readonly kind: 'kick'; readonly appId: string; readonly userId: string; readonly device?: string }
  /** Tokens of a user issued before `before` (ms) are refused; its connections close with 4003. */
  | { readonly kind: 'revoke'; readonly appId: string; readonly userId: string; readonly before: number };

/**
 * The bus seam. Drivers: `MemoryBus` (one process, the default) and, for several processes
 * or nodes, Redis or NATS (PUSH_BUS_URL).
 *
 * Guarantee: envelopes published by one node reach each subscriber in publish order.
 * Delivery is at-most-once on the bus; nothing is lost overall because every message is
 * already stored and clients resume from the store.
 */
export interface Bus {
  /** Delivers to this node's handlers at once and to every other node through the broker. */
  publish(envelope: Envelope): void;
  subscribe(handler: (envelope: Envelope) => void): void;
  /** Throws while the broker is unreachable (readiness). */
  ready(): Promise<void>;
  close(): Promise<void>;
}
