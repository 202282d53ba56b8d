import type { ServerResponse } from 'node:http';
import type { Session, Transport } from '../session.js';

/**
 * Long poll: the first batch of messages written to it becomes the response
 * `{"messages":[…]}` and ends the request; a poll that gets nothing ends with an empty list
 * when its timeout (or the connection's close) comes. Control frames are not part of it.
 */
export class LongPollTransport implements Transport {
  private done = false;
  session: Session | null = null;

  constructor(
    private readonly res: ServerResponse,
    private readonly onDone: () => void,
  ) {}

  get isDone(): boolean {
    return this.done;
  }

  readonly bufferedAmount = 0;

  send(_data: string | Buffer, cb?: (err?: Error) => void): void {
    cb?.();
  }

  sendFrames(frames: readonly string[], _seqs: readonly number[], cb?: () => void): void {
    this.respond(`{"messages":[${frames.join(',')}]}`);
    cb?.();
  }

  /** A held poll is alive until its own timeout (≤ 60 s), which may exceed two heartbeats. */
  ping(): void {
    if (this.session) this.session.lastSeen = Date.now();
  }

  /** Timeout, kick, shutdown: an empty answer; the client polls again (or elsewhere). */
  close(): void {
    this.respond('{"messages":[]}');
  }

  terminate(): void {
    if (!this.done) {
      this.done = true;
      this.res.destroy();
      this.onDone();
    }
  }

  private respond(body: string): void {
    if (this.done) return;
    this.done = true;
    if (!this.res.destroyed) {
      this.res.writeHead(200, {
        'content-type': 'application/json; charset=utf-8',
        'cache-control': 'no-store',
      });
      this.res.end(body);
    }
    this.onDone();
  }
}
