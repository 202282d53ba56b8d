import { CLOSE, type ClientFrame, parseFrames } from '../protocol.js';
import { errorMessage } from './sse.js';
import {
  endpoint,
  type FetchLike,
  postAck,
  type Transport,
  type TransportHandlers,
  type TransportParams,
} from './transport.js';

/** Seconds a poll is held by the server when nothing arrives (docs/reference/client-api.md: default 25, at most 60). */
export const DEFAULT_POLL_SECONDS = 25;

/**
 * Long poll: `GET /v1/poll?since=…` in a loop, each request ending with the first batch (or
 * an empty list after its timeout). The first poll is answered at once (`timeout=0`), so
 * the client knows the server admitted it; the following ones are held. `since` is the
 * client's last seq, so nothing between two polls is missed.
 */
export class LongPollTransport implements Transport {
  readonly name = 'long-poll';
  readonly canSend = false;
  private abort: AbortController | null = null;
  private opened = false;
  private ended = false;

  constructor(
    private readonly fetchFn: FetchLike,
    private readonly params: TransportParams,
    private readonly handlers: TransportHandlers,
    private readonly pollSeconds: number,
  ) {
    void this.run();
  }

  send(_frame: ClientFrame): void {}

  ack(ids: string[]): void {
    postAck(this.fetchFn, this.params, ids, this.params.device);
  }

  close(code: number = CLOSE.normal, reason = ''): void {
    this.abort?.abort();
    this.end(code, reason);
  }

  private async run(): Promise<void> {
    while (!this.ended) {
      const timeout = this.opened ? this.pollSeconds : 0;
      this.abort = new AbortController();
      // Bounded: a poll the network swallowed ends here and the loop (or the client) goes on.
      const guard = setTimeout(() => this.abort?.abort(), (timeout + 15) * 1000);
      try {
        const res = await this.fetchFn(endpoint(this.params, '/v1/poll', { timeout: String(timeout) }), {
          signal: this.abort.signal,
          cache: 'no-store',
        });
        const body = await res.text();
        if (this.ended) return;
        if (!res.ok) {
          this.end(CLOSE.abnormal, errorMessage(body, res.status), res.status);
          return;
        }
        this.handlers.onActivity();
        if (!this.opened) {
          this.opened = true;
          this.handlers.onOpen(null);
        }
        const frames = parseFrames(body, 'messages');
        if (frames.length > 0) this.handlers.onFrames(frames);
      } catch (err) {
        this.end(CLOSE.abnormal, String((err as Error)?.message ?? err));
        return;
      } finally {
        clearTimeout(guard);
      }
    }
  }

  private end(code: number, reason: string, status?: number): void {
    if (this.ended) return;
    this.ended = true;
    this.handlers.onClose({
      code,
      reason,
      opened: this.opened,
      ...(status !== undefined && !this.opened ? { status } : {}),
    });
  }
}
