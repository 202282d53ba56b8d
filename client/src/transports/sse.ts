import { CLOSE, type ClientFrame, parseFrames } from '../protocol.js';
import {
  type CloseInfo,
  deliverFrames,
  endpoint,
  type FetchLike,
  postAck,
  type Transport,
  type TransportHandlers,
  type TransportParams,
} from './transport.js';

/**
 * Server-Sent Events over `fetch` (not EventSource): the HTTP status of a refused request
 * is visible, reconnects follow the client's own backoff and `since`, and it runs in Node
 * too. Acks go over `POST /v1/me/ack`; topics need the WebSocket.
 */
export class SseTransport implements Transport {
  readonly name = 'sse';
  readonly canSend = false;
  private readonly abort = new AbortController();
  private welcomed = false;
  private ended = false;
  private readonly openTimer: ReturnType<typeof setTimeout>;

  constructor(
    private readonly fetchFn: FetchLike,
    private readonly params: TransportParams,
    private readonly handlers: TransportHandlers,
    openTimeoutMs: number,
  ) {
    this.openTimer = setTimeout(() => this.close(CLOSE.abnormal, 'open timeout'), openTimeoutMs);
    void this.run();
  }

  send(_frame: ClientFrame): void {}

  ack(ids: string[]): void {
    postAck(this.fetchFn, this.params, ids, this.params.device);
  }

  close(code: number = CLOSE.normal, reason = ''): void {
    this.abort.abort();
    this.end({ code, reason, opened: this.welcomed });
  }

  private async run(): Promise<void> {
    let info: CloseInfo = { code: CLOSE.abnormal, reason: 'stream ended', opened: false };
    try {
      const res = await this.fetchFn(endpoint(this.params, '/v1/sse'), {
        headers: { accept: 'text/event-stream' },
        signal: this.abort.signal,
        cache: 'no-store',
      });
      if (!res.ok || !res.body) {
        const body = await res.text().catch(() => '');
        this.end({
          code: CLOSE.abnormal,
          reason: errorMessage(body, res.status),
          opened: false,
          status: res.status,
        });
        return;
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done || this.ended) break;
        buffer += decoder.decode(value, { stream: true });
        let cut = buffer.indexOf('\n\n');
        while (cut >= 0) {
          this.event(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          cut = buffer.indexOf('\n\n');
        }
      }
      info = { code: CLOSE.abnormal, reason: 'stream ended', opened: this.welcomed };
    } catch (err) {
      info = { code: CLOSE.abnormal, reason: String((err as Error)?.message ?? err), opened: this.welcomed };
    }
    this.end(info);
  }

  /** One SSE event block: `event:` names the op; `data:` lines hold a frame. */
  private event(block: string): void {
    this.handlers.onActivity();
    let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('data:')) data += line.slice(line.startsWith('data: ') ? 6 : 5);
    }
    if (!data) return; // a comment (heartbeat)
    this.welcomed = deliverFrames(parseFrames(data), this.welcomed, this.handlers, () =>
      clearTimeout(this.openTimer),
    );
  }

  private end(info: CloseInfo): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.openTimer);
    this.abort.abort();
    this.handlers.onClose(info);
  }
}

export function errorMessage(body: string, status: number): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: string } };
    if (parsed.error?.message) return parsed.error.message;
  } catch {}
  return `HTTP ${status}`;
}
