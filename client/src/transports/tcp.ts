import net from 'node:net';
import tls from 'node:tls';
import { CLOSE, type ClientFrame } from '../protocol.js';
import { ProtocolError } from '../protocol-v2.js';
import {
  type CloseInfo,
  deliverFrames,
  type Transport,
  type TransportFactory,
  type TransportHandlers,
  type TransportParams,
} from './transport.js';
import { offeredCodecs, V2Channel } from './v2-channel.js';

export interface TcpTransportOptions {
  /** The server's PUSH_TCP_PORT. */
  readonly port: number;
  /** Defaults to the host of the client's `url`. */
  readonly host?: string;
  /** TLS: `true`, or options for `tls.connect` (a CA for a private certificate, say). */
  readonly tls?: boolean | tls.ConnectionOptions;
}

/**
 * Protocol v2 over a plain TCP (or TLS) socket, for Node: pass `tcp: tcpTransport({ port })`
 * and put `'tcp'` in `transports`. The hello carries app, token, device and since; the
 * server answers welcome, or an error frame with the HTTP status a WebSocket handshake
 * would have got, then closes.
 */
export function tcpTransport(options: TcpTransportOptions): TransportFactory {
  return (params, handlers, openTimeoutMs) => new TcpTransport(options, params, handlers, openTimeoutMs);
}

class TcpTransport implements Transport {
  readonly name = 'tcp';
  readonly canSend = true;
  private readonly socket: net.Socket;
  private readonly channel: V2Channel;
  private welcomed = false;
  private ended = false;
  private status: number | undefined;
  private readonly openTimer: ReturnType<typeof setTimeout>;

  constructor(
    options: TcpTransportOptions,
    params: TransportParams,
    private readonly handlers: TransportHandlers,
    openTimeoutMs: number,
  ) {
    const host = options.host ?? new URL(params.baseUrl).hostname;
    this.openTimer = setTimeout(() => this.close(CLOSE.abnormal, 'open timeout'), openTimeoutMs);
    const onConnect = () => {
      const since = params.since();
      this.channel.send({
        op: 'hello',
        app: params.app,
        token: params.token(),
        ...(params.device ? { device: params.device } : {}),
        ...(since !== null ? { since } : {}),
        versions: [2],
        codecs: offeredCodecs(),
      });
    };
    this.socket = options.tls
      ? tls.connect(
          { port: options.port, host, servername: host, ...(options.tls === true ? {} : options.tls) },
          onConnect,
        )
      : net.connect({ port: options.port, host }, onConnect);
    this.socket.setNoDelay(true);
    this.channel = new V2Channel((bytes) => this.socket.write(bytes));
    this.socket.on('data', (chunk: Buffer) => this.receive(chunk));
    this.socket.on('error', () => {});
    this.socket.on('close', () =>
      this.end({ code: CLOSE.abnormal, reason: 'connection lost', opened: this.welcomed }),
    );
  }

  send(frame: ClientFrame): void {
    if (!this.ended && this.socket.writable) this.channel.send(frame);
  }

  ack(ids: string[]): void {
    this.send({ op: 'ack', ids });
  }

  close(code: number = CLOSE.normal, reason = ''): void {
    if (this.ended) return;
    this.socket.end();
    this.end({ code, reason, opened: this.welcomed });
  }

  private receive(chunk: Buffer): void {
    if (this.ended) return;
    let got: ReturnType<V2Channel['receive']>;
    try {
      got = this.channel.receive(chunk);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.close(err.tooLarge ? CLOSE.tooBig : CLOSE.protocolError, err.message);
      return;
    }
    this.handlers.onActivity();
    if (!this.welcomed) {
      // A refused hello: an error frame with the handshake's status, then the close.
      const refused = got.frames.find((f) => f.op === 'error') as
        | { status?: number; message?: string }
        | undefined;
      if (refused && !got.frames.some((f) => f.op === 'welcome')) {
        this.status = refused.status;
        this.socket.destroy();
        this.end({ code: CLOSE.policy, reason: refused.message ?? 'refused', opened: false });
        return;
      }
    }
    this.welcomed = deliverFrames(got.frames, this.welcomed, this.handlers, () =>
      clearTimeout(this.openTimer),
    );
    if (got.close) {
      this.socket.end();
      this.end({ code: got.close.code, reason: got.close.reason, opened: this.welcomed });
    }
  }

  private end(info: CloseInfo): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.openTimer);
    this.handlers.onClose(
      this.status !== undefined && !info.opened ? { ...info, status: this.status } : info,
    );
  }
}
