/**
 * A fan-out text frame shared by every socket it goes to: the text is encoded to UTF-8
 * once, and framed once (header + payload) for engines that write whole frames themselves,
 * instead of each connection converting the string and framing it again. Server frames are
 * unmasked, so the same bytes serve every socket.
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

  /** The complete frame, built on first use. */
  frame(): Buffer {
    this.framed ??= textFrame(this.payload());
    return this.framed;
  }
}

/** A complete final, unmasked, uncompressed text frame (RFC 6455 §5.2) carrying `payload`. */
export function textFrame(payload: Buffer): Buffer {
  const length = payload.length;
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
  payload.copy(frame, headerBytes);
  return frame;
}
