import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { toServerFrames, V2Reader } from '../../../client/src/protocol-v2.js';
import { Hub } from '../../../src/gateway/hub.js';
import { createBinaryCodec, JSON_CODEC, type SessionCodec } from '../../../src/gateway/protocol/codec.js';
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

  it('the compressed-body cache returns the body it compressed first for the same record', () => {
    const cache = new frame.CompressedCache();
    const body = Buffer.from('x'.repeat(1000));
    const first = cache.get(body, frame.COMPRESSION_GZIP);
    expect(cache.get(body, frame.COMPRESSION_GZIP)).toBe(first);
    expect(cache.get(Buffer.from(body), frame.COMPRESSION_GZIP)).not.toBe(first);
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
