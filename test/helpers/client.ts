import WebSocket from 'ws';

export interface Frame {
  op: string;
  [key: string]: any;
}

/**
 * A test client over a real socket. Frames are flattened (coalesced arrays become single
 * messages) and waited for by predicate, driven by socket events, never by sleeping.
 */
export class TestClient {
  readonly frames: Frame[] = [];
  closeCode: number | null = null;
  closeReason = '';
  private waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void; from: number }[] = [];
  private closeWaiters: ((code: number) => void)[] = [];
  private cursor = 0;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      const parsed = JSON.parse(isBinary ? '"binary"' : data.toString());
      for (const f of Array.isArray(parsed) ? parsed : [parsed]) this.push(f);
    });
    ws.on('close', (code, reason) => {
      this.closeCode = code;
      this.closeReason = reason.toString();
      for (const w of this.closeWaiters) w(code);
      this.closeWaiters = [];
    });
    ws.on('error', () => {});
  }

  /** Opens a socket; resolves once it is open (before `welcome`). Rejects with the HTTP status when refused. */
  static connect(url: string, options: WebSocket.ClientOptions = {}): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, options);
      const client = new TestClient(ws);
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () =>
          reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, body })),
        );
      });
      ws.once('error', (err) => reject(err));
    });
  }

  /** Connects and waits for `welcome`. */
  static async open(
    base: string,
    query: Record<string, string | number>,
    options: WebSocket.ClientOptions = {},
  ): Promise<TestClient> {
    const qs = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]));
    const c = await TestClient.connect(`${base}?${qs}`, options);
    await c.next((f) => f.op === 'welcome');
    return c;
  }

  private push(f: Frame): void {
    this.frames.push(f);
    const idx = this.frames.length - 1;
    this.waiters = this.waiters.filter((w) => {
      if (idx >= w.from && w.pred(f)) {
        w.resolve(f);
        return false;
      }
      return true;
    });
  }

  /** The next frame (after those already consumed by `next`) matching `pred`. */
  next(pred: (f: Frame) => boolean = () => true, timeoutMs = 10_000): Promise<Frame> {
    for (let i = this.cursor; i < this.frames.length; i++) {
      if (pred(this.frames[i]!)) {
        this.cursor = i + 1;
        return Promise.resolve(this.frames[i]!);
      }
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-5))}`,
            ),
          ),
        timeoutMs,
      );
      this.waiters.push({
        pred,
        from: this.frames.length,
        resolve: (f) => {
          clearTimeout(timer);
          this.cursor = this.frames.indexOf(f) + 1;
          resolve(f);
        },
      });
    });
  }

  /** Waits for `n` user messages (op message with a seq), in arrival order. */
  async messages(n: number, timeoutMs = 10_000): Promise<Frame[]> {
    const out: Frame[] = [];
    while (out.length < n) out.push(await this.next((f) => f.op === 'message', timeoutMs));
    return out;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Sends a frame with a ref and waits for the reply carrying it. */
  async request(frame: Record<string, unknown>): Promise<Frame> {
    const ref = `r${Math.random().toString(36).slice(2)}`;
    this.send({ ...frame, ref });
    return this.next((f) => f.ref === ref);
  }

  closed(timeoutMs = 10_000): Promise<number> {
    if (this.closeCode !== null) return Promise.resolve(this.closeCode);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('socket did not close')), timeoutMs);
      this.closeWaiters.push((code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  }

  async close(): Promise<void> {
    if (this.closeCode !== null) return;
    this.ws.close(1000);
    await this.closed();
  }
}
