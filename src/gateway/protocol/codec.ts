import { ERRORS } from '../../domain/errors.js';
import type { StoredMessage } from '../../domain/message.js';
import type { Transport } from '../session.js';
import {
  decodeClientBody,
  encodeBatch,
  encodeControlBody,
  encodeRecordTail,
  encodeTopicRecord,
  encodeUserRecord,
  type RecordTail,
  SUBPROTOCOL_BINARY,
} from './binary-codec.js';
import {
  type ClientFrame,
  decodeClientFrame,
  encodeCoalesced,
  encodeControl,
  encodeMessageTail,
  encodeTopicMessage,
  encodeUserMessage,
  type FrameError,
  type Ref,
  SUBPROTOCOL_JSON,
} from './json-codec.js';
import {
  COMPRESSION_GZIP,
  COMPRESSION_NAMES,
  COMPRESSION_NONE,
  COMPRESSION_SNAPPY,
  CompressedCache,
  FrameReader,
  FrameWriter,
  FramingError,
  KIND,
  MAX_FRAGMENT,
  MAX_MESSAGE,
  type WireMessage,
} from './v2-frame.js';

/**
 * The seam between sessions and wire protocols. A session holds one SessionCodec, chosen
 * at the handshake; the gateway and hub speak operations (`pong`, a message frame) and the
 * codec turns them into v1 JSON text or v2 binary frames. Message frames are built once per
 * message and protocol (MessageFrames) and shared by every session on that protocol.
 */

/**
 * A v2 control frame (revoke, read sync, join/leave) queued behind message records: framed
 * only when written, since v2 numbers frames in the order they reach the wire.
 */
export class QueuedControl {
  constructor(
    readonly kind: number,
    readonly body: Buffer,
  ) {}

  get length(): number {
    return this.body.length;
  }
}

/** A queued frame: v1 JSON text (messages and controls), a v2 message record, or a v2 control. */
export type OutFrame = string | Buffer | QueuedControl;

/** Server → client controls that keep their place among queued messages. */
export type QueuedOp = 'revoke' | 'read' | 'join' | 'leave';

export const CODEC_JSON = 0;
export const CODEC_BINARY = 1;
export type CodecKind = typeof CODEC_JSON | typeof CODEC_BINARY;

/** Server operations besides message frames. */
export type ServerOp =
  | 'welcome'
  | 'subscribed'
  | 'unsubscribed'
  | 'pong'
  | 'refreshed'
  | 'ok'
  | 'revoke'
  | 'read'
  | 'join'
  | 'leave'
  | 'error'
  | 'ping'
  | 'close';

/** A framing rule broken: the error is reported, then the connection closes (1002, or 1009 for size). */
export interface FatalInput {
  readonly op: 'fatal';
  readonly code: 'bad_request' | 'payload_too_large';
  readonly message: string;
  readonly closeCode: 1002 | 1009;
}

/** What one piece of client input decoded to; `skip` is a fragment or a pong (counted, nothing to do). */
export type Inbound = ClientFrame | FrameError | FatalInput | { readonly op: 'skip' };

export interface SessionCodec {
  readonly kind: CodecKind;
  readonly subprotocol: string;
  /** Writes queued message frames, merged as the protocol allows; `cb` once the last is written. */
  sendMessages(t: Transport, frames: readonly OutFrame[], cb?: (err?: Error) => void): void;
  sendControl(t: Transport, op: ServerOp, fields: Record<string, unknown>, ref?: Ref): void;
  /** A control to queue behind the messages already queued; `json` is the v1 frame, built once per signal. */
  queuedControl(op: QueuedOp, fields: Record<string, unknown>, json: string): OutFrame;
  decode(data: Buffer | string, isBinary: boolean): Inbound[];
}

const SKIP = { op: 'skip' } as const;

