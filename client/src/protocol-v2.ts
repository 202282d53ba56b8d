/// <reference path="./snappyjs.d.ts" />
/**
 * Protocol `push.v2.bin` for clients (docs/reference/protocol-v2.md): framing, CRC-32,
 * fragmentation and reassembly, decompression and the message envelope. Plain
 * Uint8Array code, so it runs in browsers and in Node alike; snappy is `snappyjs`, gzip
 * is handed in by the Node entry (browsers have no synchronous gunzip).
 */
import snappyjs from 'snappyjs';
import type { ServerFrame } from './protocol.js';

export const SUBPROTOCOL_V2 = 'push.v2.bin';
export const MAGIC = [0x4d, 0x50, 0x53, 0x48] as const;
export const VERSION = 2;
export const HEADER_BYTES = 16;
export const MAX_FRAGMENT = 64 * 1024;
export const MAX_MESSAGE = 1024 * 1024;

export const FLAG_MORE = 0x04;
export const FLAG_CRC = 0x08;
export const COMPRESSIONS = ['none', 'gzip', 'snappy'] as const;

export const KIND = {
  hello: 0x01,
  ack: 0x02,
  read: 0x03,
  subscribe: 0x04,
  unsubscribe: 0x05,
  ping: 0x06,
  refresh: 0x07,
  welcome: 0x21,
  message: 0x22,
  batch: 0x23,
  subscribed: 0x24,
  unsubscribed: 0x25,
  pong: 0x26,
  refreshed: 0x27,
  ok: 0x28,
  revoke: 0x29,
  read_sync: 0x2a,
  join: 0x2b,
  leave: 0x2c,
  close: 0x2e,
  error: 0x2f,
} as const;

// READ_SYNC carries the v1 op `read` (server → client), which names a client kind in KIND.
const KIND_NAMES = new Map<number, string>(
  Object.entries(KIND).map(([name, kind]) => [kind, name === 'read_sync' ? 'read' : name]),
);
const WELL_KNOWN_TYPES = ['', 'message', 'text', 'binary', 'notification', 'alarm'];
const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/** Decompressors by compression number; snappy is always there, gzip where the platform gives one. */
export type Gunzip = (body: Uint8Array, maxLength: number) => Uint8Array;

export class ProtocolError extends Error {
  constructor(
    message: string,
    readonly tooLarge = false,
  ) {
    super(message);
  }
}

