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

export function encodeRecordTail(m: StoredMessage): RecordTail {
  let form = 0;
  const parts: Buffer[] = [];
  if (UUID.test(m.id)) {
    form |= FORM_UUID;
    parts.push(Buffer.from(m.id.replaceAll('-', ''), 'hex'));
  } else {
    const id = Buffer.from(m.id, 'utf8');
    parts.push(varuint(id.length), id);
  }
  const code = TYPE_CODES.get(m.type);
  if (code !== undefined) {
    form |= FORM_TYPE_CODE;
    parts.push(Buffer.of(code));
  } else {
    parts.push(Buffer.of(m.type.length), Buffer.from(m.type, 'latin1'));
  }
  parts.push(varuint(m.timestamp), Buffer.from(m.dataJson, 'utf8'));
  return { form, rest: Buffer.concat(parts) };
}

export function encodeUserRecord(seq: number, tail: RecordTail): Buffer {
  return Buffer.concat([Buffer.of(tail.form), varuint(seq), tail.rest]);
}

export function encodeTopicRecord(topic: string, offset: number, tail: RecordTail): Buffer {
  return Buffer.concat([
    Buffer.of(tail.form | FORM_TOPIC, topic.length),
    Buffer.from(topic, 'latin1'),
    varuint(offset),
    tail.rest,
  ]);
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
