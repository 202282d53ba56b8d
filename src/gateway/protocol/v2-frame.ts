import zlib from 'node:zlib';
import snappy from 'snappy';

/**
 * Protocol v2 framing (docs/reference/protocol-v2.md): the 16-byte header, flags, CRC-32,
 * compression, fragmentation on the way out and bounded reassembly on the way in. Bodies
 * are opaque here; binary-codec.ts gives them meaning.
 */

export const MAGIC = 0x4d505348; // "MPSH"
export const VERSION = 2;
/** Versions this server speaks, for the error a client offering none of them gets. */
export const SUPPORTED_VERSIONS: readonly number[] = [VERSION];
export const HEADER_BYTES = 16;
/** Largest Length of one frame (its payload, CRC included). */
export const MAX_FRAGMENT = 64 * 1024;
/** Largest message after reassembly, and after decompression. */
export const MAX_MESSAGE = 1024 * 1024;

export const COMPRESSION_NONE = 0;
export const COMPRESSION_GZIP = 1;
export const COMPRESSION_SNAPPY = 2;
export type Compression = 0 | 1 | 2;
export const COMPRESSION_NAMES = ['none', 'gzip', 'snappy'] as const;
export type CompressionName = (typeof COMPRESSION_NAMES)[number];

const FLAG_COMPRESSION = 0x03;
export const FLAG_MORE = 0x04;
export const FLAG_CRC = 0x08;
const FLAGS_RESERVED = 0xf0;

/** Frame kinds: client → server 0x01–0x1F, server → client 0x20–0x3F; PING and PONG go both ways. */
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
export type KindName = keyof typeof KIND;

type Crc32 = (data: Uint8Array, value?: number) => number;

/** CRC-32 (IEEE 802.3): zlib's where Node has it (≥ 20.15 / 22.2), else a table. */
export const crc32: Crc32 =
  typeof (zlib as { crc32?: Crc32 }).crc32 === 'function' ? (zlib as { crc32: Crc32 }).crc32 : tableCrc32;

let crcTable: Uint32Array | null = null;
function tableCrc32(data: Uint8Array, value = 0): number {
  if (crcTable === null) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~value >>> 0;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

export function compress(body: Buffer, how: Compression): Buffer {
  if (how === COMPRESSION_GZIP) return zlib.gzipSync(body, { level: 6 });
  if (how === COMPRESSION_SNAPPY) return snappy.compressSync(body);
  return body;
}

/** Thrown for input that breaks the framing rules; `tooLarge` ones close with 1009, the rest with 1002. */
export class FramingError extends Error {
  constructor(
    message: string,
    readonly tooLarge = false,
  ) {
    super(message);
  }
}

/** Decompresses with the output bounded by MAX_MESSAGE, so a small bomb never grows past it. */
export function decompress(body: Buffer, how: Compression): Buffer {
  if (how === COMPRESSION_NONE) return body;
  if (how === COMPRESSION_GZIP) {
    try {
      return zlib.gunzipSync(body, { maxOutputLength: MAX_MESSAGE });
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new FramingError(`decompressed message over ${MAX_MESSAGE} bytes`, true);
      }
      throw new FramingError('gzip body does not decompress');
    }
  }
  // Snappy states the uncompressed length up front: check it before allocating anything.
  const length = snappyLength(body);
  if (length > MAX_MESSAGE) throw new FramingError(`decompressed message over ${MAX_MESSAGE} bytes`, true);
  let out: Buffer;
  try {
    out = snappy.uncompressSync(body, { asBuffer: true }) as Buffer;
  } catch {
    throw new FramingError('snappy body does not decompress');
  }
  if (out.length !== length) throw new FramingError('snappy body does not decompress');
  return out;
}

function snappyLength(body: Buffer): number {
  let value = 0;
  for (let i = 0, shift = 0; i < 5 && i < body.length; i++, shift += 7) {
    const b = body[i]!;
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return value;
  }
  throw new FramingError('snappy body has no length');
}

/**
 * Control frames (welcome, replies, errors) are built per connection, so their compression
 * is never shared: a small one saves a hundred-odd bytes for a whole gzip run (≈ 70 µs of
 * CPU and a zlib state of a few hundred KiB, allocated and freed) — which every v2
 * connection paid for its welcome. They are compressed only from this size (or from
 * compress_min if that is larger); message and batch bodies from compress_min.
 */
export const CONTROL_COMPRESS_MIN = 4096;

/**
 * One connection's outgoing side: numbers messages (Sequence, +1 per message from 1, shared
 * by its fragments), compresses bodies at or over the threshold once per body (a broadcast
 * body is shared by every connection on the same codec), splits into fragments.
 */
export class FrameWriter {
  private seq = 0;

  constructor(
    readonly compression: Compression,
    readonly compressMin: number,
    readonly withCrc: boolean,
  ) {}

