/**
 * message-push client SDK: one connection that stays up, resumes without loss, and hands
 * each message to the app once, in order. Runs in browsers and in Node 20+ (pass `ws` as
 * `WebSocket` there). One runtime dependency, `snappyjs`, for protocol v2 (`protocol: 'v2'`).
 */
export { AckBatcher, DEFAULT_ACK_BATCH, DEFAULT_ACK_DELAY_MS } from './acks.js';
export { Backoff, DEFAULT_RECONNECT_MAX_MS, DEFAULT_RECONNECT_MIN_MS, reconnectDelay } from './backoff.js';
export {
  CLOSE_HEARTBEAT_TIMEOUT,
  type ConnectedEvent,
  type ConnectionState,
  type ConnectOptions,
  connect,
  DEFAULT_OPEN_TIMEOUT_MS,
  DEFAULT_TRANSPORTS,
  type DisconnectedEvent,
  type MessageHandler,
  PushClient,
  type PushClientError,
  type PushClientEvents,
  type StateEvent,
  type Subscription,
} from './client.js';
export { DEFAULT_DEDUPE_WINDOW, DedupeWindow } from './dedupe.js';
export {
  CLOSE,
  type PushMessage,
  type ReadEvent,
  type RevokeEvent,
  type TopicPresenceEvent,
} from './protocol.js';
export { defaultStorage, MemoryStorage, type PushStorage, type ResumeState, webStorage } from './storage.js';
export type { FetchLike, TransportFactory, TransportName } from './transports/transport.js';
export type { WebSocketConstructor, WebSocketLike, WireProtocol } from './transports/websocket.js';