/** `push.v1.json`: stateless, one instance for every session. */
export const JSON_CODEC: SessionCodec = {
  kind: CODEC_JSON,
  subprotocol: SUBPROTOCOL_JSON,
  sendMessages(t, frames, cb) {
    t.send(encodeCoalesced(frames as readonly string[]), cb);
  },
  sendControl(t, op, fields, ref) {
    t.send(encodeControl(op, fields, ref));
  },
  queuedControl(_op, _fields, json) {
    return json;
  },
  decode(data, isBinary) {
    if (isBinary) {
      return [
        {
          op: 'error',
          code: 'bad_request',
          message: 'binary frames are not part of push.v1.json',
          ref: undefined,
        },
      ];
    }
    return [decodeClientFrame(typeof data === 'string' ? data : data.toString('utf8'))];
  },
};

/** Records merged into one BATCH body at most (before compression); a single record may be larger. */
const MAX_BATCH_BYTES = 256 * 1024;

/**
 * `push.v2.bin`: one instance per connection (it numbers frames and reassembles
 * fragments). `wholeFrames` is for WebSocket, where each message must carry whole frames;
 * on TCP a frame may span reads.
 */
export class BinaryCodec implements SessionCodec {
  readonly kind = CODEC_BINARY;
  readonly subprotocol = SUBPROTOCOL_BINARY;
  /** Messages read before the session existed (on TCP, right behind the hello); decoded first. */
  readonly early: WireMessage[] = [];

  constructor(
    readonly writer: FrameWriter,
    private readonly cache: CompressedCache,
    private readonly wholeFrames: boolean,
    readonly reader = new FrameReader(),
  ) {}

  sendMessages(t: Transport, frames: readonly OutFrame[], cb?: (err?: Error) => void): void {
    let start = 0;
    let bytes = 0;
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      const last = i === frames.length - 1;
      if (f instanceof QueuedControl) {
        // The records before it go first, then the control, in queue order.
        this.writeRecords(t, frames.slice(start, i) as Buffer[]);
        writeAll(t, this.writer.frames(f.kind, f.body), last ? cb : undefined);
        start = i + 1;
        bytes = 0;
        continue;
      }
      bytes += f.length;
      if (bytes < MAX_BATCH_BYTES && !last) continue;
      this.writeRecords(t, frames.slice(start, i + 1) as Buffer[], last ? cb : undefined);
      start = i + 1;
      bytes = 0;
    }
  }

  private writeRecords(t: Transport, records: Buffer[], cb?: (err?: Error) => void): void {
    if (records.length === 0) return;
    // A single record is shared by every session it was queued on: its compression and CRC
    // are cached, and where the transport can, only the header is built per connection.
    if (records.length === 1 && t.sendParts) {
      const shared = this.writer.shared(records[0]!, this.cache);
      if (shared !== null) {
        t.sendParts(this.writer.head(KIND.message, shared), shared.bytes, cb);
        return;
      }
    }
    const wire =
      records.length === 1
        ? this.writer.frames(KIND.message, records[0]!, this.cache)
        : this.writer.frames(KIND.batch, encodeBatch(records));
    writeAll(t, wire, cb);
  }

  queuedControl(op: QueuedOp, fields: Record<string, unknown>): OutFrame {
    return new QueuedControl(controlKind(op), encodeControlBody(fields));
  }

  sendControl(t: Transport, op: ServerOp, fields: Record<string, unknown>, ref?: Ref): void {
    const body =
      op === 'welcome'
        ? {
            ...fields,
            version: 2,
            compression: COMPRESSION_NAMES[this.writer.compression],
            compress_min: this.writer.compressMin,
            crc: this.writer.withCrc,
            max_fragment: MAX_FRAGMENT,
            max_message: MAX_MESSAGE,
          }
        : fields;
    writeAll(t, this.writer.frames(controlKind(op), encodeControlBody(body, ref)));
  }

  decode(data: Buffer | string, isBinary: boolean): Inbound[] {
    if (!isBinary || typeof data === 'string') {
      return [
        {
          op: 'error',
          code: 'bad_request',
          message: 'text frames are not part of push.v2.bin',
          ref: undefined,
        },
      ];
    }
    const out: Inbound[] = [];
    try {
      const before = this.reader.framesRead;
      const read = this.reader.push(data);
      if (this.wholeFrames && this.reader.hasPartialFrame) {
        throw new FramingError('a WebSocket message must carry whole frames');
      }
      for (let n = this.reader.framesRead - before - read.length; n > 0; n--) out.push(SKIP);
      const messages = this.early.length > 0 ? [...this.early.splice(0), ...read] : read;
      for (const m of messages) out.push(m.kind === KIND.pong ? SKIP : decodeClientBody(m.kind, m.body));
    } catch (err) {
      if (!(err instanceof FramingError)) throw err;
      const spec = ERRORS[err.tooLarge ? 'frame_too_large' : 'protocol_error'];
      out.push({ op: 'fatal', code: spec.wire, message: err.message, closeCode: spec.closeCode });
    }
    return out;
  }
}

