import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { clientKind, toServerFrames, V2Reader } from '../../../client/src/protocol-v2.js';
import { Hub } from '../../../src/gateway/hub.js';
import { decodeClientBody } from '../../../src/gateway/protocol/binary-codec.js';
import { createBinaryCodec, JSON_CODEC, type SessionCodec } from '../../../src/gateway/protocol/codec.js';
import { encodeControl } from '../../../src/gateway/protocol/json-codec.js';
import * as frame from '../../../src/gateway/protocol/v2-frame.js';
import { LIVE, Session, type Transport } from '../../../src/gateway/session.js';
import { message, noEvents } from './fixtures.js';

/** Sessions of both protocols side by side in one hub: each message is encoded once per protocol. */
function session(hub: Hub, id: string, codec: SessionCodec, sent: (string | Buffer)[]): Session {
  const transport: Transport = {
    send: (d) => void sent.push(d),
    bufferedAmount: 0,
    ping: () => {},
    close: () => {},
    terminate: () => {},
  };
  const s = new Session(id, 'a', `u-${id}`, 'd', 'web', transport, Date.now() + 60_000, null, 0, 100, codec);
  hub.register(s);
  s.state = LIVE;
  return s;
}

describe('hub with protocol v2 sessions', () => {
  it('a broadcast is encoded once per protocol and compressed once, however many v2 sessions get it', async () => {
    const hub = new Hub('n1', { coalesceMs: 0, maxSendBufferBytes: 1 << 20 }, noEvents);
    const v2sent: (string | Buffer)[][] = [[], [], []];
    const v1sent: (string | Buffer)[] = [];
    const v2 = v2sent.map((sent, i) =>
      session(hub, `b${i}`, createBinaryCodec({ compressions: ['gzip'], crc: false }, 64, true), sent),
    );
    const v1 = session(hub, 'j', JSON_CODEC, v1sent);
    const data = JSON.stringify({ text: 'broadcast '.repeat(50) });
    hub.deliverToTopic({ ...message('all-1'), topic: '$all', offset: 1, dataJson: data });
    // The very same record object is queued on every v2 session.
    const queued = v2.map((s) => s.outFrames![0]);
    expect(queued[1]).toBe(queued[0]);
    expect(queued[2]).toBe(queued[0]);
    expect(typeof v1.outFrames![0]).toBe('string');
    await new Promise((r) => queueMicrotask(() => r(null)));
    // Same compressed payload everywhere; only the header (Sequence) is per connection.
    const payloads = v2sent.map((sent) => (sent[0] as Buffer).subarray(16).toString('hex'));
    expect(new Set(payloads).size).toBe(1);
    // Each v2 session got its own frame (its own Sequence), decoding to the v1 frame.
    for (const sent of v2sent) {
      const reader = new V2Reader((b, max) => gunzipSync(b, { maxOutputLength: max }));
      const frames = sent.flatMap((b) => reader.push(b as Buffer)).flatMap(toServerFrames);
      expect(frames).toEqual([JSON.parse(v1sent[0] as string)]);
      expect((sent[0] as Buffer)[6]! & 0x03).toBe(1);
    }
  });

  it('on transports that take parts, a broadcast shares its payload and CRC objects; only the header is per connection', async () => {
    const hub = new Hub('n1', { coalesceMs: 0, maxSendBufferBytes: 1 << 20 }, noEvents);
    const parts: [Buffer, Buffer][][] = [[], [], []];
    const offers = [
      { compressions: ['gzip'], crc: true },
      { compressions: ['gzip'], crc: true },
      { compressions: [], crc: false },
    ];
    parts.forEach((got, i) => {
      const transport: Transport = {
        send: () => {
          throw new Error('expected sendParts');
        },
        sendParts: (head, body) => void got.push([head, body]),
        bufferedAmount: 0,
        ping: () => {},
        close: () => {},
        terminate: () => {},
      };
      const codec = createBinaryCodec(offers[i]!, 64, true);
      const s = new Session(
        `p${i}`,
        'a',
        `u-p${i}`,
        'd',
        'web',
        transport,
        Date.now() + 60_000,
        null,
        0,
        100,
        codec,
      );
      hub.register(s);
      s.state = LIVE;
    });
    const data = JSON.stringify({ text: 'broadcast '.repeat(50) });
    for (const offset of [1, 2]) {
      hub.deliverToTopic({ ...message(`all-${offset}`), topic: '$all', offset, dataJson: data });
      await new Promise((r) => queueMicrotask(() => r(null)));
    }
    const [a, b, plain] = parts;
    // Same offer: the very same payload-and-CRC buffer, compressed and checksummed once.
    expect(b![0]![1]).toBe(a![0]![1]);
    const crcOf = ([head, body]: [Buffer, Buffer]) =>
      head[6]! & frame.FLAG_CRC ? body.readUInt32BE(body.length - 4) : null;
    expect(crcOf(b![0]!)).toBe(crcOf(a![0]!));
    expect(crcOf(a![0]!)).not.toBeNull();
    expect(crcOf(plain![0]!)).toBeNull();
    // Each connection numbers its own frames: Sequence 1 then 2, whatever the others did.
    for (const got of parts) expect(got.map(([head]) => head.readUInt32BE(12))).toEqual([1, 2]);
    // Joined, each connection's parts are valid frames that decode to the broadcast.
    for (const got of parts) {
      const reader = new V2Reader((z, max) => gunzipSync(z, { maxOutputLength: max }));
      for (const [head, body] of got) {
        const joined = Buffer.concat([head, body]);
        expect(joined.readUInt32BE(8)).toBe(joined.length - 16);
        const [m] = reader.push(joined).flatMap(toServerFrames);
        expect(m).toMatchObject({ op: 'message', topic: '$all', data: JSON.parse(data) });
      }
    }
  });

  it('control frames are compressed only from 4 KiB (a welcome never is); message bodies from compress_min', () => {
    const writer = new frame.FrameWriter(frame.COMPRESSION_GZIP, 256, false);
    const flagsOf = (kind: number, bytes: number) =>
      writer.frames(kind, Buffer.from(JSON.stringify({ pad: 'p'.repeat(bytes) })))[0]![6]! & 0x03;
    expect(flagsOf(frame.KIND.welcome, 300)).toBe(frame.COMPRESSION_NONE);
    expect(flagsOf(frame.KIND.error, frame.CONTROL_COMPRESS_MIN - 100)).toBe(frame.COMPRESSION_NONE);
    expect(flagsOf(frame.KIND.subscribed, frame.CONTROL_COMPRESS_MIN)).toBe(frame.COMPRESSION_GZIP);
    expect(flagsOf(frame.KIND.message, 300)).toBe(frame.COMPRESSION_GZIP);
    expect(flagsOf(frame.KIND.batch, 300)).toBe(frame.COMPRESSION_GZIP);
    expect(flagsOf(frame.KIND.message, 100)).toBe(frame.COMPRESSION_NONE);
  });

  it('the compressed-body cache returns the body it compressed first for the same record', () => {
    const cache = new frame.CompressedCache();
    const body = Buffer.from('x'.repeat(1000));
    const first = cache.get(body, frame.COMPRESSION_GZIP);
    expect(cache.get(body, frame.COMPRESSION_GZIP)).toBe(first);
    expect(cache.get(Buffer.from(body), frame.COMPRESSION_GZIP)).not.toBe(first);
  });

  it('revoke, read sync, join and leave keep their place behind queued messages, on v2 as on v1', async () => {
    const hub = new Hub('n1', { coalesceMs: 0, maxSendBufferBytes: 1 << 20 }, noEvents);
    const v2sent: (string | Buffer)[] = [];
    const v1sent: (string | Buffer)[] = [];
    const v2 = session(hub, 'o2', createBinaryCodec({ compressions: [], crc: true }, 64, true), v2sent);
    const v1 = session(hub, 'o1', JSON_CODEC, v1sent);
    for (const s of [v2, v1]) {
      hub.deliverToUsers(message(`m-${s.id}`), [{ user: s.userId, seq: 1, devices: null }]);
      const controls = [
        ['revoke', { id: `m-${s.id}`, seq: 1 }],
        ['read', { seq: 1 }],
        ['join', { topic: 'room', user: 'x', device: 'd' }],
        ['leave', { topic: 'room', user: 'x', device: 'd' }],
      ] as const;
      for (const [op, fields] of controls) hub.sendControl(s, op, fields, encodeControl(op, fields));
      // Nothing reaches the wire ahead of the queued message.
      expect(s === v2 ? v2sent : v1sent).toEqual([]);
    }
    await new Promise((r) => setImmediate(r));
    const reader = new V2Reader();
    const wire = v2sent.flatMap((b) => reader.push(b as Buffer));
    // READ_SYNC (0x2A) on the wire, the v1 op `read` in the SDK.
    expect(wire.map((m) => m.kind)).toEqual([
      frame.KIND.message,
      frame.KIND.revoke,
      frame.KIND.read_sync,
      frame.KIND.join,
      frame.KIND.leave,
    ]);
    expect(wire.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    const ops = (frames: { op: string }[]) => frames.map((f) => f.op);
    const v1frames = v1sent.flatMap((t) => [JSON.parse(t as string)].flat());
    expect(ops(wire.flatMap(toServerFrames))).toEqual(['message', 'revoke', 'read', 'join', 'leave']);
    expect(ops(v1frames)).toEqual(['message', 'revoke', 'read', 'join', 'leave']);
    expect(wire.flatMap(toServerFrames)[2]).toEqual({ op: 'read', seq: 1 });
  });

  it('a client READ (0x03) from the SDK is the v1 op read on the server; the server never sends 0x03', () => {
    expect(clientKind('read')).toBe(frame.KIND.read);
    expect(decodeClientBody(clientKind('read')!, Buffer.from(JSON.stringify({ seq: 7 })))).toEqual({
      op: 'read',
      seq: 7,
    });
    expect(frame.KIND.read_sync).not.toBe(frame.KIND.read);
  });

  it('messages queued together for a v2 session go out as one BATCH frame', async () => {
    const hub = new Hub('n1', { coalesceMs: 0, maxSendBufferBytes: 1 << 20 }, noEvents);
    const sent: (string | Buffer)[] = [];
    const s = session(hub, 'c', createBinaryCodec({ compressions: [], crc: true }, 64, true), sent);
    s.lastSeq = 0;
    hub.deliverToUsers(message('m1'), [{ user: s.userId, seq: 1, devices: null }]);
    hub.deliverToUsers(message('m2'), [{ user: s.userId, seq: 2, devices: null }]);
    await new Promise((r) => setImmediate(r));
    expect(sent).toHaveLength(1);
    expect((sent[0] as Buffer)[7]).toBe(frame.KIND.batch);
    const frames = new V2Reader().push(sent[0] as Buffer).flatMap(toServerFrames);
    expect(frames.map((f) => [f.op, (f as { seq?: number }).seq, (f as { id?: string }).id])).toEqual([
      ['message', 1, 'm1'],
      ['message', 2, 'm2'],
    ]);
  });
});
