import { describe, expect, it, vi } from 'vitest';
import { GroupCommit } from '../../../src/store/group-commit.js';

/** A writer whose batches finish only when the test says so. */
function controlledWriter() {
  const batches: number[][] = [];
  const releases: (() => void)[] = [];
  const write = (items: number[]) =>
    new Promise<number[]>((resolve) => {
      batches.push(items);
      releases.push(() => resolve(items.map((i) => i * 10)));
    });
  return { batches, releases, write };
}

describe('group commit', () => {
  it('writes everything submitted in one turn as one batch and resolves each with its own result', async () => {
    const w = controlledWriter();
    const gc = new GroupCommit(w.write);
    const results = [1, 2, 3].map((i) => gc.submit(i));
    await new Promise((r) => setImmediate(r));
    expect(w.batches).toEqual([[1, 2, 3]]);
    w.releases[0]!();
    expect(await Promise.all(results)).toEqual([10, 20, 30]);
  });

  it('queues items that arrive during a write into the next batch, in order', async () => {
    const w = controlledWriter();
    const gc = new GroupCommit(w.write);
    const first = gc.submit(1);
    await new Promise((r) => setImmediate(r));
    const later = [gc.submit(2), gc.submit(3)];
    expect(w.batches).toEqual([[1]]);
    w.releases[0]!();
    await first;
    await new Promise((r) => setImmediate(r));
    expect(w.batches).toEqual([[1], [2, 3]]);
    w.releases[1]!();
    expect(await Promise.all(later)).toEqual([20, 30]);
  });

  it('caps batches at maxBatch', async () => {
    const sizes: number[] = [];
    const gc = new GroupCommit(async (items: number[]) => {
      sizes.push(items.length);
      return items;
    }, 4);
    await Promise.all(Array.from({ length: 10 }, (_, i) => gc.submit(i)));
    expect(sizes).toEqual([4, 4, 2]);
  });

  it('rejects every item of a failed batch and keeps working', async () => {
    let fail = true;
    const gc = new GroupCommit(async (items: number[]) => {
      if (fail) throw new Error('disk full');
      return items;
    });
    const a = gc.submit(1);
    const b = gc.submit(2);
    await expect(a).rejects.toThrow('disk full');
    await expect(b).rejects.toThrow('disk full');
    fail = false;
    expect(await gc.submit(3)).toBe(3);
  });

  it('flush resolves only after every earlier item is written', async () => {
    const w = controlledWriter();
    const gc = new GroupCommit(w.write);
    void gc.submit(1);
    let flushed = false;
    const f = gc.flush().then(() => {
      flushed = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(flushed).toBe(false);
    w.releases[0]!();
    await f;
    expect(flushed).toBe(true);
  });

  it('with a window, items submitted within it share a batch; flush does not wait for it', async () => {
    vi.useFakeTimers();
    try {
      const w = controlledWriter();
      const gc = new GroupCommit(w.write, 100, 5);
      const a = gc.submit(1);
      await vi.advanceTimersByTimeAsync(4);
      const b = gc.submit(2);
      expect(w.batches).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      expect(w.batches).toEqual([[1, 2]]);
      w.releases[0]!();
      expect(await Promise.all([a, b])).toEqual([10, 20]);

      const c = gc.submit(3);
      const f = gc.flush();
      expect(w.batches).toEqual([[1, 2], [3]]);
      w.releases[1]!();
      await f;
      expect(await c).toBe(30);
    } finally {
      vi.useRealTimers();
    }
  });
});
