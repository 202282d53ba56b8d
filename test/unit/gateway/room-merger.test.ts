import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { StoredMessage } from '../../../src/domain/message.js';
import { encodeCoalesced } from '../../../src/gateway/protocol/json-codec.js';
import { RoomMerger } from '../../../src/gateway/room-merger.js';

const msg = (topic: string, offset: number, appId = 'a'): StoredMessage => ({
  appId,
  id: `m${offset}`,
  type: 'message',
  timestamp: 0,
  ttl: null,
  expiresAt: null,
  dataJson: 'null',
  platforms: null,
  topic,
  offset,
});

describe('room merger', () => {
  let windows: { topic: string; offsets: number[] }[];
  let merger: RoomMerger;
  beforeEach(() => {
    vi.useFakeTimers();
    windows = [];
    merger = new RoomMerger((_app, topic, messages) =>
      windows.push({ topic, offsets: messages.map((m) => m.offset!) }),
    );
  });
  afterEach(() => {
    merger.stop();
    vi.useRealTimers();
  });

  it('hands over one window per merge_ms, opened by its first message, in offset order', () => {
    merger.load([{ appId: 'a', topic: 'room', mergeMs: 100 }]);
    expect(merger.take(msg('other', 1))).toBe(false);
    expect(merger.take(msg('room', 1, 'b'))).toBe(false); // per app
    expect(merger.take(msg('room', 2))).toBe(true);
    vi.advanceTimersByTime(50);
    merger.take(msg('room', 4));
    merger.take(msg('room', 3)); // overtook on the bus
    expect(windows).toEqual([]);
    vi.advanceTimersByTime(50);
    expect(windows).toEqual([{ topic: 'room', offsets: [2, 3, 4] }]);
    merger.take(msg('room', 5));
    vi.advanceTimersByTime(100);
    expect(windows).toHaveLength(2);
  });

  it('turning a room off flushes its open window; a reload drops rooms no longer set', () => {
    merger.apply('a', 'r1', 1000);
    merger.apply('a', 'r2', 1000);
    merger.take(msg('r1', 1));
    merger.take(msg('r2', 1));
    merger.apply('a', 'r1', 0);
    expect(windows).toEqual([{ topic: 'r1', offsets: [1] }]);
    expect(merger.take(msg('r1', 2))).toBe(false);
    merger.load([]);
    expect(windows).toEqual([
      { topic: 'r1', offsets: [1] },
      { topic: 'r2', offsets: [1] },
    ]);
    expect(merger.mergeMsOf('a', 'r2')).toBe(0);
  });

  it('a merged window queued with other frames is spliced into one flat array', () => {
    expect(encodeCoalesced(['{"a":1}', '[{"b":2},{"c":3}]', '{"d":4}'])).toBe(
      '[{"a":1},{"b":2},{"c":3},{"d":4}]',
    );
    expect(encodeCoalesced(['[{"b":2}]'])).toBe('[{"b":2}]');
  });
});
