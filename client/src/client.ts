import { AckBatcher } from './acks.js';
import { Backoff } from './backoff.js';
import { DEFAULT_DEDUPE_WINDOW, DedupeWindow } from './dedupe.js';
import { Emitter } from './emitter.js';
import {
  CLOSE,
  type PushMessage,
  type ReadEvent,
  type RevokeEvent,
  type ServerFrame,
  type TopicPresenceEvent,
  toMessage,
  type WelcomeFrame,
} from './protocol.js';
import { decodeResumeState, defaultStorage, encodeResumeState, type PushStorage } from './storage.js';
import { readToken, refreshAt } from './token.js';
import { DEFAULT_POLL_SECONDS, LongPollTransport } from './transports/long-poll.js';
import { SseTransport } from './transports/sse.js';
import type {
  CloseInfo,
  FetchLike,
  Transport,
  TransportFactory,
  TransportHandlers,
  TransportName,
  TransportParams,
} from './transports/transport.js';
import { type WebSocketConstructor, WebSocketTransport, type WireProtocol } from './transports/websocket.js';

/** A WebSocket, SSE stream or first poll that has not opened within this long counts as failed. */
export const DEFAULT_OPEN_TIMEOUT_MS = 10_000;
export const DEFAULT_TRANSPORTS: readonly TransportName[] = ['websocket', 'sse', 'long-poll'];
/** Close code the client uses when the server went silent (no frames, pongs or SSE comments). */
export const CLOSE_HEARTBEAT_TIMEOUT = 4000;
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ConnectOptions {
  /** Base URL of the service (`https://push.example.com`; `ws(s)://` works too). Browsers default to the page's origin. */
  url?: string;
  app: string;
  /** A fixed token. Give `getToken` instead to have reconnects and refreshes use fresh ones. */
  token?: string;
  /** Called before each (re)connect and before the current token expires. */
  getToken?: () => string | Promise<string>;
  /** Stable device id (1..64 of `[A-Za-z0-9._:-]`); the server defaults to the connection id. */
  device?: string;
  /** Where the resume position is kept: `localStorage` in browsers, memory in Node; `null` keeps nothing. */
  storage?: PushStorage | null;
  /** WebSocket implementation; defaults to `globalThis.WebSocket` (pass `ws`'s in Node 20). */
  WebSocket?: WebSocketConstructor;
  fetch?: FetchLike;
  /** Tried in this order when one cannot be opened. */
  transports?: readonly TransportName[];
  /**
   * Wire protocol of the WebSocket: `v1` (JSON text, the default) or `v2` (binary frames,
   * compressed; docs/reference/protocol-v2.md). SSE and long-poll always speak v1.
   */
  protocol?: WireProtocol;
  /** Opens the `tcp` transport (protocol v2 over TCP): `tcpTransport({ port })` from the Node entry. */
  tcp?: TransportFactory;
  /** Reconnect delays (full jitter, exponential, capped), or `false` to never reconnect by itself. */
  reconnect?: { minDelayMs?: number; maxDelayMs?: number } | false;
  /** Acks are sent in batches: after `ackDelayMs`, or at `ackBatchSize` ids. */
  ackDelayMs?: number;
  ackBatchSize?: number;
  /** Message ids remembered for dedupe. */
  dedupeWindow?: number;
  openTimeoutMs?: number;
  pollTimeoutSeconds?: number;
  /** Uniform random in [0, 1) for the reconnect jitter (tests). */
  random?: () => number;
}

export type ConnectionState = 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface ConnectedEvent {
  readonly transport: TransportName;
  /** From `welcome` (WebSocket, SSE); null on long-poll. */
  readonly connectionId: string | null;
  readonly userId: string | null;
  readonly deviceId: string | null;
  /** The `since` this connection resumed from (null: the server's unacked backlog). */
  readonly since: number | null;
}

export interface DisconnectedEvent {
  readonly code: number;
  readonly reason: string;
  readonly willReconnect: boolean;
  /** Delay before the next attempt, when one is planned. */
  readonly delayMs: number | null;
}

