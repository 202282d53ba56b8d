/**
 * A text frame built whole — header and payload in one buffer — so a socket takes it in one
 * write. A fan-out frame is shared by every socket it goes to: encoded to UTF-8 and framed
 * once, instead of each connection converting the string and framing it again. A frame for
 * one socket (a user message with its own seq) is built the same way: one buffer and one
 * write, where ws's `send` corks a header and a payload into a two-part writev. Server frames
 * are unmasked, so the same bytes serve every socket.
 */
export class SharedText {
  private bytes: Buffer | null = null;
  private framed: Buffer | null = null;

  constructor(readonly text: string) {}

  /** The UTF-8 payload, encoded on first use. */
  payload(): Buffer {
    this.bytes ??= Buffer.from(this.text, 'utf8');
    return this.bytes;
  }

  /** The complete frame, built on first use (straight from the text unless the payload was encoded). */
  frame(): Buffer {
    if (this.framed !== null) return this.framed;
    if (this.bytes !== null) {
      this.framed = textFrame(this.bytes);
      return this.framed;
    }
    const length = Buffer.byteLength(this.text, 'utf8');
    const frame = Buffer.allocUnsafe(headerLength(length) + length);
    frame.write(this.text, writeHeader(frame, length), 'utf8');
    this.framed = frame;
    return frame;
  }
}

/** A complete final, unmasked, uncompressed text frame (RFC 6455 §5.2) carrying `payload`. */
export function textFrame(payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(headerLength(payload.length) + payload.length);
  payload.copy(frame, writeHeader(frame, payload.length));
  return frame;
}

function headerLength(length: number): number {
  return length < 126 ? 2 : length < 65_536 ? 4 : 10;
}

/** Writes the header of a text frame of `length` payload bytes; returns where the payload starts. */
function writeHeader(frame: Buffer, length: number): number {
  frame[0] = 0x81; // FIN + opcode 1 (text)
  if (length < 126) {
    frame[1] = length;
    return 2;
  }
  if (length < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
    return 4;
  }
  frame[1] = 127;
  frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
  frame.writeUInt32BE(length >>> 0, 6);
  return 10;
}