  /**
   * A message that fits one frame, as the bytes after its header: shared by every connection
   * that writes the same body with the same compression and CRC choice (a broadcast, a topic
   * message). Null when it needs fragments: frames() then.
   */
  shared(body: Buffer, cache: CompressedCache): SharedPayload | null {
    const how =
      this.compression !== COMPRESSION_NONE && body.length >= this.compressMin
        ? this.compression
        : COMPRESSION_NONE;
    // Nothing to compute once: no lookup (a direct message's record is written once anyway).
    const shared =
      how === COMPRESSION_NONE && !this.withCrc
        ? { flags: COMPRESSION_NONE, bytes: body }
        : cache.shared(body, how, this.withCrc);
    return shared.bytes.length <= MAX_FRAGMENT ? shared : null;
  }

  /** Numbers the next message and writes the header that goes in front of `shared`. */
  head(kind: number, shared: SharedPayload): Buffer {
    this.seq = (this.seq + 1) >>> 0;
    const out = Buffer.allocUnsafe(HEADER_BYTES);
    writeHeader(out, kind, shared.flags, shared.bytes.length, this.seq);
    return out;
  }

  /** The wire frames of one message: one, or its fragments in order. */
  frames(kind: number, body: Buffer, cache?: CompressedCache): Buffer[] {
    this.seq = (this.seq + 1) >>> 0;
    let how: Compression = COMPRESSION_NONE;
    const min =
      kind === KIND.message || kind === KIND.batch
        ? this.compressMin
        : Math.max(this.compressMin, CONTROL_COMPRESS_MIN);
    if (this.compression !== COMPRESSION_NONE && body.length >= min) {
      const packed = cache ? cache.get(body, this.compression) : compress(body, this.compression);
      if (packed.length < body.length) {
        body = packed;
        how = this.compression;
      }
    }
    const room = MAX_FRAGMENT - (this.withCrc ? 4 : 0);
    if (body.length <= room) return [this.frame(kind, how, body, false)];
    const out: Buffer[] = [];
    for (let at = 0; at < body.length; at += room) {
      const end = Math.min(at + room, body.length);
      out.push(this.frame(kind, how, body.subarray(at, end), end < body.length));
    }
    return out;
  }

  private frame(kind: number, how: Compression, payload: Buffer, more: boolean): Buffer {
    const crc = this.withCrc ? 4 : 0;
    const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length + crc);
    writeHeader(
      out,
      kind,
      how | (more ? FLAG_MORE : 0) | (crc ? FLAG_CRC : 0),
      payload.length + crc,
      this.seq,
    );
    payload.copy(out, HEADER_BYTES);
    if (crc) out.writeUInt32BE(crc32(payload), HEADER_BYTES + payload.length);
    return out;
  }
}

export function writeHeader(out: Buffer, kind: number, flags: number, length: number, seq: number): void {
  out.writeUInt32BE(MAGIC, 0);
  out.writeUInt16BE(VERSION, 4);
  out[6] = flags;
  out[7] = kind;
  out.writeUInt32BE(length, 8);
  out.writeUInt32BE(seq, 12);
}

/** What follows a single frame's header: its flags (compression, CRC) and bytes (payload, then the CRC-32 if any). */
export interface SharedPayload {
  readonly flags: number;
  readonly bytes: Buffer;
}

interface CacheEntry {
  /** Compressed bodies, by compression. */
  packed: (Buffer | undefined)[];
  /** Single-frame payloads, by compression × 2 + CRC. */
  shared: (SharedPayload | undefined)[];
}

/**
 * Compressed bodies and CRCs of fan-out messages, keyed by the body object itself: a
 * broadcast is compressed and checksummed once, not once per connection. Weak keys: it holds
 * only bodies still queued.
 */
export class CompressedCache {
  private readonly map = new WeakMap<Buffer, CacheEntry>();

  private entry(body: Buffer): CacheEntry {
    let entry = this.map.get(body);
    if (!entry) {
      entry = { packed: [], shared: [] };
      this.map.set(body, entry);
    }
    return entry;
  }

  get(body: Buffer, how: Compression): Buffer {
    const entry = this.entry(body);
    const packed = entry.packed[how] ?? compress(body, how);
    entry.packed[how] = packed;
    return packed;
  }

  /** The body as one frame's payload: compressed with `how` when that makes it smaller, with its CRC if asked. */
  shared(body: Buffer, how: Compression, withCrc: boolean): SharedPayload {
    const entry = this.entry(body);
    const key = how * 2 + (withCrc ? 1 : 0);
    const cached = entry.shared[key];
    if (cached !== undefined) return cached;
    let bytes = body;
    let flags: number = COMPRESSION_NONE;
    if (how !== COMPRESSION_NONE) {
      const packed = this.get(body, how);
      if (packed.length < body.length) {
        bytes = packed;
        flags = how;
      }
    }
    if (withCrc) {
      const payload = bytes;
      bytes = Buffer.allocUnsafe(payload.length + 4);
      payload.copy(bytes);
      bytes.writeUInt32BE(crc32(payload), payload.length);
      flags |= FLAG_CRC;
    }
    const shared: SharedPayload = { flags, bytes };
    entry.shared[key] = shared;
    return shared;
  }
}