/**
 * `fatal` errors end the client (state `closed`) until the app calls `reconnect()`:
 * `unauthorized` / `forbidden` (refused handshake), `kicked` (close 4003), `token_expired`
 * (a fixed token ran out). Others are informational: `handler_failed`, `token_failed`,
 * server `error` frames (`forbidden` for a topic, `rate_limited`, …), `topics_unavailable`.
 */
export interface PushClientError {
  readonly code: string;
  readonly message: string;
  readonly fatal: boolean;
  readonly topic?: string;
  readonly cause?: unknown;
}

export interface StateEvent {
  readonly state: ConnectionState;
  readonly previous: ConnectionState;
}

export interface PushClientEvents {
  connected: ConnectedEvent;
  disconnected: DisconnectedEvent;
  message: PushMessage;
  error: PushClientError;
  state: StateEvent;
  /** A message was recalled by the server: remove it from the screen. */
  revoke: RevokeEvent;
  /** Another device of this user read up to `seq`: clear the unread marks up to it. */
  read: ReadEvent;
  /** Join/leave on topics subscribed with `presence: true`. */
  presence: TopicPresenceEvent;
}

export type MessageHandler = (message: PushMessage) => void;

export interface Subscription {
  readonly topic: string;
  unsubscribe(): void;
}

/**
 * A connection to message-push that stays up: it reconnects with backoff, resumes from the
 * last seq it saw, acks what it received, and hands each message to the app once, in order.
 *
 *   connect ─► [websocket ─► sse ─► long-poll] ─► welcome ─► messages ─► dedupe ─► handlers ─► acks
 *      ▲              (next one if it cannot open)                                              │
 *      └──────────── backoff (full jitter) ◄── close (not 4003 / 401 / 403) ◄───────────────────┘
 */
export class PushClient extends Emitter<PushClientEvents> {
  private current: ConnectionState = 'connecting';
  private transport: Transport | null = null;
  private readonly names: readonly TransportName[];
  private index = 0;
  private stopped = false;
  private token = '';
  private tokenExp: number | null = null;
  private storageKey: string | null = null;
  private readonly storage: PushStorage | null;
  private loaded = false;
  private seq: number | null = null;
  private readonly topicOffsets = new Map<string, number>();
  private readonly subs = new Map<string, Set<MessageHandler>>();
  /** Topics subscribed without `since`: the `subscribed` reply sets where they start. */
  private readonly liveOnly = new Set<string>();
  /** Topics whose join/leave events were asked for. */
  private readonly presenceTopics = new Set<string>();
  private readonly dedupe: DedupeWindow;
  private readonly acks: AckBatcher;
  private readonly backoff: Backoff;
  private readonly baseUrl: string;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private livenessTimer: ReturnType<typeof setInterval> | null = null;
  private lastActivity = 0;
  private since: number | null = null;

  constructor(private readonly options: ConnectOptions) {
    super();
    if (!options.app) throw new TypeError('connect: app is required');
    if (!options.token && !options.getToken) throw new TypeError('connect: token or getToken is required');
    this.baseUrl = normalizeBaseUrl(options.url);
    this.names = options.transports?.length ? options.transports : DEFAULT_TRANSPORTS;
    this.storage = options.storage === undefined ? defaultStorage() : options.storage;
    this.dedupe = new DedupeWindow(options.dedupeWindow ?? DEFAULT_DEDUPE_WINDOW);
    this.acks = new AckBatcher({
      ...(options.ackDelayMs !== undefined ? { delayMs: options.ackDelayMs } : {}),
      ...(options.ackBatchSize !== undefined ? { maxBatch: options.ackBatchSize } : {}),
    });
    this.backoff = new Backoff({
      ...(options.reconnect || {}),
      ...(options.random ? { random: options.random } : {}),
    });
    void this.attempt();
  }

  get state(): ConnectionState {
    return this.current;
  }

  /** The transport in use while connected. */
  get transportName(): TransportName | null {
    return this.transport?.name ?? null;
  }

  /** The newest user seq handed to the app (the next resume point). */
  get lastSeq(): number | null {
    return this.seq;
  }

