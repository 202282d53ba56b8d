import { describe, expect, it } from 'vitest';
import type { StoredMessage } from '../../../src/domain/message.js';
import {
  decodeClientFrame,
  encodeCoalesced,
  encodeMessageTail,
  encodeTopicMessage,
  encodeUserMessage,
} from '../../../src/gateway/protocol/json-codec.js';

const message: StoredMessage = {
  appId: 'a',
  id: 'm-1',
  type: 'notification',
  timestamp: 1640995200000,
  ttl: null,
  expiresAt: null,
  dataJson: JSON.stringify({ title: 'héllo "x"', n: [1, 2] }),
  platforms: null,
  topic: null,
  offset: null,
};

describe('json codec: server frames', () => {
  it('builds a user message frame that parses to the documented shape', () => {
    const frame = JSON.parse(encodeUserMessage(17, encodeMessageTail(message)));
    expect(frame).toEqual({
      op: 'message',
      seq: 17,
      id: 'm-1',
      type: 'notification',
      timestamp: 1640995200000,
      data: { title: 'héllo "x"', n: [1, 2] },
    });
  });

  it('builds topic frames with topic and offset', () => {
    const frame = JSON.parse(encodeTopicMessage('$all', 9, encodeMessageTail(message)));
    expect(frame).toMatchObject({ op: 'message', topic: '$all', offset: 9, id: 'm-1' });
    expect(frame.seq).toBeUndefined();
  });

  it('coalesces several frames into one JSON array and leaves a single frame alone', () => {
    const a = encodeUserMessage(1, encodeMessageTail(message));
    const b = encodeUserMessage(2, encodeMessageTail(message));
    expect(encodeCoalesced([a])).toBe(a);
    expect(JSON.parse(encodeCoalesced([a, b])).map((f: { seq: number }) => f.seq)).toEqual([1, 2]);
  });
});

describe('json codec: client frames are validated', () => {
  it.each([
    ['{"op":"ack","seq":3}', { op: 'ack', seq: 3 }],
    ['{"op":"ack","ids":["x","y"],"ref":"r1"}', { op: 'ack', ids: ['x', 'y'], ref: 'r1' }],
    ['{"op":"read","seq":0}', { op: 'read', seq: 0 }],
    ['{"op":"subscribe","topic":"room:1","since":4}', { op: 'subscribe', topic: 'room:1', since: 4 }],
    ['{"op":"unsubscribe","topic":"room:1"}', { op: 'unsubscribe', topic: 'room:1' }],
    ['{"op":"unsubscribe","topic":"$all"}', { op: 'unsubscribe', topic: '$all' }],
    ['{"op":"ping","ref":7}', { op: 'ping', ref: 7 }],
    ['{"op":"refresh","token":"a.b.c"}', { op: 'refresh', token: 'a.b.c' }],
  ])('accepts %s', (text, expected) => {
    expect(decodeClientFrame(text)).toMatchObject(expected);
  });

  it.each([
    ['not json', 'bad_request'],
    ['[1,2]', 'bad_request'],
    ['42', 'bad_request'],
    ['{"op":1}', 'bad_request'],
    ['{"op":"ack"}', 'bad_request'],
    ['{"op":"ack","seq":1,"ids":["x"]}', 'bad_request'],
    ['{"op":"ack","seq":"1"}', 'bad_request'],
    ['{"op":"ack","seq":-1}', 'bad_request'],
    ['{"op":"ack","seq":1.5}', 'bad_request'],
    ['{"op":"ack","ids":[]}', 'bad_request'],
    ['{"op":"read"}', 'bad_request'],
    ['{"op":"subscribe","topic":"bad topic"}', 'bad_request'],
    ['{"op":"refresh","token":""}', 'bad_request'],
    ['{"op":"dance"}', 'unknown_op'],
  ])('refuses %s with %s', (text, code) => {
    expect(decodeClientFrame(text)).toMatchObject({ op: 'error', code });
  });

  it('echoes ref only when it is a short string or a number', () => {
    const ref = (r: unknown) =>
      (decodeClientFrame(JSON.stringify({ op: 'dance', ref: r })) as { ref: unknown }).ref;
    expect(ref('x'.repeat(128))).toBe('x'.repeat(128));
    expect(ref('x'.repeat(129))).toBeUndefined();
    expect(ref(12)).toBe(12);
    expect(ref({ a: 1 })).toBeUndefined();
    expect(ref(null)).toBeUndefined();
  });

  it('does not let __proto__ in a frame change how it is read', () => {
    const f = decodeClientFrame('{"__proto__":{"op":"ping"},"op":"ack","seq":2}');
    expect(f).toMatchObject({ op: 'ack', seq: 2 });
    expect(({} as { op?: string }).op).toBeUndefined();
  });
});
