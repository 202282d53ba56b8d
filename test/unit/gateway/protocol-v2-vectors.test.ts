import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { KIND as CLIENT_KIND, toServerFrames, V2Reader, V2Writer } from '../../../client/src/protocol-v2.js';
import type { StoredMessage } from '../../../src/domain/message.js';
import {
  decodeClientBody,
  encodeBatch,
  encodeControlBody,
  encodeRecordTail,
  encodeTopicRecord,
  encodeUserRecord,
} from '../../../src/gateway/protocol/binary-codec.js';
import { createBinaryCodec } from '../../../src/gateway/protocol/codec.js';
import { FrameReader, FrameWriter, FramingError, KIND } from '../../../src/gateway/protocol/v2-frame.js';

/**
 * Conformance with the published test vectors (docs/reference/v2-vectors/), both
 * directions and both implementations: the server's codec and the SDK's.
 */
const dir = new URL('../../../docs/reference/v2-vectors/', import.meta.url);
const load = (name: string) => JSON.parse(readFileSync(new URL(name, dir), 'utf8'));
type Frame = Record<string, unknown> & { op: string };
const serverVectors: { name: string; hex: string; meaning: Frame[]; exact: boolean }[] =
  load('server-to-client.json');
const clientVectors: { name: string; hex: string; meaning: Frame }[] = load('client-to-server.json');
const invalid: {
  fatal: { name: string; hex: string; error: string; close: number }[];
  in_sync: { name: string; hex: string; error: string; ref?: string }[];
} = load('invalid.json');

const bytes = (hex: string) => Buffer.from(hex, 'hex');
const gunzip = (b: Uint8Array, max: number) => gunzipSync(b, { maxOutputLength: max });

/** A StoredMessage with what a message frame carries. */
function stored(f: Frame): StoredMessage {
  return {
    appId: 'a',
    id: f.id as string,
    type: f.type as string,
    timestamp: f.timestamp as number,
    ttl: null,
    expiresAt: null,
    dataJson: JSON.stringify(f.data),
    platforms: null,
    topic: (f.topic as string | undefined) ?? null,
    offset: (f.offset as number | undefined) ?? null,
  };
}

function record(f: Frame): Buffer {
  const tail = encodeRecordTail(stored(f));
  return f.topic !== undefined
    ? encodeTopicRecord(f.topic as string, f.offset as number, tail)
    : encodeUserRecord(f.seq as number, tail);
}

describe('protocol v2 vectors: server → client', () => {
  it.each(serverVectors.map((v) => [v.name, v] as const))('SDK decodes "%s" to its meaning', (_, v) => {
    const reader = new V2Reader(gunzip);
    const frames = reader.push(bytes(v.hex)).flatMap(toServerFrames);
    expect(frames).toEqual(v.meaning);
    expect(reader.hasPartialFrame).toBe(false);
  });

  it.each(serverVectors.filter((v) => v.exact).map((v) => [v.name, v] as const))(
    'server encodes the meaning of "%s" to exactly its bytes',
    (_, v) => {
      const withCrc = (bytes(v.hex)[6]! & 0x08) !== 0;
      const writer = new FrameWriter(0, 256, withCrc);
      const [first, ...rest] = v.meaning;
      let wire: Buffer[];
      if (first!.op === 'message') {
        wire =
          rest.length > 0
            ? writer.frames(KIND.batch, encodeBatch(v.meaning.map(record)))
            : writer.frames(KIND.message, record(first!));
      } else {
        const { op, ref, ...fields } = first!;
        wire = writer.frames(
          KIND[op as keyof typeof KIND],
          encodeControlBody(fields, ref as string | number),
        );
      }
      expect(Buffer.concat(wire).toString('hex')).toBe(v.hex);
    },
  );
});

describe('protocol v2 vectors: client → server', () => {
  it.each(clientVectors.map((v) => [v.name, v] as const))('server decodes "%s" to its meaning', (_, v) => {
    const messages = new FrameReader().push(bytes(v.hex));
    expect(messages).toHaveLength(1);
    const m = messages[0]!;
    const { op, ...fields } = v.meaning;
    expect(m.kind).toBe(CLIENT_KIND[op as keyof typeof CLIENT_KIND]);
    if (op === 'hello' || op === 'pong') {
      expect(m.body.length === 0 ? {} : JSON.parse(m.body.toString())).toEqual(fields);
      return;
    }
    const decoded = decodeClientBody(m.kind, m.body);
    expect(decoded).toMatchObject({ ...v.meaning, ref: v.meaning.ref });
  });

  it.each(
    clientVectors
      .filter((v) => {
        const b = bytes(v.hex);
        return (b[6]! & 0x07) === 0 && b.readUInt32BE(8) + 16 === b.length;
      })
      .map((v) => [v.name, v] as const),
  )('SDK encodes the meaning of "%s" to exactly its bytes', (_, v) => {
    const { op, ...fields } = v.meaning;
    const withCrc = (bytes(v.hex)[6]! & 0x08) !== 0;
    const wire = new V2Writer(withCrc).control(CLIENT_KIND[op as keyof typeof CLIENT_KIND], fields);
    expect(Buffer.concat(wire).toString('hex')).toBe(v.hex);
  });
});

describe('protocol v2 vectors: invalid input', () => {
  it.each(invalid.fatal.map((v) => [v.name, v] as const))('"%s" breaks the framing: %s', (_, v) => {
    expect(() => new FrameReader().push(bytes(v.hex))).toThrow(FramingError);
    const codec = createBinaryCodec({ compressions: [], crc: false }, 256, true);
    expect(codec.decode(bytes(v.hex), true)).toEqual([
      expect.objectContaining({ op: 'fatal', code: v.error, closeCode: v.close }),
    ]);
  });

  it.each(invalid.in_sync.map((v) => [v.name, v] as const))(
    '"%s" is answered with an error frame, the stream still in step',
    (_, v) => {
      const codec = createBinaryCodec({ compressions: [], crc: false }, 256, true);
      const [item] = codec.decode(bytes(v.hex), true);
      expect(item).toMatchObject({ op: 'error', code: v.error, ...(v.ref ? { ref: v.ref } : {}) });
      // The next message (Sequence 2) is read normally.
      const next = new V2Writer();
      next.control(CLIENT_KIND.ping, {});
      const [ping] = codec.decode(Buffer.from(next.control(CLIENT_KIND.ping, { ref: 'after' })[0]!), true);
      expect(ping).toMatchObject({ op: 'ping', ref: 'after' });
    },
  );

  it('a fragment limit of 64 KiB and a message limit of 1 MiB: 17 full fragments are refused with 1009', () => {
    const reader = new FrameReader();
    const writer = new V2Writer();
    const frames = writer.frames(CLIENT_KIND.ack, new Uint8Array(17 * 65536));
    expect(frames).toHaveLength(17);
    let caught: unknown = null;
    try {
      for (const f of frames) reader.push(Buffer.from(f));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(FramingError);
    expect((caught as FramingError).tooLarge).toBe(true);
  });
});