  /**
   * Topic messages go to `handler` (and to `message` listeners). After a reconnect the
   * client subscribes again with `since` = the last offset it saw, so nothing is missed;
   * `since` here replays from that offset on the first subscribe.
   */
  subscribe(
    topic: string,
    handler: MessageHandler,
    options: { since?: number; presence?: boolean } = {},
  ): Subscription {
    let handlers = this.subs.get(topic);
    if (!handlers) {
      handlers = new Set();
      this.subs.set(topic, handlers);
      if (options.presence) this.presenceTopics.add(topic);
      if (options.since !== undefined && !this.topicOffsets.has(topic))
        this.topicOffsets.set(topic, options.since);
      if (this.current === 'connected') this.sendSubscribe(topic);
    }
    handlers.add(handler);
    return {
      topic,
      unsubscribe: () => {
        handlers.delete(handler);
        if (handlers.size === 0 && this.subs.get(topic) === handlers) this.unsubscribe(topic);
      },
    };
  }

  /** Drops every handler of a topic and tells the server; its offset is forgotten. */
  unsubscribe(topic: string): void {
    if (!this.subs.delete(topic)) return;
    this.presenceTopics.delete(topic);
    this.topicOffsets.delete(topic);
    this.liveOnly.delete(topic);
    if (this.current === 'connected') this.transport?.send({ op: 'unsubscribe', topic });
  }

