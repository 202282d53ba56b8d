/**
 * A hand-written minimal RFC 6455 server on a node:http upgrade, for the engine study only:
 * how much of `ws`'s cost is the library and how much is Node's socket. It speaks what the
 * bench's raw peers need and no more: the opening handshake (version 13, no extensions, no
 * subprotocols), unmasking client frames, fragmented data messages, ping/pong and the close
 * handshake. Frames the server sends are built once and written as shared buffers.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const MAX_MESSAGE = 64 * 1024;
const OP = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

/** One unmasked server frame (FIN set): the same bytes can go to every connection. */
export function serverFrame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65_536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + n);
  out[0] = 0x80 | opcode;
  if (n < 126) {
    out[1] = n;
  } else if (n < 65_536) {
    out[1] = 126;
    out.writeUInt16BE(n, 2);
  } else {
    out[1] = 127;
    out.writeBigUInt64BE(BigInt(n), 2);
  }
  payload.copy(out, head);
  return out;
}

const PING = serverFrame(OP.ping, Buffer.alloc(0));

export class Rfc6455Connection {
  /** Bytes of an unfinished frame; null while idle, so an idle connection holds no buffer. */
  private pending: Buffer | null = null;
  private parts: Buffer[] = [];
  private partBytes = 0;
  private partOpcode = 0;
  private closing = false;

  constructor(
    readonly socket: Duplex,
    private readonly onMessage: (c: Rfc6455Connection, data: Buffer, opcode: number) => void,
  ) {}

  /** Writes a frame made by `serverFrame` (shared between connections). */
  write(frame: Buffer): void {
    if (!this.closing) this.socket.write(frame);
  }

  ping(): void {
    this.write(PING);
  }

  close(code: number): void {
    if (this.closing) return;
    const body = Buffer.allocUnsafe(2);
    body.writeUInt16BE(code, 0);
    this.socket.write(serverFrame(OP.close, body));
    this.closing = true;
    this.socket.end();
  }

  onData(chunk: Buffer): void {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    while (buf.length >= 2) {
      const b1 = buf[1]!;
      // client frames must be masked
      if ((b1 & 0x80) === 0) {
        this.close(1002);
        return;
      }
      let length = b1 & 0x7f;
      let at = 2;
      if (length === 126) {
        if (buf.length < 4) break;
        length = buf.readUInt16BE(2);
        at = 4;
      } else if (length === 127) {
        if (buf.length < 10) break;
        const big = buf.readBigUInt64BE(2);
        if (big > BigInt(MAX_MESSAGE)) {
          this.close(1009);
          return;
        }
        length = Number(big);
        at = 10;
      }
      if (length > MAX_MESSAGE) {
        this.close(1009);
        return;
      }
      if (buf.length < at + 4 + length) break;
      const mask = buf.subarray(at, at + 4);
      const payload = Buffer.from(buf.subarray(at + 4, at + 4 + length));
      for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!;
      this.frame(buf[0]!, payload);
      if (this.closing) return;
      buf = buf.subarray(at + 4 + length);
    }
    if (buf.length > 0) this.pending = Buffer.from(buf);
  }

  private frame(b0: number, payload: Buffer): void {
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    // no extension was negotiated
    if (b0 & 0x70) {
      this.close(1002);
      return;
    }
    if (opcode >= 0x8) {
      if (!fin || payload.length > 125) {
        this.close(1002);
        return;
      }
      if (opcode === OP.ping) this.write(serverFrame(OP.pong, payload));
      else if (opcode === OP.close) this.close(payload.length >= 2 ? payload.readUInt16BE(0) : 1000);
      return;
    }
    if (opcode === OP.continuation) {
      if (this.parts.length === 0) {
        this.close(1002);
        return;
      }
    } else if (opcode === OP.text || opcode === OP.binary) {
      if (this.parts.length > 0) {
        this.close(1002);
        return;
      }
      this.partOpcode = opcode;
    } else {
      this.close(1002);
      return;
    }
    if (fin && this.parts.length === 0) {
      this.onMessage(this, payload, opcode);
      return;
    }
    this.partBytes += payload.length;
    if (this.partBytes > MAX_MESSAGE) {
      this.close(1009);
      return;
    }
    this.parts.push(payload);
    if (!fin) return;
    const whole = Buffer.concat(this.parts);
    this.parts = [];
    this.partBytes = 0;
    this.onMessage(this, whole, this.partOpcode);
  }
}

/** Serves WebSocket upgrades on `server`; `onMessage` gets each whole data message. */
export function attachRfc6455(
  server: Server,
  onOpen: (c: Rfc6455Connection) => void,
  onClose: (c: Rfc6455Connection) => void,
  onMessage: (c: Rfc6455Connection, data: Buffer, opcode: number) => void,
): void {
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const key = req.headers['sec-websocket-key'];
    if (
      req.headers.upgrade?.toLowerCase() !== 'websocket' ||
      req.headers['sec-websocket-version'] !== '13' ||
      typeof key !== 'string'
    ) {
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const accept = createHash('sha1')
      .update(key + GUID)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    (socket as Duplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    const c = new Rfc6455Connection(socket, onMessage);
    onOpen(c);
    socket.on('data', (chunk: Buffer) => c.onData(chunk));
    // node:http keeps its sockets half-open: a client that goes without a close frame
    // would otherwise leave this side open for ever.
    socket.on('end', () => socket.end());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => onClose(c));
    if (head.length > 0) c.onData(head);
  });
}

export { OP as RFC6455_OPCODES };