let crcTable: Uint32Array | null = null;
/** CRC-32 (IEEE 802.3), as zlib's `crc32`. */
export function crc32(data: Uint8Array): number {
  if (crcTable === null) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** Numbers this side's messages and frames them (fragments past MAX_FRAGMENT; CRC when asked). */
export class V2Writer {
  private seq = 0;

  constructor(private readonly withCrc = false) {}

  /** A control message: `fields` is the v1 frame without `op`. */
  control(kind: number, fields: Record<string, unknown>): Uint8Array[] {
    return this.frames(
      kind,
      Object.keys(fields).length ? encoder.encode(JSON.stringify(fields)) : new Uint8Array(0),
    );
  }

  frames(kind: number, body: Uint8Array): Uint8Array[] {
    this.seq = (this.seq + 1) >>> 0;
    const room = MAX_FRAGMENT - (this.withCrc ? 4 : 0);
    const out: Uint8Array[] = [];
    let at = 0;
    do {
      const end = Math.min(at + room, body.length);
      out.push(
        encodeFrame(kind, end < body.length ? FLAG_MORE : 0, this.seq, body.subarray(at, end), this.withCrc),
      );
      at = end;
    } while (at < body.length);
    return out;
  }
}

/** One frame: header, payload and, with `withCrc`, the payload's CRC-32. */
export function encodeFrame(
  kind: number,
  flags: number,
  seq: number,
  payload: Uint8Array,
  withCrc = false,
): Uint8Array {
  const length = payload.length + (withCrc ? 4 : 0);
  const out = new Uint8Array(HEADER_BYTES + length);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint16(4, VERSION);
  out[6] = flags | (withCrc ? FLAG_CRC : 0);
  out[7] = kind;
  view.setUint32(8, length);
  view.setUint32(12, seq);
  out.set(payload, HEADER_BYTES);
  if (withCrc) view.setUint32(HEADER_BYTES + payload.length, crc32(payload));
  return out;
}

/** A whole message off the wire. */
export interface V2Message {
  readonly kind: number;
  readonly seq: number;
  readonly body: Uint8Array;
}

/**
 * Reads the server's frames: bytes in (a TCP stream or WebSocket messages), whole messages
 * out, reassembled and decompressed, within the same limits the server keeps.
 */
export class V2Reader {
  private pending: Uint8Array | null = null;
  private parts: Uint8Array[] = [];
  private partBytes = 0;
  private lastSeq = 0;

  constructor(private readonly gunzip: Gunzip | null = null) {}

  push(chunk: Uint8Array): V2Message[] {
    let buf = chunk;
    if (this.pending) {
      buf = new Uint8Array(this.pending.length + chunk.length);
      buf.set(this.pending);
      buf.set(chunk, this.pending.length);
      this.pending = null;
    }
    const out: V2Message[] = [];
    let at = 0;
    while (buf.length - at >= HEADER_BYTES) {
      const view = new DataView(buf.buffer, buf.byteOffset + at);
      for (let i = 0; i < 4; i++) if (buf[at + i] !== MAGIC[i]) throw new ProtocolError('bad magic');
      if (view.getUint16(4) !== VERSION) throw new ProtocolError(`unsupported version ${view.getUint16(4)}`);
      const flags = buf[at + 6]!;
      if (flags & 0xf0 || (flags & 3) === 3) throw new ProtocolError('reserved flags');
      const length = view.getUint32(8);
      if (length > MAX_FRAGMENT) throw new ProtocolError('frame over 64 KiB', true);
      if (buf.length - at < HEADER_BYTES + length) break;
      let payload = buf.subarray(at + HEADER_BYTES, at + HEADER_BYTES + length);
      if (flags & FLAG_CRC) {
        if (length < 4) throw new ProtocolError('CRC flag on a frame shorter than its CRC');
        const crc = new DataView(payload.buffer, payload.byteOffset + length - 4).getUint32(0);
        payload = payload.subarray(0, length - 4);
        if (crc32(payload) !== crc) throw new ProtocolError('CRC mismatch');
      }
      const m = this.take(buf[at + 7]!, flags, view.getUint32(12), payload);
      if (m) out.push(m);
      at += HEADER_BYTES + length;
    }
    if (at < buf.length) this.pending = buf.slice(at);
    return out;
  }

  get hasPartialFrame(): boolean {
    return this.pending !== null;
  }

  private take(kind: number, flags: number, seq: number, payload: Uint8Array): V2Message | null {
    const more = (flags & FLAG_MORE) !== 0;
    if (this.parts.length === 0) {
      if (seq !== (this.lastSeq + 1) >>> 0) throw new ProtocolError(`Sequence ${seq} out of order`);
      this.lastSeq = seq;
    } else if (seq !== this.lastSeq) {
      throw new ProtocolError('fragment of another message');
    }
    if (this.partBytes + payload.length > MAX_MESSAGE) throw new ProtocolError('message over 1 MiB', true);
    let body = payload;
    if (more || this.parts.length > 0) {
      this.parts.push(payload.slice());
      this.partBytes += payload.length;
      if (more) return null;
      body = new Uint8Array(this.partBytes);
      let o = 0;
      for (const p of this.parts) {
        body.set(p, o);
        o += p.length;
      }
      this.parts = [];
      this.partBytes = 0;
    }
    return { kind, seq, body: this.decompress(body, flags & 3) };
  }

  private decompress(body: Uint8Array, how: number): Uint8Array {
    if (how === 0) return body;
    if (how === 1) {
      if (!this.gunzip) throw new ProtocolError('gzip body, but no gzip here');
      return this.gunzip(body, MAX_MESSAGE);
    }
    try {
      return snappyjs.uncompress(body, MAX_MESSAGE);
    } catch (err) {
      throw new ProtocolError(`snappy: ${(err as Error).message}`, /too big/.test((err as Error).message));
    }
  }
}

/** A server message → the v1 frame(s) it stands for (a batch → several message frames). */
export function toServerFrames(m: V2Message): ServerFrame[] {
  if (m.kind === KIND.message) return [decodeRecord(m.body) as ServerFrame];
  if (m.kind === KIND.batch) {
    const out: ServerFrame[] = [];
    const r = { at: 0 };
    while (r.at < m.body.length) {
      const length = readVaruint(m.body, r);
      out.push(decodeRecord(m.body.subarray(r.at, r.at + length)) as ServerFrame);
      r.at += length;
    }
    return out;
  }
  const op = KIND_NAMES.get(m.kind);
  if (op === undefined) throw new ProtocolError(`unknown kind 0x${m.kind.toString(16)}`);
  const fields = m.body.length ? (JSON.parse(utf8.decode(m.body)) as Record<string, unknown>) : {};
  return [{ ...fields, op } as unknown as ServerFrame];
}

/** One message record: form byte, addressing, id, type, timestamp, then the data as JSON. */
export function decodeRecord(b: Uint8Array): Record<string, unknown> {
  const form = b[0]!;
  if (form & 0xf8) throw new ProtocolError('unknown form bits');
  const r = { at: 1 };
  const frame: Record<string, unknown> = { op: 'message' };
  if (form & 1) {
    const n = b[r.at++]!;
    frame.topic = utf8.decode(b.subarray(r.at, r.at + n));
    r.at += n;
    frame.offset = readVaruint(b, r);
  } else {
    frame.seq = readVaruint(b, r);
  }
  if (form & 2) {
    const h = [...b.subarray(r.at, r.at + 16)].map((x) => x.toString(16).padStart(2, '0')).join('');
    frame.id = `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    r.at += 16;
  } else {
    const n = readVaruint(b, r);
    frame.id = utf8.decode(b.subarray(r.at, r.at + n));
    r.at += n;
  }
  if (form & 4) {
    const type = WELL_KNOWN_TYPES[b[r.at++]!];
    if (!type) throw new ProtocolError('unknown type code');
    frame.type = type;
  } else {
    const n = b[r.at++]!;
    frame.type = utf8.decode(b.subarray(r.at, r.at + n));
    r.at += n;
  }
  frame.timestamp = readVaruint(b, r);
  frame.data = JSON.parse(utf8.decode(b.subarray(r.at)));
  return frame;
}

function readVaruint(b: Uint8Array, r: { at: number }): number {
  let value = 0;
  for (let shift = 1; r.at < b.length && shift < 2 ** 56; shift *= 128) {
    const byte = b[r.at++]!;
    value += (byte & 0x7f) * shift;
    if ((byte & 0x80) === 0) return value;
  }
  throw new ProtocolError('bad varint');
}

/** Client frame (v1 shape, with `op`) → kind and body fields. */
export function clientKind(op: string): number | undefined {
  return (KIND as Record<string, number>)[op];
}
