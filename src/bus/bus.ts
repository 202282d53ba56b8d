import type { Recipient, StoredMessage } from '../domain/message.js';
import type { Interest } from './interest.js';

/**
 * What travels between nodes once a message is durable. A node's hub receives the envelopes
 * its connections may need (see `Bus.listen`) and delivers them to its own sessions.
 */
export type Envelope =
  | { readonly kind: 'users'; readonly message: StoredMessage; readonly recipients: readonly Recipient[] }
  | { readonly kind: 'topic'; readonly message: StoredMessage }
  /** Close a user's connections (all, or one device's) with 4003 wherever they are. */
  | { readonly kind: 'kick'; readonly appId: string; readonly userId: string; readonly device?: string }
  /** A live room's settings changed: every node applies them to its own subscribers. */
  | { readonly kind: 'room'; readonly appId: string; readonly topic: string; readonly mergeMs: number }
  /** Tokens of a user issued before `before` (ms) are refused; its connections close with 4003. */
  | {
      readonly kind: 'revoke_tokens';
      readonly appId: string;
      readonly userId: string;
      readonly before: number;
    }
  | LifecycleEnvelope;

/** Message lifecycle signals (src/gateway/lifecycle-signals.ts delivers them to sessions). */
export type LifecycleEnvelope =
  /** A recalled user message: each recipient's devices get `revoke` with their seq. */
  | {
      readonly kind: 'revoke';
      readonly appId: string;
      readonly id: string;
      readonly recipients: readonly { readonly user: string; readonly seq: number }[];
    }
  /** A recalled topic message: the topic's subscribers get `revoke` with its offset. */
  | {
      readonly kind: 'revoke_topic';
      readonly appId: string;
      readonly id: string;
      readonly topic: string;
      readonly offset: number;
    }
  /** A user's read cursor moved: their other devices get `read` (`except`: the connection that read). */
  | {
      readonly kind: 'read';
      readonly appId: string;
      readonly userId: string;
      readonly seq: number;
      readonly except?: string;
    }
  /** A connection subscribed to (join) or left (leave) a topic; debounced where it is delivered. */
  | {
      readonly kind: 'topic_presence';
      readonly appId: string;
      readonly topic: string;
      readonly op: 'join' | 'leave';
      readonly user: string;
      readonly device: string;
      readonly connection: string;
    };

/**
 * The bus seam. Drivers: `MemoryBus` (one process, the default) and, for several processes
 * or nodes, Redis or NATS (PUSH_BUS_URL).
 *
 * Routing by interest: an envelope is published to the addresses of its interests (each
 * recipient user, the topic, the app for `$all`; see routesOf), and a node receives only
 * those it listens to, plus what goes to every node. A node listens to a user before that
 * user's connection is admitted and to a topic before its subscription reads the offset, so
 * nothing committed after that point is missed. In broadcast mode (PUSH_BUS_ROUTING) every
 * node receives everything on one channel, as before routing existed.
 *
 * Guarantee: envelopes published by one node reach each subscriber in publish order.
 * Delivery is at-most-once on the bus; nothing is lost overall because every message is
 * already stored and clients resume from the store.
 */
export interface Bus {
  /** Delivers to this node's handlers at once and to the other nodes that listen, through the broker. */
  publish(envelope: Envelope): void;
  subscribe(handler: (envelope: Envelope) => void): void;
  /** From now on this node receives envelopes for these interests; resolves once the broker has it. */
  listen(interests: readonly Interest[]): Promise<void>;
  /** Stops receiving envelopes for these interests (those to every node still arrive). */
  unlisten(interests: readonly Interest[]): void;
  /** Frames this node received from the broker, its own echoes included: the bus traffic it pays for. */
  readonly framesReceived: number;
  /** Throws while the broker is unreachable (readiness). */
  ready(): Promise<void>;
  close(): Promise<void>;
}

export type { Interest };
