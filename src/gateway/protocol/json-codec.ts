import { isValidMessageId, isValidTopic } from '../../domain/ids.js';
import { ALL_TOPIC, type StoredMessage } from '../../domain/message.js';

/**
 * Protocol `push.v1.json`: server frames are built as strings from pre-encoded parts so a
 * message's data is serialised once, whatever the number of recipients; client frames are
 * decoded and validated here and nowhere else.
 */
export const SUBPROTOCOL_JSON = 'push.v1.json';

/** Everything of a message frame after its addressing (`seq` or `topic`/`offset`), built once per message. */
export function encodeMessageTail(m: StoredMessage): string {
  return `,"id":${JSON.stringify(m.id)},"type":${JSON.stringify(m.type)},"timestamp":${m.timestamp},"data":${m.dataJson}}`;
}

export function encodeUserMessage(seq: number, tail: string): string {
  return `{"op":"message","seq":${seq}${tail}`;
}

export function encodeTopicMessage(topic: string, offset: number, tail: string): string {
  return `{"op":"message","topic":${JSON.stringify(topic)},"offset":${offset}${tail}`;
}

/**
 * Several message frames merged into one JSON array frame. A frame that is itself an array
 * (a live room's window) is spliced in, so clients always see one flat array.
 */
export function encodeCoalesced(frames: readonly string[]): string {
  if (frames.length === 1) return frames[0]!;
  return `[${frames.map((f) => (f.charCodeAt(0) === 0x5b ? f.slice(1, -1) : f)).join(',')}]`;
}

export type Ref = string | number | undefined;

export function encodeControl(op: string, fields: Record<string, unknown> = {}, ref?: Ref): string {
  return JSON.stringify(ref === undefined ? { op, ...fields } : { op, ...fields, ref });
}

export function encodeError(code: string, message: string, ref?: Ref): string {
  return encodeControl('error', { code, message }, ref);
}

export type ClientFrame =
  | { op: 'ack'; seq: number; ids?: undefined; ref: Ref }
  | { op: 'ack'; ids: string[]; seq?: undefined; ref: Ref }
  | { op: 'read'; seq: number; ref: Ref }
  | { op: 'subscribe'; topic: string; since: number | null; presence?: boolean; ref: Ref }
  | { op: 'unsubscribe'; topic: string; ref: Ref }
  | { op: 'ping'; ref: Ref }
  | { op: 'refresh'; token: string; ref: Ref };

export interface FrameError {
  op: 'error';
  code: 'bad_request' | 'unknown_op';
  message: string;
  ref: Ref;
}

const MAX_ACK_IDS = 1000;

/** `ref` is echoed when it is a string of at most 128 characters or a finite number. */
function refOf(value: unknown): Ref {
  if (typeof value === 'string' && value.length <= 128) return value;
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  return undefined;
}

const isSeq = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

export function decodeClientFrame(text: string): ClientFrame | FrameError {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { op: 'error', code: 'bad_request', message: 'frame is not valid JSON', ref: undefined };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { op: 'error', code: 'bad_request', message: 'frame must be a JSON object', ref: undefined };
  }
  return validateClientFrame(value as Record<string, unknown>);
}

/** The rules every protocol shares: one frame as an object with its `op`, checked field by field. */
export function validateClientFrame(f: Record<string, unknown>): ClientFrame | FrameError {
  const ref = refOf(f.ref);
  const bad = (message: string): FrameError => ({ op: 'error', code: 'bad_request', message, ref });
  switch (f.op) {
    case 'ack':
      if (f.seq !== undefined && f.ids === undefined) {
        return isSeq(f.seq) ? { op: 'ack', seq: f.seq, ref } : bad('ack.seq must be a non-negative integer');
      }
      if (f.ids !== undefined && f.seq === undefined) {
        const ids = f.ids;
        if (
          !Array.isArray(ids) ||
          ids.length === 0 ||
          ids.length > MAX_ACK_IDS ||
          !ids.every(isValidMessageId)
        ) {
          return bad(`ack.ids must be 1..${MAX_ACK_IDS} message ids`);
        }
        return { op: 'ack', ids, ref };
      }
      return bad('ack needs exactly one of seq or ids');
    case 'read':
      return isSeq(f.seq) ? { op: 'read', seq: f.seq, ref } : bad('read.seq must be a non-negative integer');
    case 'subscribe':
      if (!isValidTopic(f.topic) && f.topic !== ALL_TOPIC) {
        return bad('subscribe.topic must match [A-Za-z0-9._:-]{1,128}');
      }
      if (f.since !== undefined && f.since !== null && !isSeq(f.since)) {
        return bad('subscribe.since must be a non-negative integer');
      }
      if (f.presence !== undefined && typeof f.presence !== 'boolean') {
        return bad('subscribe.presence must be a boolean');
      }
      return {
        op: 'subscribe',
        topic: f.topic,
        since: (f.since as number | undefined) ?? null,
        ...(f.presence === true ? { presence: true } : {}),
        ref,
      };
    case 'unsubscribe':
      return isValidTopic(f.topic) || f.topic === ALL_TOPIC
        ? { op: 'unsubscribe', topic: f.topic, ref }
        : bad('unsubscribe.topic is invalid');
    case 'ping':
      return { op: 'ping', ref };
    case 'refresh':
      return typeof f.token === 'string' && f.token.length > 0 && f.token.length <= 8192
        ? { op: 'refresh', token: f.token, ref }
        : bad('refresh.token must be a JWT string');
    default:
      if (typeof f.op !== 'string') return bad('frame needs a string op');
      return { op: 'error', code: 'unknown_op', message: `unknown op "${f.op.slice(0, 32)}"`, ref };
  }
}
