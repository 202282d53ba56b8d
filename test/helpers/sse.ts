/**
 * Clients for the fallback transports over real HTTP (Node's fetch):
 * - `SseClient` reads a `GET /v1/sse` body stream and parses it into events
 *   (`event:` / `id:` / `data:` lines, a blank line ends an event, `:` lines are comments);
 *   waiting is driven by the stream's chunks, never by sleeping.
 * - `poll()` makes one `GET /v1/poll` request and reports status, body and how long it took.
 */

export interface SseEvent {
  /** `event:` field (default "message", as EventSource does). */
  event: string;
  /** `id:` field, or null when the event had no `id:` line. */
  id: string | null;
  /** `data:` lines joined with "\n". */
  data: string;
  /** Number of `data:` lines (the API promises one line per message). */
  dataLines: number;
  /** `data` parsed as JSON (undefined when it is not JSON). */
  json: any;
}

export type Query = Record<string, string | number>;

export function queryString(query: Query): string {
  return new URLSearchParams(
    Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]),
  ).toString();
}

export class SseClient {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  /** Set when the stream ended (server closed it, or `close()`). */
  ended = false;
  private cursor = 0;
  private waiters: { pred: (e: SseEvent) => boolean; resolve: (e: SseEvent) => void; from: number }[] = [];
  private endWaiters: (() => void)[] = [];
  private readonly done: Promise<void>;

  private constructor(
    readonly response: Response,
    private readonly abort: AbortController,
  ) {
    this.done = this.read();
  }

  /**
   * Opens the stream; resolves once the 200 response headers are in (before `welcome`).
   * Rejects with `{status, body}` when the request is refused.
   */
  static async connect(http: string, query: Query, headers: Record<string, string> = {}): Promise<SseClient> {
    const abort = new AbortController();
    const res = await fetch(`${http}/v1/sse?${queryString(query)}`, {
      headers: { accept: 'text/event-stream', ...headers },
      signal: abort.signal,
    });
    if (res.status !== 200) {
      const text = await res.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {}
      throw Object.assign(new Error(`HTTP ${res.status}`), { status: res.status, body });
    }
    return new SseClient(res, abort);
  }

  /** Connects and waits for the `welcome` event. */
  static async open(http: string, query: Query, headers: Record<string, string> = {}): Promise<SseClient> {
    const c = await SseClient.connect(http, query, headers);
    await c.next((e) => e.event === 'welcome');
    return c;
  }

  private async read(): Promise<void> {
    const reader = this.response.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let event: { event: string; id: string | null; data: string[] } = { event: '', id: null, data: [] };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let nl = buffer.search(/\r\n|\r|\n/);
        while (nl >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1));
          if (line === '') {
            if (event.data.length > 0 || event.event !== '' || event.id !== null) this.dispatch(event);
            event = { event: '', id: null, data: [] };
          } else if (line.startsWith(':')) {
            this.comments.push(line.slice(1).trim());
          } else {
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            let value = colon < 0 ? '' : line.slice(colon + 1);
            if (value.startsWith(' ')) value = value.slice(1);
            if (field === 'event') event.event = value;
            else if (field === 'id') event.id = value;
            else if (field === 'data') event.data.push(value);
          }
          nl = buffer.search(/\r\n|\r|\n/);
        }
      }
    } catch {
      // Aborted by close(), or the server cut the stream.
    } finally {
      this.ended = true;
      for (const w of this.endWaiters) w();
      this.endWaiters = [];
    }
  }

  private dispatch(raw: { event: string; id: string | null; data: string[] }): void {
    const data = raw.data.join('\n');
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {}
    const e: SseEvent = { event: raw.event || 'message', id: raw.id, data, dataLines: raw.data.length, json };
    this.events.push(e);
    const idx = this.events.length - 1;
    this.waiters = this.waiters.filter((w) => {
      if (idx >= w.from && w.pred(e)) {
        w.resolve(e);
        return false;
      }
      return true;
    });
  }

  /** The next event (after those already consumed) matching `pred`. */
  next(pred: (e: SseEvent) => boolean = () => true, timeoutMs = 10_000): Promise<SseEvent> {
    for (let i = this.cursor; i < this.events.length; i++) {
      if (pred(this.events[i]!)) {
        this.cursor = i + 1;
        return Promise.resolve(this.events[i]!);
      }
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `no matching SSE event within ${timeoutMs} ms; got ${JSON.stringify(this.events.slice(-5))}`,
            ),
          ),
        timeoutMs,
      );
      this.waiters.push({
        pred,
        from: this.events.length,
        resolve: (e) => {
          clearTimeout(timer);
          this.cursor = this.events.indexOf(e) + 1;
          resolve(e);
        },
      });
    });
  }

  /** Waits for `n` `event: message` events, in arrival order. */
  async messages(n: number, timeoutMs = 10_000): Promise<SseEvent[]> {
    const out: SseEvent[] = [];
    while (out.length < n) out.push(await this.next((e) => e.event === 'message', timeoutMs));
    return out;
  }

  /** The `welcome` event's payload (connection_id, user_id, device_id, heartbeat_ms). */
  get welcome(): any {
    return this.events.find((e) => e.event === 'welcome')?.json;
  }

  /** Resolves when the stream has ended (the server ended the response, or `close()`). */
  whenEnded(timeoutMs = 10_000): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`SSE stream did not end within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.endWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /**
   * Client-side close (aborts the fetch). Note: Node 20's fetch opens a spare connection after
   * an aborted stream, which holds up `server.close()` for ~4 s; tests that can should have the
   * server end the stream instead (e.g. kick the connection) and await `whenEnded()`.
   */
  async close(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}

export interface PollResult {
  status: number;
  body: any;
  /** Wall time from sending the request to having the whole body. */
  ms: number;
}

/** One long-poll request: `GET /v1/poll?…`. */
export async function poll(
  http: string,
  query: Query,
  headers: Record<string, string> = {},
): Promise<PollResult> {
  const started = performance.now();
  const res = await fetch(`${http}/v1/poll?${queryString(query)}`, { headers });
  const text = await res.text();
  const ms = performance.now() - started;
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, body, ms };
}
