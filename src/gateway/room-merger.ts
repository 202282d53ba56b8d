import type { StoredMessage } from '../domain/message.js';
import type { TopicSettings } from '../store/group-store.js';

/** What a window's messages are handed to: the hub writes them as one merged frame. */
export type WindowSink = (appId: string, topic: string, messages: StoredMessage[]) => void;

interface Window {
  readonly messages: StoredMessage[];
  readonly timer: NodeJS.Timeout;
}

const key = (appId: string, topic: string) => `${appId}\0${topic}`;

/**
 * Live rooms on this node: topics with `merge_ms` > 0 collect their messages for one window
 * (opened by the first message, closed `merge_ms` later) and hand them over together, so
 * the hub encodes one frame per window for every subscriber. Settings come from the store
 * at start and from change notices on the bus; a reload now and then repairs a missed notice.
 */
export class RoomMerger {
  private readonly mergeMs = new Map<string, number>();
  private readonly windows = new Map<string, Window>();

  constructor(private readonly sink: WindowSink) {}

  /** Replaces every setting with what the store holds. */
  load(settings: readonly TopicSettings[]): void {
    const next = new Map(settings.map((s) => [key(s.appId, s.topic), s.mergeMs]));
    for (const k of this.mergeMs.keys()) if (!next.has(k)) this.closeWindow(k);
    this.mergeMs.clear();
    for (const [k, ms] of next) this.mergeMs.set(k, ms);
  }

  /** One topic's setting changed (0 = off: an open window is flushed now). */
  apply(appId: string, topic: string, mergeMs: number): void {
    const k = key(appId, topic);
    if (mergeMs > 0) {
      this.mergeMs.set(k, mergeMs);
      return;
    }
    this.mergeMs.delete(k);
    this.closeWindow(k);
  }

  mergeMsOf(appId: string, topic: string): number {
    return this.mergeMs.get(key(appId, topic)) ?? 0;
  }

  /** Takes a topic message into its room's window; false when the topic is not merged. */
  take(message: StoredMessage): boolean {
    if (this.mergeMs.size === 0 || message.topic === null) return false;
    const k = key(message.appId, message.topic);
    const ms = this.mergeMs.get(k);
    if (ms === undefined) return false;
    const open = this.windows.get(k);
    if (open) {
      open.messages.push(message);
      return true;
    }
    const timer = setTimeout(() => this.closeWindow(k), ms);
    this.windows.set(k, { messages: [message], timer });
    return true;
  }

  private closeWindow(k: string): void {
    const w = this.windows.get(k);
    if (!w) return;
    clearTimeout(w.timer);
    this.windows.delete(k);
    // Nodes publish in no common order: a window goes out in offset order.
    const messages = w.messages.sort((a, b) => a.offset! - b.offset!);
    const first = messages[0]!;
    this.sink(first.appId, first.topic!, messages);
  }

  /** Drops open windows (shutdown): their messages are stored and replayable by offset. */
  stop(): void {
    for (const w of this.windows.values()) clearTimeout(w.timer);
    this.windows.clear();
  }
}
