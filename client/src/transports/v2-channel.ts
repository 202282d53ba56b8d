import type { ClientFrame, ServerFrame } from '../protocol.js';
import { type Gunzip, KIND, toServerFrames, V2Reader, V2Writer } from '../protocol-v2.js';

let gunzip: Gunzip | null = null;

/** The Node entry hands in zlib's gunzip; browsers have no synchronous one and offer snappy only. */
export function useGunzip(fn: Gunzip): void {
  gunzip = fn;
}

/** Compressions this client can read, in its order of preference. */
export function offeredCodecs(): string[] {
  return gunzip ? ['gzip', 'snappy'] : ['snappy'];
}

/** A CLOSE frame (TCP) as the server sent it. */
export interface ServerClose {
  readonly code: number;
  readonly reason: string;
}

/**
 * One connection's protocol v2 state on the client, whatever carries the bytes: frames
 * v1-shaped client frames, reads server frames back into v1 shapes, answers server PINGs.
 * `receive` throws a ProtocolError when the server's bytes break the framing rules.
 */
export class V2Channel {
  private readonly reader = new V2Reader(gunzip);
  private readonly writer = new V2Writer(false);

  constructor(private readonly write: (bytes: Uint8Array) => void) {}

  send(frame: ClientFrame | ({ op: 'hello' } & Record<string, unknown>)): void {
    const { op, ...fields } = frame as { op: keyof typeof KIND } & Record<string, unknown>;
    for (const f of this.writer.control(KIND[op], fields)) this.write(f);
  }

  receive(bytes: Uint8Array): { frames: ServerFrame[]; close: ServerClose | null } {
    const frames: ServerFrame[] = [];
    let close: ServerClose | null = null;
    for (const m of this.reader.push(bytes)) {
      if (m.kind === KIND.ping) {
        for (const f of this.writer.control(KIND.pong, {})) this.write(f);
        continue;
      }
      for (const f of toServerFrames(m)) {
        if ((f.op as string) === 'close') close = f as unknown as ServerClose;
        else frames.push(f);
      }
    }
    return { frames, close };
  }
}

/** WebSocket `message` data (ArrayBuffer, Buffer or typed array) as bytes; null for text. */
export function asBytes(data: unknown): Uint8Array | null {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}
