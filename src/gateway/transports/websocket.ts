import { type IncomingHttpHeaders, STATUS_CODES } from 'node:http';
import { closeCodeOf, isPushError, PushError, toErrorBody } from '../../domain/errors.js';
import type { TrustedProxies } from '../../limits/client-ip.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Admission, Gateway } from '../gateway.js';
import { clientIp } from '../handshake.js';
import { SUBPROTOCOL_BINARY } from '../protocol/binary-codec.js';
import { type BinaryCodec, createBinaryCodec, parseCodecOffer } from '../protocol/codec.js';
import { SUBPROTOCOL_JSON } from '../protocol/json-codec.js';
import { HEADER_BYTES } from '../protocol/v2-frame.js';
import type { Session, Transport } from '../session.js';

/** Socket paths: ours, and the seed's (`/message-push/v1/message`). */
export const WS_PATHS = new Set(['/v1/ws', '/message-push/v1/message']);

const SUBPROTOCOLS = [SUBPROTOCOL_JSON, SUBPROTOCOL_BINARY];

export interface WebSocketOptions {
  readonly maxFrameBytes: number;
  readonly trustProxy: TrustedProxies;
  /** v2: bodies of at least this many bytes are compressed (when the client accepts a compression). */
  readonly compressMin: number;
}

/** What an upgrade request carries, copied out of whichever engine parsed it. */
export interface UpgradeRequest {
  /** Path and query, as on the request line. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** The TCP peer's address. */
  readonly peer: string;
}

/** A handshake that passed: the session's admission and protocol, and the subprotocol to answer with. */
export interface AcceptedUpgrade {
  readonly admission: Admission;
  /** `Sec-WebSocket-Protocol` of the answer; null when the client offered none (v1). */
  readonly subprotocol: string | null;
  /** v2 sessions: their codec; v1 sessions share the JSON codec. */
  readonly codec: BinaryCodec | undefined;
}

/** Largest WebSocket message a session accepts: v2 messages carry a whole fragment plus its header. */
export function maxMessageBytes(options: WebSocketOptions, binary: boolean): number {
  return binary ? options.maxFrameBytes + HEADER_BYTES : options.maxFrameBytes;
}

/**
 * The WebSocket handshake as the contract states it, whatever engine carries the bytes:
 * refuses bad handshakes with an HTTP status before the upgrade (path 404, subprotocol 400,
 * then the gateway's admission checks), picks `push.v1.json` or `push.v2.bin`, and turns an
 * upgraded socket into a session (or closes it with 1013 when the node filled up meanwhile).
 */
export class WebSocketHandshake {
  constructor(
    private readonly gateway: Gateway,
    readonly options: WebSocketOptions,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /** Every check before the upgrade; a PushError (counted unless it is a 404) is the refusal to answer with. */
  async check(req: UpgradeRequest): Promise<AcceptedUpgrade | PushError> {
    try {
      return await this.checkOrThrow(req);
    } catch (err) {
      if (!isPushError(err)) {
        this.log.error({ err }, 'upgrade failed');
        return new PushError('internal', 'internal error');
      }
      if (err.code !== 'not_found') this.metrics.handshakesRefused.inc({ status: String(err.spec.status) });
      return err;
    }
  }

  private async checkOrThrow(req: UpgradeRequest): Promise<AcceptedUpgrade> {
    const url = new URL(req.url, 'http://localhost');
    if (!WS_PATHS.has(url.pathname)) {
      throw new PushError('not_found', `no WebSocket endpoint at ${url.pathname}`);
    }
    // The first subprotocol offered that this server speaks; none offered means v1.
    const offered = req.headers['sec-websocket-protocol'];
    const protocol = offered
      ? offered
          .split(',')
          .map((p) => p.trim())
          .find((p) => SUBPROTOCOLS.includes(p))
      : SUBPROTOCOL_JSON;
    if (protocol === undefined) {
      throw new PushError(
        'bad_request',
        `unsupported subprotocol; this server speaks ${SUBPROTOCOLS.join(', ')}`,
      );
    }
    const ip = clientIp(req.peer, req.headers, this.options.trustProxy);
    const admission = await this.gateway.admit(req.headers, url, ip);
    // Checked here, right before the upgrade, because open() refuses once a stop began.
    if (this.gateway.isStopping) {
      this.gateway.release(admission);
      throw new PushError('unavailable', 'server is shutting down');
    }
    const binary = protocol === SUBPROTOCOL_BINARY;
    return {
      admission,
      subprotocol: offered ? protocol : null,
      codec: binary
        ? createBinaryCodec(parseCodecOffer(url.searchParams), this.options.compressMin, true)
        : undefined,
    };
  }

  /**
   * The socket is upgraded: a session for it, or null when it was refused after all
   * (PUSH_MAX_CONNECTIONS reached by another handshake meanwhile: closed with 1013).
   */
  open(accepted: AcceptedUpgrade, conn: Transport): Session | null {
    try {
      return this.gateway.open(accepted.admission, conn, accepted.codec);
    } catch (err) {
      const code =
        isPushError(err) && 'closeCode' in err.spec ? err.spec.closeCode! : closeCodeOf('internal');
      this.metrics.closes.inc({ reason: isPushError(err) ? err.code : 'internal' });
      conn.close(code, isPushError(err) ? err.message.slice(0, 100) : 'internal error');
      return null;
    }
  }

  /** The session's first frames: welcome, then its backlog. */
  greet(s: Session, accepted: AcceptedUpgrade): void {
    this.gateway.sendWelcome(s);
    void this.gateway.replay(s, accepted.admission.since);
  }

  /** The upgraded socket's client went away before `open`: its reservation is given back. */
  abandon(accepted: AcceptedUpgrade): void {
    this.gateway.release(accepted.admission);
  }
}

/** A refused upgrade as a whole HTTP response: status line, headers and the API's error body. */
export function refusal(err: PushError): {
  status: string;
  headers: [string, string][];
  body: string;
} {
  const status = err.spec.status;
  const headers: [string, string][] = [['Content-Type', 'application/json']];
  if (status === 429 || status === 503) headers.push(['Retry-After', '1']);
  return { status: `${status} ${STATUS_CODES[status]}`, headers, body: JSON.stringify(toErrorBody(err)) };
}
