import { CLOSE, type ClientFrame, parseFrames } from '../protocol.js';
import { ProtocolError, SUBPROTOCOL_V2 } from '../protocol-v2.js';
import {
  type CloseInfo,
  deliverFrames,
  type Transport,
  type TransportHandlers,
  type TransportParams,
} from './transport.js';
import { asBytes, offeredCodecs, V2Channel } from './v2-channel.js';

/** Wire protocol on the WebSocket: `v1` JSON text (the default) or `v2` binary frames. */
export type WireProtocol = 'v1' | 'v2';

/** The part of the WHATWG WebSocket the client uses; browsers' and `ws`'s both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  /** Set to `arraybuffer` for protocol v2. */
  binaryType?: string;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

const OPEN = 1;

/**
 * WebSocket with subprotocol `push.v1.json`, or `push.v2.bin` (binary frames, see
 * docs/reference/protocol-v2.md) when asked for. Open means `welcome` was received (the server
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
  /** Protocol v2 state; null on v1. */
  private readonly v2: V2Channel | null;

  constructor(
    Impl: WebSocketConstructor,
    params: TransportParams,
    private readonly handlers: TransportHandlers,
    openTimeoutMs: number,
    protocol: WireProtocol = 'v1',
  ) {
    const q = new URLSearchParams({ app: params.app, token: params.token() });
    if (params.device) q.set('device', params.device);
    const since = params.since();
    if (since !== null) q.set('since', String(since));
    if (protocol === 'v2') q.set('codecs', offeredCodecs().join(','));
    const url = `${params.baseUrl.replace(/^http/, 'ws')}/v1/ws?${q}`;
    this.openTimer = setTimeout(() => this.close(CLOSE.abnormal, 'open timeout'), openTimeoutMs);
    this.v2 = protocol === 'v2' ? new V2Channel((bytes) => this.socket.send(bytes)) : null;
    try {
      this.socket = new Impl(url, protocol === 'v2' ? SUBPROTOCOL_V2 : 'push.v1.json');
      if (this.v2) this.socket.binaryType = 'arraybuffer';
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
    if (this.socket.readyState !== OPEN) return;
    if (this.v2) this.v2.send(frame);
    else this.socket.send(JSON.stringify(frame));
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
    if (this.ended) return;
    let frames: ReturnType<typeof parseFrames>;
    if (this.v2) {
      const bytes = asBytes(data);
      if (bytes === null) return;
      try {
        frames = this.v2.receive(bytes).frames;
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        this.close(err.tooLarge ? CLOSE.tooBig : CLOSE.protocolError, err.message);
        return;
      }
    } else {
      if (typeof data !== 'string') return;
      frames = parseFrames(data);
    }
    this.handlers.onActivity();
    this.welcomed = deliverFrames(frames, this.welcomed, this.handlers, () => clearTimeout(this.openTimer));
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
