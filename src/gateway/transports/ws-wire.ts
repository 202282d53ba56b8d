import WebSocket from 'ws';

/**
 * Pre-built WebSocket frames for fan-out: one frame (header + payload) built once per
 * message and the same bytes written to every socket, instead of ws converting the string
 * and framing it again for each connection. Server frames are unmasked, so they can be shared.
 */

/** ws (8.x) internals this relies on; checked on every write, so a ws that moved them falls back to `send`. */
interface WsInternals {
  readonly _socket: { write(chunk: Buffer): boolean } | null;
  readonly _sender: { readonly _state: number; readonly _queue: readonly unknown[] } | null;
}

const SENDER_IDLE = 0;

/** A complete final, unmasked, uncompressed text frame (RFC 6455 §5.2) carrying `text`. */
export function textFrame(text: string): Buffer {
  const length = Buffer.byteLength(text);
  const headerBytes = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerBytes + length);
  frame[0] = 0x81; // FIN + opcode 1 (text)
  if (length < 126) {
    frame[1] = length;
  } else if (length < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  frame.write(text, headerBytes, 'utf8');
  return frame;
}

/**
 * Writes a pre-built frame straight to the socket under a ws WebSocket. Only when the
 * socket is open and ws's sender has nothing queued (it queues while compressing or reading
 * a Blob; compression is off here), so frames never overtake each other. Returns false when
 * it did not write: the caller sends through ws as usual.
 */
export function writeFrame(transport: unknown, frame: Buffer): boolean {
  if (!(transport instanceof WebSocket) || transport.readyState !== WebSocket.OPEN) return false;
  const { _socket: socket, _sender: sender } = transport as unknown as WsInternals;
  if (!socket || !sender || sender._state !== SENDER_IDLE || sender._queue?.length !== 0) return false;
  socket.write(frame);
  return true;
}