/** `read` is a client kind too; the server's read-sync frame has its own number (READ_SYNC). */
function controlKind(op: ServerOp): number {
  return op === 'read' ? KIND.read_sync : KIND[op];
}

function writeAll(t: Transport, frames: readonly Buffer[], cb?: (err?: Error) => void): void {
  const last = frames.length - 1;
  for (let i = 0; i < last; i++) t.send(frames[i]!);
  t.send(frames[last]!, cb);
}

/**
 * A message's frames for each protocol, built on first use: the hub asks once per
 * recipient session and gets the frame another session on the same protocol already built.
 */
export class MessageFrames {
  private jsonTail: string | null = null;
  private binaryTail: RecordTail | null = null;
  private seq = -1;
  private readonly frames: [OutFrame | null, OutFrame | null] = [null, null];

  constructor(readonly message: StoredMessage) {}

  user(kind: CodecKind, seq: number): OutFrame {
    if (seq !== this.seq) {
      this.seq = seq;
      this.frames[0] = this.frames[1] = null;
    }
    const built = this.frames[kind];
    if (built !== null) return built;
    const frame =
      kind === CODEC_JSON ? encodeUserMessage(seq, this.json()) : encodeUserRecord(seq, this.binary());
    this.frames[kind] = frame;
    return frame;
  }

  /** The message's topic frame (its topic and offset); one per protocol. */
  topic(kind: CodecKind): OutFrame {
    const built = this.frames[kind];
    if (built !== null) return built;
    const m = this.message;
    const frame =
      kind === CODEC_JSON
        ? encodeTopicMessage(m.topic!, m.offset!, this.json())
        : encodeTopicRecord(m.topic!, m.offset!, this.binary());
    this.frames[kind] = frame;
    return frame;
  }

  private json(): string {
    if (this.jsonTail === null) this.jsonTail = encodeMessageTail(this.message);
    return this.jsonTail;
  }

  private binary(): RecordTail {
    if (this.binaryTail === null) this.binaryTail = encodeRecordTail(this.message);
    return this.binaryTail;
  }
}

/** What a client accepts: compressions in its order of preference, and whether it wants CRCs. */
export interface CodecOffer {
  readonly compressions: readonly string[];
  readonly crc: boolean;
}

/** WebSocket query: `codecs=snappy,gzip` (names this server lacks are skipped) and `crc=1`. */
export function parseCodecOffer(q: URLSearchParams): CodecOffer {
  const list = q.get('codecs');
  const crc = q.get('crc');
  return {
    compressions: list ? list.split(',').map((c) => c.trim()) : [],
    crc: crc === '1' || crc === 'true',
  };
}

/** Broadcast bodies are compressed once, whatever the number of connections and transports. */
const SHARED_COMPRESSED = new CompressedCache();

/** A v2 codec for one connection: the first compression the client offered that the server has. */
export function createBinaryCodec(
  offer: CodecOffer,
  compressMin: number,
  wholeFrames: boolean,
  reader?: FrameReader,
): BinaryCodec {
  const picked = offer.compressions.find((c) => c === 'gzip' || c === 'snappy');
  const compression =
    picked === 'gzip' ? COMPRESSION_GZIP : picked === 'snappy' ? COMPRESSION_SNAPPY : COMPRESSION_NONE;
  return new BinaryCodec(
    new FrameWriter(compression, compressMin, offer.crc),
    SHARED_COMPRESSED,
    wholeFrames,
    reader,
  );
}