/** A whole message read off the wire: its kind, Sequence and decompressed body. */
export interface WireMessage {
  readonly kind: number;
  readonly seq: number;
  readonly version: number;
  readonly body: Buffer;
}

/**
 * One connection's incoming side. Takes bytes as they come (a TCP stream, or whole
 * WebSocket messages) and returns complete messages. Memory is bounded: at most one
 * partial frame (≤ MAX_FRAGMENT + header) and one message's fragments (≤ MAX_MESSAGE).
 * Every rule broken throws a FramingError; the reader is useless afterwards.
 */
export class FrameReader {
  private pending: Buffer | null = null;
  private parts: Buffer[] = [];
  private partBytes = 0;
  private partKind = 0;
  private partFlags = 0;
  private lastSeq = 0;
  /** Set for a hello, whose header may carry a version this server lacks (its body says which it offers). */
  acceptAnyVersion = false;

  /** Frames taken so far, fragments included (each costs the sender a frame of its rate). */
  framesRead = 0;

  /** True while the bytes seen end inside a frame. */
  get hasPartialFrame(): boolean {
    return this.pending !== null;
  }

  push(chunk: Buffer): WireMessage[] {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    const out: WireMessage[] = [];
    while (buf.length >= HEADER_BYTES) {
      const length = this.checkHeader(buf);
      if (buf.length < HEADER_BYTES + length) break;
      const m = this.take(buf, length);
      if (m) out.push(m);
      buf = buf.subarray(HEADER_BYTES + length);
    }
    if (buf.length > 0) this.pending = Buffer.from(buf);
    return out;
  }

  private checkHeader(buf: Buffer): number {
    if (buf.readUInt32BE(0) !== MAGIC) throw new FramingError('bad magic: frames start with "MPSH"');
    const version = buf.readUInt16BE(4);
    if (version !== VERSION && !this.acceptAnyVersion) {
      throw new FramingError(
        `unsupported version ${version}; this server speaks ${SUPPORTED_VERSIONS.join(',')}`,
      );
    }
    const flags = buf[6]!;
    if (flags & FLAGS_RESERVED) throw new FramingError('reserved flag bits set');
    if ((flags & FLAG_COMPRESSION) === 3) throw new FramingError('reserved compression 3');
    const length = buf.readUInt32BE(8);
    if (length > MAX_FRAGMENT) throw new FramingError(`frame Length ${length} over ${MAX_FRAGMENT}`, true);
    if (flags & FLAG_CRC && length < 4) throw new FramingError('CRC flag on a frame shorter than its CRC');
    return length;
  }

  private take(buf: Buffer, length: number): WireMessage | null {
    this.framesRead++;
    const flags = buf[6]!;
    const kind = buf[7]!;
    const seq = buf.readUInt32BE(12);
    let payload = buf.subarray(HEADER_BYTES, HEADER_BYTES + length);
    if (flags & FLAG_CRC) {
      const body = payload.subarray(0, length - 4);
      if (crc32(body) !== payload.readUInt32BE(length - 4)) throw new FramingError('CRC mismatch');
      payload = body;
    }
    const more = (flags & FLAG_MORE) !== 0;
    const shape = flags & FLAG_COMPRESSION;
    if (this.parts.length > 0) {
      if (seq !== this.lastSeq) throw new FramingError('fragment with another Sequence than its message');
      if (kind !== this.partKind || shape !== this.partFlags) {
        throw new FramingError('fragment with another kind or compression than its message');
      }
    } else {
      const expected = (this.lastSeq + 1) >>> 0;
      if (seq !== expected) throw new FramingError(`Sequence ${seq}, expected ${expected}`);
      this.lastSeq = seq;
    }
    if (more && payload.length === 0) throw new FramingError('empty fragment');
    if (this.partBytes + payload.length > MAX_MESSAGE) {
      throw new FramingError(`message over ${MAX_MESSAGE} bytes`, true);
    }
    if (more || this.parts.length > 0) {
      this.parts.push(Buffer.from(payload));
      this.partBytes += payload.length;
      this.partKind = kind;
      this.partFlags = shape;
      if (more) return null;
      payload = Buffer.concat(this.parts, this.partBytes);
      this.parts = [];
      this.partBytes = 0;
    }
    const body = decompress(Buffer.from(payload), shape as Compression);
    return { kind, seq, version: buf.readUInt16BE(4), body };
  }
}
