/**
 * The one error registry. Every error the service reports has a code here; each edge
 * (HTTP, socket, queue dead letter) maps a PushError to its wire form in one place.
 */

export interface ErrorSpec {
  /** HTTP status when the error reaches the server API. */
  readonly status: number;
  /** The `error.code` string on the wire (docs/reference/errors.md). Internal codes map onto these. */
  readonly wire: string;
  /** Close code when the error ends a socket; absent = an error frame, connection stays. */
  readonly closeCode?: number;
  /** Whether the caller may retry the same request unchanged. */
  readonly retryable: boolean;
  readonly doc: string;
}

export const ERRORS = {
  bad_request: { status: 400, wire: 'bad_request', retryable: false, doc: 'malformed or invalid input' },
  unauthorized: { status: 401, wire: 'unauthorized', retryable: false, doc: 'missing or wrong credentials' },
  token_expired: {
    status: 401,
    wire: 'unauthorized',
    closeCode: 4001,
    retryable: false,
    doc: 'the JWT has expired: refresh or reconnect with a new one',
  },
  forbidden: { status: 403, wire: 'forbidden', retryable: false, doc: 'not allowed (topic, origin)' },
  unknown_app: {
    status: 403,
    wire: 'forbidden',
    retryable: false,
    doc: 'socket handshake names no known app',
  },
  not_found: { status: 404, wire: 'not_found', retryable: false, doc: 'no such resource' },
  unknown_op: { status: 400, wire: 'unknown_op', retryable: false, doc: 'socket frame with an unknown op' },
  method_not_allowed: { status: 405, wire: 'method_not_allowed', retryable: false, doc: 'wrong HTTP method' },
  conflict: { status: 409, wire: 'conflict', retryable: false, doc: 'same message id, different body' },
  payload_too_large: {
    status: 413,
    wire: 'payload_too_large',
    retryable: false,
    doc: 'body or data too large',
  },
  rate_limited: {
    status: 429,
    wire: 'rate_limited',
    closeCode: 4008,
    retryable: true,
    doc: 'over a rate limit',
  },
  too_many_connections: {
    status: 429,
    wire: 'rate_limited',
    retryable: true,
    doc: 'the user already holds the maximum number of connections',
  },
  kicked: { status: 200, wire: 'kicked', closeCode: 4003, retryable: false, doc: 'closed by the kick API' },
  slow_consumer: {
    status: 503,
    wire: 'unavailable',
    closeCode: 4009,
    retryable: true,
    doc: 'send buffer over its limit: reconnect and resume',
  },
  policy_violation: {
    status: 400,
    wire: 'bad_request',
    closeCode: 1008,
    retryable: false,
    doc: 'repeated bad frames on one connection',
  },
  protocol_error: {
    status: 400,
    wire: 'bad_request',
    closeCode: 1002,
    retryable: false,
    doc: 'protocol v2 framing broken (magic, version, flags, CRC, fragment rules): error frame, then close',
  },
  frame_too_large: {
    status: 413,
    wire: 'payload_too_large',
    closeCode: 1009,
    retryable: false,
    doc: 'a client frame over PUSH_MAX_FRAME, or a v2 frame, reassembled message or decompressed body over its limit (v2: error frame, then close)',
  },
  unavailable: {
    status: 503,
    wire: 'unavailable',
    retryable: true,
    doc: 'a backend is down or the node stops',
  },
  internal: { status: 500, wire: 'internal', closeCode: 1011, retryable: true, doc: 'unexpected failure' },
  request_timeout: {
    status: 408,
    wire: 'request_timeout',
    retryable: true,
    doc: 'request headers (10 s) or body (30 s) not received in time; the socket is closed',
  },
  headers_too_large: {
    status: 431,
    wire: 'bad_request',
    retryable: false,
    doc: 'request headers over the HTTP parser limit (16 KiB)',
  },
  overloaded: {
    status: 503,
    wire: 'overloaded',
    closeCode: 1013,
    retryable: true,
    doc: 'the process is at its connection cap or its event loop is overloaded; retry after Retry-After',
  },
  shutting_down: {
    status: 503,
    wire: 'unavailable',
    closeCode: 1001,
    retryable: true,
    doc: 'the server is shutting down: reconnect (to another node)',
  },
  heartbeat_timeout: {
    status: 408,
    wire: 'request_timeout',
    retryable: true,
    doc: 'silent for two heartbeat intervals: dropped without a close frame',
  },
  too_many_topics: {
    status: 429,
    wire: 'rate_limited',
    retryable: false,
    doc: 'a subscribe past PUSH_MAX_TOPICS_PER_CONNECTION (error frame, the connection stays)',
  },
  config_invalid: {
    status: 500,
    wire: 'internal',
    retryable: false,
    doc: 'invalid configuration at startup',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** The codes whose errors end a socket, each with its close code. */
export type ClosingCode = {
  [K in ErrorCode]: (typeof ERRORS)[K] extends { closeCode: number } ? K : never;
}[ErrorCode];

/** The close code a socket ends with for `code`; the one place close codes are read. */
export function closeCodeOf(code: ClosingCode): number {
  return (ERRORS[code] as ErrorSpec).closeCode!;
}

export class PushError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PushError';
    this.code = code;
  }

  get spec(): ErrorSpec {
    return ERRORS[this.code];
  }
}

export function isPushError(err: unknown): err is PushError {
  return err instanceof PushError;
}

/** The JSON error body of the HTTP API (and of dead letters). */
export function toErrorBody(err: PushError): { error: { code: string; message: string } } {
  return { error: { code: err.spec.wire, message: err.message } };
}
