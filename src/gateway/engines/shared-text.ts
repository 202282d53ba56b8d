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
    const frame = Buffer.allocUnsafe(frameHeaderBytes(length) + length);
    frame.write(this.text, writeFrameHeader(frame, FIN_TEXT, length), 'utf8');
    this.framed = frame;
    return frame;
  }
}

/** First header byte of a final, uncompressed text or binary frame (FIN + opcode). */
export const FIN_TEXT = 0x81;
export const FIN_BINARY = 0x82;

/** Bytes of an unmasked server frame header for a payload of `length` bytes (RFC 6455 §5.2). */
export function frameHeaderBytes(length: number): number {
  return length < 126 ? 2 : length < 65_536 ? 4 : 10;
}

/** Writes an unmasked frame header at the start of `out`; returns its length. */
export function writeFrameHeader(out: Buffer, first: number, length: number): number {
  out[0] = first;
  if (length < 126) {
    out[1] = length;
    return 2;
  }
  if (length < 65_536) {
    out[1] = 126;
    out.writeUInt16BE(length, 2);
    return 4;
  }
  out[1] = 127;
  out.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
  out.writeUInt32BE(length >>> 0, 6);
  return 10;
}

/** A complete final, unmasked, uncompressed text frame (RFC 6455 §5.2) carrying `payload`. */
export function textFrame(payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(frameHeaderBytes(payload.length) + payload.length);
  payload.copy(frame, writeFrameHeader(frame, FIN_TEXT, payload.length));
  return frame;
}
