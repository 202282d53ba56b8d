import { describe, expect, it } from 'vitest';
import { SharedText, textFrame } from '../../../src/gateway/engines/shared-text.js';

/** Reads a server text frame back: FIN + text opcode, no mask, the payload length as declared. */
function parse(frame: Buffer): string {
  expect(frame[0]).toBe(0x81);
  const len7 = frame[1]!;
  expect(len7 & 0x80).toBe(0); // unmasked
  const [length, start] =
    len7 < 126
      ? [len7, 2]
      : len7 === 126
        ? [frame.readUInt16BE(2), 4]
        : [frame.readUInt32BE(2) * 2 ** 32 + frame.readUInt32BE(6), 10];
  expect(frame.length).toBe(start + length);
  return frame.subarray(start).toString('utf8');
}

describe('SharedText: one whole text frame', () => {
  // Around each header size boundary, with multi-byte characters (byte length ≠ string length).
  const texts = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000].flatMap((n) => [
    'x'.repeat(n),
    'é'.repeat(Math.floor(n / 2)) + 'x'.repeat(n % 2),
    `${'😀'.repeat(Math.floor(n / 4))}${'x'.repeat(n % 4)}`,
  ]);

  it('framed straight from the text: the same bytes as framing the encoded payload', () => {
    for (const text of texts) {
      const direct = new SharedText(text).frame();
      expect(parse(direct)).toBe(text);
      expect(direct.equals(textFrame(Buffer.from(text, 'utf8')))).toBe(true);
    }
  });

  it('framed after the payload was encoded (the uws path asks for it first): the same frame', () => {
    for (const text of texts.slice(0, 12)) {
      const shared = new SharedText(text);
      expect(shared.payload().toString('utf8')).toBe(text);
      expect(shared.frame().equals(new SharedText(text).frame())).toBe(true);
      expect(shared.frame()).toBe(shared.frame()); // built once
    }
  });
});
