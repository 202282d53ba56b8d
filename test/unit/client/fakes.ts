import type { WebSocketLike } from '../../../client/src/index.js';

/**
 * A WebSocket the test drives by hand: the client under test opens it, the test plays the
 * server (`welcome`, frames, closes, refused handshakes) and reads what the client sent.
 */
export class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  readonly sent: any[] = [];
  readonly url: URL;
  closedByClient: number | null = null;

  constructor(url: string) {
    this.url = new URL(url);
    FakeSocket.all.push(this);
  }

  static reset(): void {
    FakeSocket.all = [];
  }

  static get last(): FakeSocket {
    const s = FakeSocket.all.at(-1);
    if (!s) throw new Error('no socket was opened');
    return s;
  }

  get since(): string | null {
    return this.url.searchParams.get('since');
  }

  /** Whether it answers `ping` with `pong`, as a live server does. */
  answersPings = true;

  send(data: string): void {
    const frame = JSON.parse(data);
    this.sent.push(frame);
    if (frame.op === 'ping' && this.answersPings) queueMicrotask(() => this.frame({ op: 'pong' }));
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState === 3) return;
    this.closedByClient = code;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** Server: accept and send `welcome`. */
  open(welcome: Record<string, unknown> = {}): void {
    this.readyState = 1;
    this.onopen?.({});
    this.frame({
      op: 'welcome',
      connection_id: `c${FakeSocket.all.indexOf(this)}`,
      user_id: 'u1',
      device_id: 'd1',
      heartbeat_ms: 15_000,
      ...welcome,
    });
  }

  /** Server: one text frame (an array is a coalesced frame). */
  frame(f: unknown): void {
    this.onmessage?.({ data: JSON.stringify(f) });
  }

  /** Server: user messages with these seqs (ids m<seq> unless given). */
  messages(...seqs: (number | { seq: number; id: string })[]): void {
    this.frame(
      seqs.map((s) => {
        const { seq, id } = typeof s === 'number' ? { seq: s, id: `m${s}` } : s;
        return { op: 'message', seq, id, type: 'text', timestamp: 1, data: { seq } };
      }),
    );
  }

  /** Server or network: the connection ends. */
  drop(code = 1006, reason = ''): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** Server: refuses the handshake with an HTTP status (as `ws` reports it). */
  refuse(status: number): void {
    this.onerror?.({ message: `Unexpected server response: ${status}` });
    this.drop(1006);
  }

  /** Frames the client sent with this op. */
  sentOps(op: string): any[] {
    return this.sent.filter((f) => f.op === op);
  }
}

/** An unsigned JWT with the claims the client reads (sub, exp in seconds). */
export function fakeToken(sub = 'u1', expSeconds = Math.floor(Date.now() / 1000) + 3600): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: expSeconds })}.sig`;
}
