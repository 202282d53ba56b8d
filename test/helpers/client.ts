import { gunzipSync } from 'node:zlib';
import WebSocket from 'ws';
import {
  clientKind,
  ProtocolError,
  SUBPROTOCOL_V2,
  toServerFrames,
  V2Reader,
  V2Writer,
} from '../../client/src/protocol-v2.js';

/**
 * The wire protocol test clients speak. v1 suites are run on v2 by small files under
 * test/integration/v2/ that call `useProtocol('v2')` and then import the v1 suite: every
 * frame is translated to and from the v1 shapes here, so the assertions stay the same.
 */
export type TestProtocol = 'v1' | 'v2';
let protocol: TestProtocol = 'v1';
/** What a v2 test client offers: compressions in order, CRCs (query parameters of push.v2.bin). */
let v2Offer = 'codecs=gzip,snappy&crc=1';

/** `offer` replaces the v2 query (e.g. `codecs=` for suites whose traffic must not shrink). */
export function useProtocol(p: TestProtocol, offer?: string): void {
  protocol = p;
  if (offer !== undefined) v2Offer = offer;
}

export function testProtocol(): TestProtocol {
  return protocol;
}

const gunzip = (body: Uint8Array, maxLength: number) => gunzipSync(body, { maxOutputLength: maxLength });

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

  /** v2 only: this client's framing state. */
  private readonly reader: V2Reader | null;
  private readonly writer: V2Writer | null;

  private constructor(
    readonly ws: WebSocket,
    readonly protocol: TestProtocol,
  ) {
    this.reader = protocol === 'v2' ? new V2Reader(gunzip) : null;
    this.writer = protocol === 'v2' ? new V2Writer(true) : null;
    ws.on('message', (data, isBinary) => {
      if (this.reader) {
        if (!isBinary) return this.push({ op: 'text_on_v2', text: data.toString() });
        try {
          for (const m of this.reader.push(data as Buffer))
            for (const f of toServerFrames(m)) this.push(f as Frame);
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
          this.push({ op: 'client_protocol_error', message: err.message });
        }
        return;
      }
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
  static connect(
    url: string,
    options: WebSocket.ClientOptions = {},
    p: TestProtocol = protocol,
  ): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const ws =
        p === 'v2'
          ? new WebSocket(`${url}${url.includes('?') ? '&' : '?'}${v2Offer}`, SUBPROTOCOL_V2, options)
          : new WebSocket(url, options);
      const client = new TestClient(ws, p);
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
    const welcome = await c.next((f) => f.op === 'welcome');
    // Guards the v2 variants against silently running on v1.
    if (c.protocol === 'v2' && welcome.version !== 2)
      throw new Error(`v2 client got ${JSON.stringify(welcome)}`);
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

  /**
   * Sends a v1-shaped frame. On v2 an object becomes a frame of its op's kind (an unknown op
   * becomes kind 0x1f, which no version assigns; no op, kind 0) and a string goes out as a text message.
   */
  send(frame: unknown): void {
    if (this.writer && typeof frame !== 'string') {
      const { op, ...fields } = frame as Record<string, unknown>;
      const kind = typeof op === 'string' ? (clientKind(op) ?? 0x1f) : 0;
      for (const f of this.writer.control(kind, fields)) this.ws.send(f);
      return;
    }
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
