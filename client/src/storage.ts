/**
 * Where the client keeps its resume position (last seq, topic offsets) between runs.
 * Any object with `get` and `set` will do; both may be synchronous or return promises.
 * Browsers default to `localStorage`, Node to memory; `FileStorage` (from
 * `message-push/client/node`) keeps it in a file.
 */
export interface PushStorage {
  get(key: string): string | null | undefined | Promise<string | null | undefined>;
  set(key: string, value: string): void | Promise<void>;
}

/** Resume state as stored: the last user seq seen and, per topic, the last offset seen. */
export interface ResumeState {
  seq: number | null;
  topics: Record<string, number>;
}

export class MemoryStorage implements PushStorage {
  private readonly map = new Map<string, string>();

  get(key: string): string | null {
    return this.map.get(key) ?? null;
  }

  set(key: string, value: string): void {
    this.map.set(key, value);
  }
}

interface WebStorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** `localStorage` when the environment has a usable one (browsers), else null. */
export function webStorage(): PushStorage | null {
  let ls: WebStorageLike | undefined;
  try {
    ls = (globalThis as { localStorage?: WebStorageLike }).localStorage;
    if (!ls) return null;
    ls.getItem('message-push:probe');
  } catch {
    return null; // disabled storage (privacy modes) throws on access
  }
  const store = ls;
  return {
    get: (key) => store.getItem(key),
    set: (key, value) => {
      try {
        store.setItem(key, value);
      } catch {
        // Quota or privacy mode: resuming falls back to the server's unacked backlog.
      }
    },
  };
}

export function defaultStorage(): PushStorage {
  return webStorage() ?? new MemoryStorage();
}

export function encodeResumeState(state: ResumeState): string {
  return JSON.stringify(state);
}

/** Reads stored state; anything unreadable counts as no state (the server's backlog covers it). */
export function decodeResumeState(text: string | null | undefined): ResumeState {
  const empty: ResumeState = { seq: null, topics: {} };
  if (!text) return empty;
  try {
    const v = JSON.parse(text) as { seq?: unknown; topics?: unknown };
    const seq = typeof v.seq === 'number' && Number.isSafeInteger(v.seq) && v.seq >= 0 ? v.seq : null;
    const topics: Record<string, number> = {};
    if (v.topics && typeof v.topics === 'object') {
      for (const [t, o] of Object.entries(v.topics as Record<string, unknown>)) {
        if (typeof o === 'number' && Number.isSafeInteger(o) && o >= 0) topics[t] = o;
      }
    }
    return { seq, topics };
  } catch {
    return empty;
  }
}
