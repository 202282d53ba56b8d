import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import snappy from 'snappy';
import { describe, expect, it } from 'vitest';
import {
  encodeFrame,
  FLAG_MORE,
  KIND as SDK_KIND,
  toServerFrames,
  V2Reader,
  V2Writer,
} from '../../../client/src/protocol-v2.js';
import type { StoredMessage } from '../../../src/domain/message.js';
import { createBinaryCodec, type Inbound, MessageFrames } from '../../../src/gateway/protocol/codec.js';
import { decodeClientFrame } from '../../../src/gateway/protocol/json-codec.js';
import { MAX_FRAGMENT, MAX_MESSAGE } from '../../../src/gateway/protocol/v2-frame.js';
import type { Transport } from '../../../src/gateway/session.js';

/**
 * Hostile and random input against the v2 codec: whatever arrives, decoding returns
 * frames, in-step errors or a documented fatal error (1002/1009) — it never throws, and
 * the reader never holds more than one partial frame and one message's fragments.
 */
const VALID_OPS = new Set(['ack', 'read', 'subscribe', 'unsubscribe', 'ping', 'refresh', 'skip']);

function checkItems(items: readonly Inbound[]): void {
  for (const item of items) {
    if (item.op === 'fatal') expect([1002, 1009]).toContain(item.closeCode);
    else if (item.op === 'error') expect(['bad_request', 'unknown_op']).toContain(item.code);
    else expect(VALID_OPS.has(item.op)).toBe(true);
  }
  // Nothing is decoded after a fatal error: it is the last item.
  const fatal = items.findIndex((i) => i.op === 'fatal');
  if (fatal >= 0) expect(fatal).toBe(items.length - 1);
}

function heldBytes(codec: ReturnType<typeof createBinaryCodec>): number {
  const r = codec.reader as unknown as { pending: Buffer | null; partBytes: number };
  return (r.pending?.length ?? 0) + r.partBytes;
}

/** A stream of valid client frames, the raw material for mutations. */
const validStream = fc
  .array(
    fc.record({
      kind: fc.constantFrom(SDK_KIND.ack, SDK_KIND.ping, SDK_KIND.read, SDK_KIND.subscribe, SDK_KIND.pong),
      fields: fc.dictionary(fc.constantFrom('seq', 'ref', 'topic', 'ids', 'since'), fc.jsonValue(), {
        maxKeys: 3,
      }),
      crc: fc.boolean(),
    }),
    { minLength: 1, maxLength: 5 },
  )
  .map((frames) => {
    const out: Uint8Array[] = [];
    let seq = 0;
    for (const f of frames) {
      seq++;
      const body = new TextEncoder().encode(JSON.stringify(f.fields));
      out.push(encodeFrame(f.kind, 0, seq, body, f.crc));
    }
    return Buffer.concat(out);
  });

const mutated = fc
  .tuple(
    validStream,
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
    fc.nat(),
  )
  .map(([stream, flips, cut]) => {
    const b = Buffer.from(stream);
    for (const [at, value] of flips) b[at % b.length] = value;
    return b.subarray(0, cut % 3 === 0 ? b.length : cut % (b.length + 1));
  });

