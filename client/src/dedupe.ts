/** Default number of message ids remembered for dedupe. */
export const DEFAULT_DEDUPE_WINDOW = 1000;

/**
 * The ids of the last `capacity` messages handed to the app. Bounded memory: the oldest id
 * is forgotten first. Resends of older messages are caught by the seq/offset watermark,
 * which the window backs up for messages that arrive out of their turn.
 */
export class DedupeWindow {
  private readonly ids = new Set<string>();

  constructor(readonly capacity = DEFAULT_DEDUPE_WINDOW) {
    if (!(capacity >= 1)) throw new RangeError('dedupe window capacity must be at least 1');
  }

  get size(): number {
    return this.ids.size;
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  /** Remembers an id; returns false when it was already there. */
  add(id: string): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.capacity) {
      // A Set iterates in insertion order: the first value is the oldest.
      const oldest = this.ids.values().next().value as string;
      this.ids.delete(oldest);
    }
    return true;
  }
}
