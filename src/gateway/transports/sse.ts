import type { ServerResponse } from 'node:http';
import type { Session, Transport } from '../session.js';

/**
 * Server-Sent Events: each message is `event: message`, `id: <seq>` (none for topic and
 * `$all` messages, so Last-Event-ID is always a seq), `data: <message JSON>`. Control frames
 * (welcome, errors) go out as events named by their op. A comment line every heartbeat
 * keeps proxies from closing the stream.
 */
export class SseTransport implements Transport {
  session: Session | null = null;

  constructor(private readonly res: ServerResponse) {}

  /** Headers go out only once the gateway has accepted the session, so a refusal is still a 503. */
  begin(): void {
    const res = this.res;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
  }

  get bufferedAmount(): number {
    return this.res.writableLength;
  }

  send(data: string | Buffer, cb?: (err?: Error) => void): void {
    const text = data.toString();
    const op = /^\{"op":"([a-z_]+)"/.exec(text)?.[1] ?? 'message';
    this.write(`event: ${op}\ndata: ${text}\n\n`, cb);
  }

  sendFrames(frames: readonly string[], seqs: readonly number[], cb?: () => void): void {
    let out = '';
    for (let i = 0; i < frames.length; i++) {
      out +=
        seqs[i]! > 0
          ? `event: message\nid: ${seqs[i]}\ndata: ${frames[i]}\n\n`
          : `event: message\ndata: ${frames[i]}\n\n`;
    }
    this.write(out, cb);
  }

  ping(): void {
    // No pong in SSE: a stream we can still write to is alive; a dead peer errors the socket.
    this.write(': ping\n\n');
    if (this.session) this.session.lastSeen = Date.now();
  }

  close(): void {
    this.res.end();
  }

  terminate(): void {
    this.res.destroy();
  }

  private write(text: string, cb?: () => void): void {
    if (this.res.writableEnded || this.res.destroyed) {
      cb?.();
      return;
    }
    this.res.write(text, () => cb?.());
  }
}
