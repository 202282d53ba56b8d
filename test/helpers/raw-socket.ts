import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

/**
 * A raw TCP client for the edges a well-behaved library never shows: a WebSocket that never
 * answers pings, headers trickled byte by byte, bytes no HTTP client would send.
 */
export class RawSocket {
  readonly socket: Socket;
  received = Buffer.alloc(0);
  /** When the peer ended or reset the connection (ms since the epoch), else null. */
  closedAt: number | null = null;
  private readonly closed: Promise<number>;
  private waiters: (() => void)[] = [];

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.closedAt = Date.now();
        for (const w of this.waiters.splice(0)) w();
        resolve(this.closedAt);
      }),
    );
  }

  static open(port: number, host = '127.0.0.1'): Promise<RawSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, host);
      socket.once('connect', () => resolve(new RawSocket(socket)));
      socket.once('error', reject);
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Resolves when the received bytes contain `marker` (rejects if the socket closes first). */
  async until(marker: string): Promise<string> {
    for (;;) {
      const text = this.received.toString('latin1');
      if (text.includes(marker)) return text;
      if (this.closedAt !== null) throw new Error(`closed before "${marker}": ${text.slice(0, 200)}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /** Resolves once more bytes arrive or the socket closes. */
  more(): Promise<void> {
    if (this.closedAt !== null) return Promise.resolve();
    return new Promise<void>((r) => this.waiters.push(r));
  }

  /** Resolves with the close time once the peer has closed the connection. */
  whenClosed(): Promise<number> {
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Sends a WebSocket upgrade for `path` and resolves at the 101 (or rejects with the response). */
  async upgrade(path: string, headers: Record<string, string> = {}): Promise<number> {
    const lines = [
      `GET ${path} HTTP/1.1`,
      'Host: 127.0.0.1',
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
      'Sec-WebSocket-Version: 13',
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ];
    this.write(`${lines.join('\r\n')}\r\n\r\n`);
    const text = await this.until('\r\n\r\n');
    if (!text.startsWith('HTTP/1.1 101')) throw new Error(`upgrade refused: ${text.split('\r\n')[0]}`);
    return Date.now();
  }

  /** Sends one masked WebSocket frame (client → server), text by default. */
  sendFrame(payload: string | Buffer, opcode = 0x1): void {
    this.write(maskedFrame(typeof payload === 'string' ? Buffer.from(payload) : payload, opcode));
  }
}

/** A client frame as RFC 6455 wants it: FIN set, masked. */
export function maskedFrame(payload: Buffer, opcode = 0x1, fin = true): Buffer {
  const mask = randomBytes(4);
  const len = payload.length;
  const head =
    len < 126
      ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | len])
      : len < 65536
        ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 126, len >> 8, len & 0xff])
        : (() => {
            const b = Buffer.alloc(10);
            b[0] = (fin ? 0x80 : 0) | opcode;
            b[1] = 0x80 | 127;
            b.writeBigUInt64BE(BigInt(len), 2);
            return b;
          })();
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = payload[i]! ^ mask[i % 4]!;
  return Buffer.concat([head, mask, body]);
}
