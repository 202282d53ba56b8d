import net from 'node:net';
import tls from 'node:tls';
import { gunzipSync } from 'node:zlib';
import {
  clientKind,
  KIND,
  ProtocolError,
  toServerFrames,
  V2Reader,
  V2Writer,
} from '../../client/src/protocol-v2.js';
import type { Frame } from './client.js';

/** A free loopback port for a listener a server opens itself (PUSH_TCP_PORT). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface HelloFields {
  app?: string;
  token?: string;
  device?: string;
  since?: number;
  versions?: number[];
  codecs?: string[];
  crc?: boolean;
  [key: string]: unknown;
}

/**
 * A protocol v2 test client over plain TCP: sends a hello, then v1-shaped frames like
 * TestClient; server frames are flattened to v1 shapes and waited for by predicate.
 * A server PING is answered with PONG (and recorded).
 */
export class TcpTestClient {
  readonly frames: Frame[] = [];
  ended = false;
  private readonly reader = new V2Reader((b, max) => gunzipSync(b, { maxOutputLength: max }));
  private readonly writer: V2Writer;
  private waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  private endWaiters: (() => void)[] = [];
  private cursor = 0;

  private constructor(
    readonly socket: net.Socket,
    crc: boolean,
    readonly answerPings = true,
  ) {
    this.writer = new V2Writer(crc);
    socket.on('data', (chunk) => {
      try {
        for (const m of this.reader.push(chunk)) {
          for (const f of toServerFrames(m)) {
            if (f.op === ('ping' as string) && this.answerPings) this.sendKind(KIND.pong, {});
            this.push(f as Frame);
          }
        }
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        this.push({ op: 'client_protocol_error', message: err.message });
      }
    });
    socket.on('close', () => {
      this.ended = true;
      for (const w of this.endWaiters) w();
      this.endWaiters = [];
    });
    socket.on('error', () => {});
  }

  /** Connects and sends the hello (unless `hello` is null); does not wait for welcome. */
  static connect(
    port: number,
    hello: HelloFields | null,
    o: { crc?: boolean; answerPings?: boolean; ca?: string } = {},
  ): Promise<TcpTestClient> {
    return new Promise((resolve, reject) => {
      const socket =
        o.ca === undefined
          ? net.connect(port, '127.0.0.1')
          : tls.connect({ port, host: '127.0.0.1', ca: o.ca });
      socket.once('error', reject);
      socket.once(o.ca === undefined ? 'connect' : 'secureConnect', () => {
        socket.off('error', reject);
        const c = new TcpTestClient(socket, o.crc ?? hello?.crc === true, o.answerPings ?? true);
        if (hello) c.sendKind(KIND.hello, { versions: [2], ...hello });
        resolve(c);
      });
    });
  }

  /** Connects, says hello and waits for welcome. */
  static async open(
    port: number,
    hello: HelloFields,
    o: { ca?: string; answerPings?: boolean } = {},
  ): Promise<TcpTestClient> {
    const c = await TcpTestClient.connect(port, hello, o);
    const first = await c.next(() => true);
    if (first.op !== 'welcome') throw new Error(`expected welcome, got ${JSON.stringify(first)}`);
    return c;
  }

  sendKind(kind: number, fields: Record<string, unknown>): void {
    for (const f of this.writer.control(kind, fields)) this.socket.write(f);
  }

  send(frame: Record<string, unknown>): void {
    const { op, ...fields } = frame;
    this.sendKind(clientKind(String(op)) ?? 0x1f, fields);
  }

  async request(frame: Record<string, unknown>): Promise<Frame> {
    const ref = `r${Math.random().toString(36).slice(2)}`;
    this.send({ ...frame, ref });
    return this.next((f) => f.ref === ref);
  }

  private push(f: Frame): void {
    this.frames.push(f);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(f)) return true;
      w.resolve(f);
      return false;
    });
  }

  next(pred: (f: Frame) => boolean = () => true, timeoutMs = 10_000): Promise<Frame> {
    for (let i = this.cursor; i < this.frames.length; i++) {
      if (pred(this.frames[i]!)) {
        this.cursor = i + 1;
        return Promise.resolve(this.frames[i]!);
      }
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(`no matching frame in ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-5))}`),
          ),
        timeoutMs,
      );
      this.waiters.push({
        pred,
        resolve: (f) => {
          clearTimeout(timer);
          this.cursor = this.frames.indexOf(f) + 1;
          resolve(f);
        },
      });
    });
  }

  async messages(n: number): Promise<Frame[]> {
    const out: Frame[] = [];
    while (out.length < n) out.push(await this.next((f) => f.op === 'message'));
    return out;
  }

  /** Resolves once the server has closed the socket. */
  closed(timeoutMs = 10_000): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('socket did not close')), timeoutMs);
      this.endWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
