import { ALL_TOPIC } from '../domain/message.js';
import type { Envelope } from './bus.js';

/**
 * What a node may want from the bus: one user's messages and kicks, one topic's messages, or
 * an app's `$all` broadcasts. Everything else (large multi-user pushes, envelope kinds without
 * a narrower address) goes to every node.
 */
export type Interest =
  | { readonly kind: 'user'; readonly appId: string; readonly userId: string }
  | { readonly kind: 'topic'; readonly appId: string; readonly topic: string }
  | { readonly kind: 'app'; readonly appId: string };

/**
 * A user push to at most this many users travels as one envelope per user on each user's
 * address; a larger one once, to every node. Splitting repeats the message body per user, so
 * it pays while the list is short next to the number of nodes it would otherwise reach.
 */
export const SPLIT_MAX_RECIPIENTS = 8;

/** Where one publish goes: an interest, or null for every node. */
export interface Route {
  readonly to: Interest | null;
  readonly envelope: Envelope;
}

export function routesOf(e: Envelope): Route[] {
  switch (e.kind) {
    case 'users':
      if (e.recipients.length > SPLIT_MAX_RECIPIENTS) return [{ to: null, envelope: e }];
      return e.recipients.map((r) => ({
        to: { kind: 'user', appId: e.message.appId, userId: r.user },
        envelope: e.recipients.length === 1 ? e : { ...e, recipients: [r] },
      }));
    case 'topic': {
      const { appId, topic } = e.message;
      return [
        {
          to: topic === ALL_TOPIC ? { kind: 'app', appId } : { kind: 'topic', appId, topic: topic! },
          envelope: e,
        },
      ];
    }
    case 'kick':
      return [{ to: { kind: 'user', appId: e.appId, userId: e.userId }, envelope: e }];
    default:
      // Kinds added later without an address of their own reach every node, as before routing.
      return [{ to: null, envelope: e }];
  }
}

/** The interest a topic subscription needs (`$all` is the app's). */
export function topicInterest(appId: string, topic: string): Interest {
  return topic === ALL_TOPIC ? { kind: 'app', appId } : { kind: 'topic', appId, topic };
}

/** A stable map key for an interest. */
export function interestKey(i: Interest): string {
  switch (i.kind) {
    case 'user':
      return `u\0${i.appId}\0${i.userId}`;
    case 'topic':
      return `t\0${i.appId}\0${i.topic}`;
    case 'app':
      return `a\0${i.appId}`;
  }
}
