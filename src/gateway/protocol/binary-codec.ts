import type { StoredMessage } from '../../domain/message.js';
import { type ClientFrame, type FrameError, type Ref, validateClientFrame } from './json-codec.js';
import { KIND } from './v2-frame.js';

/**
 * Protocol `push.v2.bin` bodies (docs/reference/protocol-v2.md). Message frames use a
 * compact envelope (form byte, varint seq/offset/timestamp, 16-byte UUID ids, one-byte
 * well-known types) followed by `data` as the stored UTF-8 JSON bytes, which measured as
 * small as MessagePack once compressed and costs nothing to encode. Control bodies are the
 * v1 JSON objects without `op` (the kind says it), validated by the v1 rules.
 */
export const SUBPROTOCOL_BINARY = 'push.v2.bin';

export const FORM_TOPIC = 0x01;
export const FORM_UUID = 0x02;
export const FORM_TYPE_CODE = 0x04;

/** Well-known message types sent as one byte (index = code; 0 is never used). */
export const WELL_KNOWN_TYPES: readonly string[] = ['', 'message', 'text', 'binary', 'notification', 'alarm'];
const TYPE_CODES = new Map(WELL_KNOWN_TYPES.map((t, i) => [t, i] as const).filter(([, i]) => i > 0));

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Everything of a message record after its addressing, built once per message. */
export interface RecordTail {
  readonly form: number;
  readonly rest: Buffer;
}

/**
 * Written into one buffer sized up front: this runs once per message (and per recipient
 * user for direct pushes), so it avoids the small allocations a concat of parts costs.
 */
export function encodeRecordTail(m: StoredMessage): RecordTail {
  const isUuid = UUID.test(m.id);
  const idBytes = isUuid ? 16 : Buffer.byteLength(m.id, 'utf8');
  const code = TYPE_CODES.get(m.type);
  const dataBytes = Buffer.byteLength(m.dataJson, 'utf8');
  const size =
    (isUuid ? 16 : varuintLength(idBytes) + idBytes) +
    (code !== undefined ? 1 : 1 + m.type.length) +
    varuintLength(m.timestamp) +
    dataBytes;
  const rest = Buffer.allocUnsafe(size);
  let at = 0;
  if (isUuid) {
    for (let i = 0; i < 36; i += i === 6 || i === 11 || i === 16 || i === 21 ? 3 : 2) {
      rest[at++] = Number.parseInt(m.id.slice(i, i + 2), 16);
    }
  } else {
    at = writeVaruint(rest, at, idBytes);
    at += rest.write(m.id, at, 'utf8');
  }
  if (code !== undefined) {
    rest[at++] = code;
  } else {
    rest[at++] = m.type.length;
    at += rest.write(m.type, at, 'latin1');
  }
  at = writeVaruint(rest, at, m.timestamp);
  rest.write(m.dataJson, at, 'utf8');
  const form = (isUuid ? FORM_UUID : 0) | (code !== undefined ? FORM_TYPE_CODE : 0);
  return { form, rest };
}

export function encodeUserRecord(seq: number, tail: RecordTail): Buffer {
  const out = Buffer.allocUnsafe(1 + varuintLength(seq) + tail.rest.length);
  out[0] = tail.form;
  tail.rest.copy(out, writeVaruint(out, 1, seq));
  return out;
}

export function encodeTopicRecord(topic: string, offset: number, tail: RecordTail): Buffer {
  const out = Buffer.allocUnsafe(2 + topic.length + varuintLength(offset) + tail.rest.length);
  out[0] = tail.form | FORM_TOPIC;
  out[1] = topic.length;
  out.write(topic, 2, 'latin1');
  tail.rest.copy(out, writeVaruint(out, 2 + topic.length, offset));
  return out;
}

function varuintLength(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    bytes++;
  }
  return bytes;
}

/** Writes `n` as unsigned LEB128 at `at`; returns the offset after it. */
function writeVaruint(out: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  return at;
}

/** A BATCH body: each record prefixed with its length. */
export function encodeBatch(records: readonly Uint8Array[]): Buffer {
  const parts: Uint8Array[] = [];
  for (const r of records) parts.push(varuint(r.length), r);
  return Buffer.concat(parts);
}

/** Unsigned LEB128, up to 2^53. */
export function varuint(n: number): Buffer {
  const bytes: number[] = [];
  while (n >= 0x80) {
    bytes.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

export function encodeControlBody(fields: Record<string, unknown>, ref?: Ref): Buffer {
  return Buffer.from(JSON.stringify(ref === undefined ? fields : { ...fields, ref }), 'utf8');
}

const CLIENT_OPS: ReadonlyMap<number, ClientFrame['op']> = new Map([
  [KIND.ack, 'ack'],
  [KIND.read, 'read'],
  [KIND.subscribe, 'subscribe'],
  [KIND.unsubscribe, 'unsubscribe'],
  [KIND.ping, 'ping'],
  [KIND.refresh, 'refresh'],
]);

/**
 * A client message of a known kind → the v1 frame it stands for, validated by the v1 rules
 * (same limits, same error codes). An empty body is an empty object.
 */
export function decodeClientBody(kind: number, body: Buffer): ClientFrame | FrameError {
  let value: unknown = {};
  if (body.length > 0) {
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch {
      return { op: 'error', code: 'bad_request', message: 'body is not valid JSON', ref: undefined };
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { op: 'error', code: 'bad_request', message: 'body must be a JSON object', ref: undefined };
  }
  const op = CLIENT_OPS.get(kind);
  // Kind 0 is "no op at all" (bad_request, as a v1 frame without op); other unknown kinds are unknown ops.
  const frame = {
    ...(value as Record<string, unknown>),
    op: op ?? (kind === 0 ? null : `kind 0x${kind.toString(16)}`),
  };
  if (kind === KIND.hello) {
    return { op: 'error', code: 'bad_request', message: 'hello only opens a TCP connection', ref: undefined };
  }
  return validateClientFrame(frame);
}
