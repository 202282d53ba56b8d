/** Wire shapes of protocol `push.v1.json` (docs/reference/client-api.md) as the client sees them. */

/** A message as handed to the app. User messages carry `seq`; topic and `$all` messages carry `topic` and `offset`. */
export interface PushMessage {
  readonly id: string;
  readonly type: string;
  readonly timestamp: number;
  readonly data: unknown;
  readonly seq?: number;
  readonly topic?: string;
  readonly offset?: number;
}

export interface WelcomeFrame {
  readonly op: 'welcome';
  readonly connection_id: string;
  readonly user_id: string;
  readonly device_id: string;
  readonly heartbeat_ms: number;
}

/** A recalled message: user messages by `seq`, topic messages by `topic` and `offset`. */
export interface RevokeEvent {
  readonly id: string;
  readonly seq?: number;
  readonly topic?: string;
  readonly offset?: number;
}

/** Another device of this user read up to `seq` (the server's read cursor after the move). */
export interface ReadEvent {
  readonly seq: number;
}

/** A connection joined or left a topic this client subscribed to with `presence: true`. */
export interface TopicPresenceEvent {
  readonly op: 'join' | 'leave';
  readonly topic: string;
  readonly user: string;
  readonly device: string;
}

export type ServerFrame =
  | WelcomeFrame
  | ({ readonly op: 'revoke' } & RevokeEvent)
  | ({ readonly op: 'read' } & ReadEvent)
  | TopicPresenceEvent
  | ({ readonly op: 'message' } & PushMessage)
  | {
      readonly op: 'subscribed';
      readonly topic: string;
      readonly offset: number;
      readonly ref?: string | number;
    }
  | { readonly op: 'unsubscribed'; readonly topic: string; readonly ref?: string | number }
  | { readonly op: 'refreshed'; readonly exp: number; readonly ref?: string | number }
  | { readonly op: 'error'; readonly code: string; readonly message: string; readonly ref?: string | number }
  | { readonly op: 'pong' | 'ok'; readonly ref?: string | number };

export type ClientFrame =
  | { op: 'ack'; ids: string[] }
  | { op: 'read'; seq: number }
  | { op: 'subscribe'; topic: string; since?: number; presence?: boolean; ref?: string }
  | { op: 'unsubscribe'; topic: string; ref?: string }
  | { op: 'ping' }
  | { op: 'refresh'; token: string; ref?: string };

/** Close codes of docs/reference/client-api.md "Heartbeat and close". */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  /** Protocol v2 framing broken (by either side). */
  protocolError: 1002,
  abnormal: 1006,
  policy: 1008,
  tooBig: 1009,
  internal: 1011,
  /** The server is at its connection cap or overloaded: reconnect later, with backoff. */
  overloaded: 1013,
  tokenExpired: 4001,
  kicked: 4003,
  rateLimited: 4008,
  tooSlow: 4009,
} as const;

/**
 * One text frame or SSE data line → frames (coalesced frames are JSON arrays); with `field`,
 * the frames are that field of an object (`{"messages":[…]}` of a long poll). Non-frames are dropped.
 */
export function parseFrames(text: string, field?: string): ServerFrame[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
    if (field !== undefined) value = (value as Record<string, unknown> | null)?.[field] ?? [];
  } catch {
    return [];
  }
  const list = Array.isArray(value) ? value : [value];
  return list.filter(
    (f): f is ServerFrame => !!f && typeof f === 'object' && typeof (f as { op?: unknown }).op === 'string',
  );
}

/** The message part of a `message` frame, without `op`. */
export function toMessage(f: { op: 'message' } & PushMessage): PushMessage {
  const { op: _op, ...message } = f;
  return message;
}
