import { CLOSE, type ClientFrame, parseFrames } from '../protocol.js';
import {
  type CloseInfo,
  deliverFrames,
  type Transport,
  type TransportHandlers,
  type TransportParams,
} from './transport.js';

/** The part of the WHATWG WebSocket the client uses; browsers' and `ws`'s both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

const OPEN = 1;

/**
 * WebSocket with subprotocol `push.v1.json`. Open means `welcome` was received (the server
 * sends it once the connection is wired for live delivery). A handshake refused before
 * the upgrade shows its HTTP status where the implementation exposes it (`ws` in Node);
 * browsers hide it, so the client learns it from the next transport it tries.
 */
export class WebSocketTransport implements Transport {
  readonly name = 'websocket';
  readonly canSend = true;
  private readonly socket: WebSocketLike;
  private welcomed = false;
  private ended = false;
  private status: number | undefined;
  private readonly openTimer: ReturnType<typeof setTimeout>;

  constructor(
    Impl: WebSocketConstructor,
    params: TransportParams,
    private readonly handlers: TransportHandlers,
    openTimeoutMs: number,
  ) {
    const q = new URLSearchParams({ app: params.app, token: params.token() });
    if (params.device) q.set('device', params.device);
    const since = params.since();
    if (since !== null) q.set('since', String(since));
    const url = `${params.baseUrl.replace(/^http/, 'ws')}/v1/ws?${q}`;
    this.openTimer = setTimeout(() => this.close(CLOSE.abnormal, 'open timeout'), openTimeoutMs);
    try {
      this.socket = new Impl(url, 'push.v1.json');
    } catch (err) {
      // Some environments throw synchronously (blocked, bad URL): same as a failed open.
      this.socket = { readyState: 3 } as WebSocketLike;
      queueMicrotask(() => this.end({ code: CLOSE.abnormal, reason: String(err), opened: false }));
      return;
    }
    this.socket.onmessage = (ev) => this.receive(ev.data);
    this.socket.onerror = (ev) => {
      // `ws` reports a refused upgrade as "Unexpected server response: 401".
      const m = /Unexpected server response: (\d{3})/.exec(
        String((ev as { message?: unknown })?.message ?? ''),
      );
      if (m) this.status = Number(m[1]);
    };
    this.socket.onclose = (ev) => this.end({ code: ev.code, reason: ev.reason, opened: this.welcomed });
  }

  send(frame: ClientFrame): void {
    if (this.socket.readyState === OPEN) this.socket.send(JSON.stringify(frame));
  }

  ack(ids: string[]): void {
    this.send({ op: 'ack', ids });
  }

  close(code: number = CLOSE.normal, reason = ''): void {
    if (this.ended) return;
    try {
      // Browsers only let scripts send 1000 or 3000–4999.
      this.socket.close(code === CLOSE.normal || (code >= 3000 && code < 5000) ? code : CLOSE.normal, reason);
    } catch {}
    this.end({ code, reason, opened: this.welcomed });
  }

  private receive(data: unknown): void {
    if (this.ended || typeof data !== 'string') return;
    this.handlers.onActivity();
    this.welcomed = deliverFrames(parseFrames(data), this.welcomed, this.handlers, () =>
      clearTimeout(this.openTimer),
    );
  }

  private end(info: CloseInfo): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.openTimer);
    this.socket.onmessage = this.socket.onclose = null;
    // Not null: `ws` (Node) reports a socket closed while still connecting with an `error`
    // event on the next tick, and an `error` nobody handles is an uncaught exception.
    this.socket.onerror = () => {};
    this.handlers.onClose(
      this.status !== undefined && !info.opened ? { ...info, status: this.status } : info,
    );
  }
}
