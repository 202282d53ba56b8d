import type { ClientFrame, ServerFrame, WelcomeFrame } from '../protocol.js';

export type TransportName = 'websocket' | 'sse' | 'long-poll' | 'tcp';

/** How a transport ended. `opened` tells a refused or unreachable endpoint from a dropped connection. */
export interface CloseInfo {
  readonly code: number;
  readonly reason: string;
  readonly opened: boolean;
  /** HTTP status of a refused handshake, when the transport could see it. */
  readonly status?: number;
}

export interface TransportHandlers {
  /** The connection is wired for live delivery (`welcome`; long-poll: the first answered poll). */
  onOpen(welcome: WelcomeFrame | null): void;
  onFrames(frames: ServerFrame[]): void;
  /** Any sign of life (frames, SSE comments, pongs): feeds the client's liveness check. */
  onActivity(): void;
  /** Called exactly once, whatever ended the connection. */
  onClose(info: CloseInfo): void;
}

/** What every transport is opened with. Getters, because long-poll asks again for each request. */
export interface TransportParams {
  /** `http(s)://host[:port][/prefix]` of the service. */
  readonly baseUrl: string;
  readonly app: string;
  readonly device: string | undefined;
  token(): string;
  /** The resume point for the next request (null: the server's unacked backlog). */
  since(): number | null;
}

export interface Transport {
  readonly name: TransportName;
  /** Whether client frames (subscribe, refresh, ping) can be sent: WebSocket only. */
  readonly canSend: boolean;
  send(frame: ClientFrame): void;
  ack(ids: string[]): void;
  /** Closes from this side; `onClose` follows with `code`. */
  close(code?: number, reason?: string): void;
}

/** Builds a transport the client cannot build itself (TCP, from the Node entry). */
export type TransportFactory = (
  params: TransportParams,
  handlers: TransportHandlers,
  openTimeoutMs: number,
) => Transport;

/** Minimal `fetch` the fallbacks need; the global one (browsers, Node 18+) fits. */
export type FetchLike = (
  url: string,
  init?: {
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    signal?: AbortSignal;
    cache?: 'no-store';
  },
) => Promise<FetchResponse>;

export interface FetchResponse {
  readonly ok: boolean;
  readonly status: number;
  text(): Promise<string>;
  readonly body: {
    getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> };
  } | null;
}

export function endpoint(params: TransportParams, path: string, extra: Record<string, string> = {}): string {
  const q = new URLSearchParams({ app: params.app, token: params.token() });
  if (params.device) q.set('device', params.device);
  const since = params.since();
  if (since !== null) q.set('since', String(since));
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  return `${params.baseUrl}${path}?${q}`;
}

/** `POST /v1/me/ack {"ids":[…]}`: the fallbacks' ack (they cannot send frames). Failures are left to resends. */
export function postAck(
  fetchFn: FetchLike,
  params: TransportParams,
  ids: string[],
  device: string | undefined,
): void {
  const q = new URLSearchParams({ app: params.app, token: params.token() });
  fetchFn(`${params.baseUrl}/v1/me/ack?${q}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(device ? { ids, device } : { ids }),
  }).then(
    (res) => res.text(),
    () => undefined,
  );
}

/**
 * Hands one chunk of frames to the client, as the streaming transports (WebSocket, SSE)
 * receive them: the first `welcome` opens the connection (`opening` runs just before, e.g.
 * to clear the open timer), later ones are ignored, the rest go on as one batch.
 * Returns whether the connection is open now.
 */
export function deliverFrames(
  frames: readonly ServerFrame[],
  welcomed: boolean,
  handlers: TransportHandlers,
  opening: () => void,
): boolean {
  const welcome = frames.find((f): f is WelcomeFrame => f.op === 'welcome');
  if (welcome && !welcomed) {
    opening();
    handlers.onOpen(welcome);
  }
  const rest = frames.filter((f) => f.op !== 'welcome');
  if (rest.length > 0) handlers.onFrames(rest);
  return welcomed || welcome !== undefined;
}