describe('protocol v2 fuzz: the server codec', () => {
  it('random bytes: decode never throws; every outcome is a frame, an in-step error or a documented close', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 200 }), { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        (chunks, tcp) => {
          const codec = createBinaryCodec({ compressions: [], crc: false }, 256, !tcp);
          for (const chunk of chunks) {
            const items = codec.decode(Buffer.from(chunk), true);
            checkItems(items);
            if (items.some((i) => i.op === 'fatal')) break;
            expect(heldBytes(codec)).toBeLessThanOrEqual(MAX_FRAGMENT + 16 + MAX_MESSAGE);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('mutated valid frames (flipped bytes: magic, version, flags, length, sequence, CRC, body; truncation)', () => {
    fc.assert(
      fc.property(mutated, fc.boolean(), (bytes, tcp) => {
        const codec = createBinaryCodec({ compressions: [], crc: false }, 256, !tcp);
        checkItems(codec.decode(bytes, true));
      }),
      { numRuns: 3000 },
    );
  });

  it('random fragment sequences (kinds, MORE bits, sequences, sizes) never exceed the limits or throw', () => {
    const fragment = fc.record({
      kind: fc.constantFrom(SDK_KIND.ack, SDK_KIND.ping, 0x1f),
      more: fc.boolean(),
      seqDelta: fc.constantFrom(0, 0, 1, 1, 2),
      size: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 64 }), fc.constant(MAX_FRAGMENT)),
      compression: fc.constantFrom(0, 0, 1, 2),
    });
    fc.assert(
      fc.property(fc.array(fragment, { minLength: 1, maxLength: 24 }), (frags) => {
        const codec = createBinaryCodec({ compressions: [], crc: false }, 256, false);
        let seq = 1;
        for (const f of frags) {
          const frame = encodeFrame(
            f.kind,
            f.compression | (f.more ? FLAG_MORE : 0),
            seq,
            new Uint8Array(f.size),
          );
          seq += f.seqDelta;
          const items = codec.decode(Buffer.from(frame), true);
          checkItems(items);
          if (items.some((i) => i.op === 'fatal')) return;
          expect(heldBytes(codec)).toBeLessThanOrEqual(MAX_FRAGMENT + 16 + MAX_MESSAGE);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('decompression bombs (gzip and snappy over 1 MiB) close with 1009 without inflating past the limit', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: MAX_MESSAGE + 1, max: 8 * MAX_MESSAGE }),
        fc.constantFrom(1, 2),
        (size, how) => {
          const plain = Buffer.alloc(size, 0x61);
          const packed = how === 1 ? gzipSync(plain, { level: 9 }) : snappy.compressSync(plain);
          if (packed.length > MAX_FRAGMENT) return; // a bomb is small by definition
          const codec = createBinaryCodec({ compressions: [], crc: false }, 256, true);
          const items = codec.decode(Buffer.from(encodeFrame(SDK_KIND.ping, how, 1, packed)), true);
          expect(items).toEqual([
            expect.objectContaining({ op: 'fatal', code: 'payload_too_large', closeCode: 1009 }),
          ]);
        },
      ),
      { numRuns: 10 },
    );
  });

  it('round trip: any v1 client frame, sent by the SDK (fragmented, compressed or with CRC), decodes as v1 would', () => {
    const v1Frame = fc.oneof(
      fc.record({ op: fc.constant('ack'), seq: fc.nat(), ref: fc.string({ maxLength: 10 }) }),
      fc.record({
        op: fc.constant('ack'),
        ids: fc.array(fc.string({ minLength: 1, maxLength: 20 }), { minLength: 1, maxLength: 50 }),
      }),
      fc.record({
        op: fc.constant('subscribe'),
        topic: fc.stringMatching(/^[a-z:]{1,20}$/),
        since: fc.nat(),
      }),
      fc.record({ op: fc.constant('ping'), ref: fc.oneof(fc.string({ maxLength: 130 }), fc.integer()) }),
      fc.record({ op: fc.constant('refresh'), token: fc.string({ minLength: 1, maxLength: 200 }) }),
    );
    fc.assert(
      fc.property(
        v1Frame,
        fc.boolean(),
        fc.constantFrom(0, 1, 2),
        fc.integer({ min: 1, max: 40 }),
        (frame, crc, how, split) => {
          const { op, ...fields } = frame;
          let body: Uint8Array = new TextEncoder().encode(JSON.stringify(fields));
          if (how === 1) body = gzipSync(body);
          if (how === 2) body = snappy.compressSync(Buffer.from(body));
          // Hand-made fragments of `split` bytes, as any conforming client may send.
          const frames: Uint8Array[] = [];
          for (let at = 0; at < body.length || at === 0; at += split) {
            const end = Math.min(at + split, body.length);
            frames.push(
              encodeFrame(
                SDK_KIND[op as 'ack'],
                how | (end < body.length ? FLAG_MORE : 0),
                1,
                body.subarray(at, end),
                crc,
              ),
            );
            if (end >= body.length) break;
          }
          const codec = createBinaryCodec({ compressions: [], crc: false }, 256, false);
          const items = codec.decode(Buffer.concat(frames), true).filter((i) => i.op !== 'skip');
          expect(items).toEqual([decodeClientFrame(JSON.stringify(frame))]);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('protocol v2 fuzz: server frames as the SDK reads them', () => {
  const message = fc.record({
    id: fc.oneof(fc.uuid(), fc.string({ minLength: 1, maxLength: 40 })),
    type: fc.oneof(
      fc.constantFrom('message', 'text', 'binary', 'notification', 'alarm'),
      fc.stringMatching(/^[A-Za-z0-9._:-]{1,64}$/),
    ),
    timestamp: fc.integer({ min: 0, max: 2 ** 45 }),
    data: fc.jsonValue({ maxDepth: 4 }),
    seq: fc.integer({ min: 1, max: 2 ** 40 }),
    topic: fc.option(fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/), { nil: null }),
  });

  it('any batch of messages, any compression, CRC or not: the SDK decodes exactly what the v1 JSON frame says', () => {
    fc.assert(
      fc.property(
        fc.array(message, { minLength: 1, maxLength: 6 }),
        fc.constantFrom('none', 'gzip', 'snappy'),
        fc.boolean(),
        (msgs, compression, crc) => {
          const codec = createBinaryCodec({ compressions: [compression], crc }, 64, true);
          const sent: Buffer[] = [];
          const transport = { send: (d: Buffer) => sent.push(d) } as unknown as Transport;
          const stored = msgs.map(
            (m): StoredMessage => ({
              appId: 'a',
              id: m.id,
              type: m.type,
              timestamp: m.timestamp,
              ttl: null,
              expiresAt: null,
              dataJson: JSON.stringify(m.data),
              platforms: null,
              topic: m.topic,
              offset: m.topic ? m.seq : null,
            }),
          );
          const frames = stored.map((s) => new MessageFrames(s));
          codec.sendMessages(
            transport,
            frames.map((f, i) => (stored[i]!.topic ? f.topic(1) : f.user(1, msgs[i]!.seq))),
          );
          const v1 = frames.map((f, i) =>
            JSON.parse(stored[i]!.topic ? (f.topic(0) as string) : (f.user(0, msgs[i]!.seq) as string)),
          );
          const reader = new V2Reader((b, max) => gunzipSync(b, { maxOutputLength: max }));
          const decoded = sent.flatMap((b) => reader.push(b)).flatMap(toServerFrames);
          expect(decoded).toEqual(v1);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('SDK writer → server reader: fragments of any size up to 1 MiB round-trip', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_MESSAGE - 64 }), (size) => {
        const ids = { ref: 'x'.repeat(size) };
        const frames = new V2Writer(true).control(SDK_KIND.ping, ids);
        const codec = createBinaryCodec({ compressions: [], crc: false }, 256, false);
        const items = frames
          .flatMap((f) => codec.decode(Buffer.from(f), true))
          .filter((i) => i.op !== 'skip');
        // A ref over 128 characters is not echoed (v1 rule), but the frame is read.
        expect(items).toEqual([{ op: 'ping', ref: size <= 128 ? ids.ref : undefined }]);
      }),
      { numRuns: 20 },
    );
  });
});