  /**
   * Marks the user's messages as read up to `seq` (default: the newest handed to the app).
   * The server keeps the unread count and tells the user's other devices (`read` event).
   * Over SSE and long-poll it goes as `POST /v1/me/read`. Returns false when not connected.
   */
  read(seq: number | null = this.seq): boolean {
    const t = this.transport;
    if (seq === null || !t || this.current !== 'connected') return false;
    if (t.canSend) {
      t.send({ op: 'read', seq });
      return true;
    }
    const fetchFn = this.options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch?.bind(globalThis);
    if (!fetchFn) return false;
    const q = new URLSearchParams({ app: this.options.app, token: this.token });
    fetchFn(`${this.baseUrl}/v1/me/read?${q}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ seq }),
    }).then(
      (res) => res.text(),
      () => undefined,
    );
    return true;
  }

  /** Connects again after a fatal close or `close()`, or now instead of after the backoff delay. */
  reconnect(): void {
    if (this.current === 'connected' || (this.current === 'connecting' && this.reconnectTimer === null))
      return;
    this.stopped = false;
    this.backoff.reset();
    this.clearTimer('reconnect');
    void this.attempt();
  }

  /** Stops for good: sends waiting acks, saves the resume position, closes the connection. */
  close(): void {
    this.stopped = true;
    this.clearTimer('reconnect');
    this.acks.flush();
    this.persist();
    if (this.transport) this.transport.close(CLOSE.normal, 'client closed');
    else this.setState('closed');
  }

  private async attempt(): Promise<void> {
    this.reconnectTimer = null;
    this.index = 0;
    this.setState('connecting');
    try {
      this.token = this.options.getToken ? await this.options.getToken() : this.options.token!;
    } catch (err) {
      this.report({
        code: 'token_failed',
        message: `getToken failed: ${describe(err)}`,
        fatal: false,
        cause: err,
      });
      this.retryLater({ code: CLOSE.abnormal, reason: 'no token', opened: false });
      return;
    }
    const claims = readToken(this.token);
    this.tokenExp = claims.exp;
    if (!this.options.getToken && claims.exp !== null && claims.exp <= Date.now()) {
      this.fail({
        code: 'token_expired',
        message: 'the token has expired; pass getToken to renew it',
        fatal: true,
      });
      return;
    }
    if (!this.loaded) await this.load(claims.sub);
    if (this.stopped) return this.setState('closed');
    this.open();
  }

  /** Reads the resume position once; keyed by app, user and device, so users never share one. */
  private async load(sub: string | null): Promise<void> {
    this.loaded = true;
    if (!this.storage) return;
    const device = this.options.device ? `:${this.options.device}` : '';
    this.storageKey = `message-push:${this.options.app}:${sub ?? '-'}${device}`;
    try {
      const state = decodeResumeState(await this.storage.get(this.storageKey));
      this.seq ??= state.seq;
      for (const [t, o] of Object.entries(state.topics))
        if (!this.topicOffsets.has(t)) this.topicOffsets.set(t, o);
    } catch (err) {
      this.report({ code: 'storage_failed', message: describe(err), fatal: false, cause: err });
    }
  }

  private open(): void {
    const name = this.names[this.index]!;
    const params: TransportParams = {
      baseUrl: this.baseUrl,
      app: this.options.app,
      device: this.options.device,
      token: () => this.token,
      since: () => this.seq,
    };
    this.since = this.seq;
    let t: Transport | null = null;
    const handlers: TransportHandlers = {
      onOpen: (welcome) => t === this.transport && this.opened(welcome),
      onFrames: (frames) => t === this.transport && this.receive(frames),
      onActivity: () => {
        this.lastActivity = Date.now();
      },
      onClose: (info) => t === this.transport && this.transportClosed(info),
    };
    const timeout = this.options.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS;
    const fetchFn = this.options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch?.bind(globalThis);
    const Ws = this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (name === 'websocket' && Ws) {
      t = new WebSocketTransport(Ws, params, handlers, timeout, this.options.protocol ?? 'v1');
    } else if (name === 'tcp' && this.options.tcp) t = this.options.tcp(params, handlers, timeout);
    else if (name === 'sse' && fetchFn) t = new SseTransport(fetchFn, params, handlers, timeout);
    else if (name === 'long-poll' && fetchFn) {
      t = new LongPollTransport(
        fetchFn,
        params,
        handlers,
        this.options.pollTimeoutSeconds ?? DEFAULT_POLL_SECONDS,
      );
    }
    this.transport = t;
    if (!t)
      this.transportClosed({ code: CLOSE.abnormal, reason: `${name} is not available here`, opened: false });
  }

  private opened(welcome: WelcomeFrame | null): void {
    const t = this.transport!;
    this.backoff.reset();
    this.lastActivity = Date.now();
    this.acks.attach((ids) => t.ack(ids));
    this.setState('connected');
    this.emit('connected', {
      transport: t.name,
      connectionId: welcome?.connection_id ?? null,
      userId: welcome?.user_id ?? null,
      deviceId: welcome?.device_id ?? null,
      since: this.since,
    });
    if (this.subs.size > 0 && !t.canSend) {
      this.report({
        code: 'topics_unavailable',
        message: `topics need the WebSocket; ${t.name} carries user messages and $all only`,
        fatal: false,
      });
    }
    for (const topic of this.subs.keys()) this.sendSubscribe(topic);
    this.scheduleRefresh();
    if (welcome && welcome.heartbeat_ms > 0) this.watchLiveness(welcome.heartbeat_ms);
  }

  private receive(frames: ServerFrame[]): void {
    let changed = false;
    for (const f of frames) {
      switch (f.op) {
        case 'message':
          if (this.accept(toMessage(f))) changed = true;
          break;
        case 'subscribed':
          if (this.liveOnly.delete(f.topic) && this.subs.has(f.topic) && !this.topicOffsets.has(f.topic)) {
            this.topicOffsets.set(f.topic, f.offset);
            changed = true;
          }
          break;
        case 'revoke': {
          const { op: _op, ...event } = f;
          // Remembered as seen, so a copy still in flight (a resend, a backlog page) never shows.
          this.dedupe.add(f.id);
          this.emit('revoke', event);
          break;
        }
        case 'read':
          this.emit('read', { seq: f.seq });
          break;
        case 'join':
        case 'leave':
          this.emit('presence', { op: f.op, topic: f.topic, user: f.user, device: f.device });
          break;
        case 'error': {
          const topic = typeof f.ref === 'string' && f.ref.startsWith('sub:') ? f.ref.slice(4) : undefined;
          this.report({ code: f.code, message: f.message, fatal: false, ...(topic ? { topic } : {}) });
          break;
        }
        default:
          break;
      }
    }
    if (changed) this.persist();
  }

  /**
   * Hands a message to the app unless it is a repeat: a user seq at or below the last one
   * handed over (that is what `since` promises), a topic offset at or below the topic's
   * last, or an id in the dedupe window. User messages are acked either way, so resends stop.
   */
  private accept(m: PushMessage): boolean {
    let fresh = !this.dedupe.has(m.id);
    if (m.seq !== undefined) {
      if (this.seq !== null && m.seq <= this.seq) fresh = false;
    } else if (m.topic !== undefined && m.offset !== undefined) {
      const last = this.topicOffsets.get(m.topic);
      if (last !== undefined && m.offset <= last) fresh = false;
    }
    if (fresh) {
      this.dedupe.add(m.id);
      if (m.seq !== undefined) this.seq = m.seq;
      else if (m.topic !== undefined && m.offset !== undefined) this.topicOffsets.set(m.topic, m.offset);
      const handlers = m.topic !== undefined ? this.subs.get(m.topic) : undefined;
      if (handlers) {
        for (const h of [...handlers]) {
          try {
            h(m);
          } catch (err) {
            this.onListenerError('message', err);
          }
        }
      }
      this.emit('message', m);
    }
    if (m.seq !== undefined) this.acks.add(m.id);
    return fresh;
  }

  private sendSubscribe(topic: string): void {
    const t = this.transport;
    if (!t?.canSend) return;
    const since = this.topicOffsets.get(topic);
    if (since === undefined) this.liveOnly.add(topic);
    t.send({
      op: 'subscribe',
      topic,
      ref: `sub:${topic}`,
      ...(since !== undefined ? { since } : {}),
      ...(this.presenceTopics.has(topic) ? { presence: true } : {}),
    });
  }

  private transportClosed(info: CloseInfo): void {
    this.transport = null;
    this.acks.attach(null);
    this.clearTimer('refresh');
    this.clearTimer('liveness');
    this.liveOnly.clear();
    if (this.stopped) {
      this.persist();
      this.disconnected(info, null);
      this.setState('closed');
      return;
    }
    const fatal = fatalError(info, !!this.options.getToken);
    if (fatal) {
      this.disconnected(info, null);
      this.fail(fatal);
      return;
    }
    // Could not open and nothing says why (blocked, proxy, no such endpoint): next transport now.
    if (!info.opened && info.status === undefined && this.index + 1 < this.names.length) {
      this.index++;
      this.open();
      return;
    }
    this.retryLater(info);
  }

  private retryLater(info: CloseInfo): void {
    if (this.options.reconnect === false) {
      this.disconnected(info, null);
      this.setState('closed');
      return;
    }
    const delayMs = this.backoff.next();
    this.reconnectTimer = setTimeout(() => void this.attempt(), delayMs);
    this.disconnected(info, delayMs);
    this.setState('disconnected');
  }

  /** `disconnected` is for connections that were open; `delayMs` null = no reconnect coming. */
  private disconnected(info: CloseInfo, delayMs: number | null): void {
    if (!info.opened) return;
    this.emit('disconnected', {
      code: info.code,
      reason: info.reason,
      willReconnect: delayMs !== null,
      delayMs,
    });
  }

  private fail(error: PushClientError): void {
    this.stopped = true;
    this.persist();
    this.report(error);
    this.setState('closed');
  }

  /** Refreshes the token before it expires (WebSocket: `refresh` frame; fallbacks use it on their next request). */
  private scheduleRefresh(): void {
    this.clearTimer('refresh');
    const exp = this.tokenExp;
    if (!this.options.getToken || exp === null) return;
    // Timers take at most 2^31 - 1 ms (~24.8 days); a longer token is looked at again then.
    const delay = Math.max(0, refreshAt(exp, Date.now()) - Date.now());
    if (delay > MAX_TIMER_MS) {
      this.refreshTimer = setTimeout(() => this.scheduleRefresh(), MAX_TIMER_MS);
      return;
    }
    this.refreshTimer = setTimeout(() => void this.refresh(), delay);
  }

  private async refresh(): Promise<void> {
    this.refreshTimer = null;
    try {
      const token = await this.options.getToken!();
      if (this.current !== 'connected') return;
      this.token = token;
      this.tokenExp = readToken(token).exp;
      this.transport?.send({ op: 'refresh', token, ref: 'refresh' });
      this.scheduleRefresh();
    } catch (err) {
      // The server closes with 4001 at expiry; the reconnect asks getToken again.
      this.report({
        code: 'token_failed',
        message: `getToken failed: ${describe(err)}`,
        fatal: false,
        cause: err,
      });
    }
  }

  /**
   * The server pings every `heartbeat_ms`, but browsers hide WebSocket pings: the client
   * sends `{"op":"ping"}` when it has heard nothing for an interval, and gives the
   * connection up after two and a half silent intervals (a half-open TCP connection).
   */
  private watchLiveness(heartbeatMs: number): void {
    this.clearTimer('liveness');
    this.livenessTimer = setInterval(() => {
      const t = this.transport;
      if (!t) return;
      const silent = Date.now() - this.lastActivity;
      if (silent > heartbeatMs * 2.5) t.close(CLOSE_HEARTBEAT_TIMEOUT, 'heartbeat timeout');
      else if (silent >= heartbeatMs) t.send({ op: 'ping' });
    }, heartbeatMs);
  }

  private persist(): void {
    if (!this.storage || !this.storageKey) return;
    const value = encodeResumeState({ seq: this.seq, topics: Object.fromEntries(this.topicOffsets) });
    try {
      const r = this.storage.set(this.storageKey, value);
      if (r && typeof (r as Promise<void>).catch === 'function')
        (r as Promise<void>).catch((err) => this.storageFailed(err));
    } catch (err) {
      this.storageFailed(err);
    }
  }

  private storageFailed(err: unknown): void {
    this.report({ code: 'storage_failed', message: describe(err), fatal: false, cause: err });
  }

  private setState(state: ConnectionState): void {
    if (state === this.current) return;
    const previous = this.current;
    this.current = state;
    this.emit('state', { state, previous });
  }

  private report(error: PushClientError): void {
    this.emit('error', error);
  }

  protected override onListenerError(event: keyof PushClientEvents, err: unknown): void {
    if (event === 'error') return; // never loop
    this.report({
      code: 'handler_failed',
      message: `a ${String(event)} handler threw: ${describe(err)}`,
      fatal: false,
      cause: err,
    });
  }

  private clearTimer(which: 'reconnect' | 'refresh' | 'liveness'): void {
    if (which === 'reconnect' && this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    if (which === 'refresh' && this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    if (which === 'liveness' && this.livenessTimer !== null) clearInterval(this.livenessTimer);
    if (which === 'reconnect') this.reconnectTimer = null;
    if (which === 'refresh') this.refreshTimer = null;
    if (which === 'liveness') this.livenessTimer = null;
  }
}

/** The closes after which reconnecting cannot help, unless the app decides otherwise. */
function fatalError(info: CloseInfo, canRenewToken: boolean): PushClientError | null {
  if (info.code === CLOSE.kicked)
    return { code: 'kicked', message: info.reason || 'closed by the kick API', fatal: true };
  if (!info.opened && info.status === 401)
    return { code: 'unauthorized', message: info.reason || 'token refused', fatal: true };
  if (!info.opened && info.status === 403)
    return { code: 'forbidden', message: info.reason || 'app or origin refused', fatal: true };
  if (info.code === CLOSE.tokenExpired && !canRenewToken) {
    return {
      code: 'token_expired',
      message: 'the token has expired; pass getToken to renew it',
      fatal: true,
    };
  }
  return null;
}

function normalizeBaseUrl(url: string | undefined): string {
  const origin = (globalThis as { location?: { origin?: string } }).location?.origin;
  const base = url ?? origin;
  if (!base) throw new TypeError('connect: url is required outside browsers');
  const absolute = new URL(base, origin ?? undefined);
  const protocol = absolute.protocol.replace(/^ws/, 'http');
  const path = absolute.pathname.replace(/\/+$/, '').replace(/\/v1\/ws$/, '');
  return `${protocol}//${absolute.host}${path}`;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Opens a client; it connects at once and keeps itself connected until `close()` or a fatal close. */
export function connect(options: ConnectOptions): PushClient {
  return new PushClient(options);
}
