import { describe, expect, it } from 'vitest';
import { StatusWriter } from '../../../src/delivery/status-writer.js';
import { createLogger } from '../../../src/observability/logger.js';
import type { DeliveryUpdate, Store } from '../../../src/store/store.js';

/** The one store call the writer makes, recorded. */
function recordingStore() {
  const updates: DeliveryUpdate[] = [];
  const store = {
    async applyDeliveryUpdates(batch: readonly DeliveryUpdate[]) {
      updates.push(...batch);
      return batch.map(() => 0);
    },
  } as unknown as Store;
  return { store, updates };
}

describe('StatusWriter.markSent', () => {
  it('merges a user’s sent marks of one turn into one update and skips topic frames (seq 0)', async () => {
    const { store, updates } = recordingStore();
    const writer = new StatusWriter(store, 5000, createLogger('silent'));
    writer.markSent('a', 'u', [0, 3, 0, 4], 100);
    writer.markSent('a', 'u', [5], 101);
    writer.markSent('a', 'v', [0], 100); // a broadcast write: nothing to record
    writer.markSent('a', 'w', [7], 102);
    await writer.flush();
    expect(updates).toEqual([
      { kind: 'sent', appId: 'a', userId: 'u', seqs: [3, 4, 5], at: 100, retryAt: 5100 },
      { kind: 'sent', appId: 'a', userId: 'w', seqs: [7], at: 102, retryAt: 5102 },
    ]);
  });

  it('records nothing for writes of topic frames only', async () => {
    const { store, updates } = recordingStore();
    const writer = new StatusWriter(store, 5000, createLogger('silent'));
    for (let i = 0; i < 3; i++) writer.markSent('a', `u${i}`, [0], 100);
    await writer.flush();
    expect(updates).toEqual([]);
  });
});
