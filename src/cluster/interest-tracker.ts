import type { Bus } from '../bus/bus.js';
import { type Interest, interestKey, topicInterest } from '../bus/interest.js';
import { PushError } from '../domain/errors.js';
import { ALL_TOPIC } from '../domain/message.js';
import type { Hub } from '../gateway/hub.js';

/**
 * How long a node keeps listening for a user, topic or app after its last connection or
 * subscriber here left. A client that reconnects to the same node within it costs no bus
 * subscription churn; envelopes arriving meanwhile find no session and are dropped.
 */
export const LINGER_MS = 30_000;

/**
 * Decides what this node listens to on the bus (routing by interest): a user from the moment
 * one of its connections is admitted, a topic from its first subscriber, an app's `$all`
 * from its first connection. The hub stays the truth of what is needed: a sweep once per
 * LINGER_MS drops interests the hub has had no use for during a whole LINGER_MS.
 */
export class InterestTracker {
  /** key → the interest and when the hub last needed it. */
  private readonly held = new Map<string, { interest: Interest; neededAt: number; ready: Promise<void> }>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly bus: Bus,
    private readonly hub: Hub,
    private readonly lingerMs = LINGER_MS,
  ) {}

  /** Before a connection of this user is admitted: its messages, kicks and its app's `$all`. */
  user(appId: string, userId: string): Promise<void> {
    return this.need([
      { kind: 'user', appId, userId },
      { kind: 'app', appId },
    ]);
  }

  /** Before a subscription reads the topic's offset (`$all`: the app's broadcasts). */
  topic(appId: string, topic: string): Promise<void> {
    return this.need([topicInterest(appId, topic)]);
  }

  get size(): number {
    return this.held.size;
  }

  start(): void {
    this.timer ??= setInterval(() => this.sweep(Date.now()), this.lingerMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Drops what has not been needed for a whole linger; exported for tests with a chosen clock. */
  sweep(now: number): number {
    const drop: Interest[] = [];
    for (const [key, entry] of this.held) {
      if (this.inUse(entry.interest)) entry.neededAt = now;
      else if (now - entry.neededAt >= this.lingerMs) {
        this.held.delete(key);
        drop.push(entry.interest);
      }
    }
    this.bus.unlisten(drop);
    return drop.length;
  }

  private need(interests: Interest[]): Promise<void> {
    const now = Date.now();
    const fresh: Interest[] = [];
    const entries = interests.map((i) => {
      const key = interestKey(i);
      let entry = this.held.get(key);
      if (entry) entry.neededAt = now;
      else {
        entry = { interest: i, neededAt: now, ready: Promise.resolve() };
        this.held.set(key, entry);
        fresh.push(i);
      }
      return entry;
    });
    if (fresh.length > 0) {
      const ready = this.bus.listen(fresh).catch((err: unknown) => {
        // Not listening after all: the next connection asks the broker again.
        for (const i of fresh) this.held.delete(interestKey(i));
        throw new PushError('unavailable', `bus subscribe failed: ${(err as Error).message}`, { cause: err });
      });
      for (const e of entries) if (fresh.includes(e.interest)) e.ready = ready;
    }
    // Held ones: confirmed by the broker, or in the batch being confirmed (wait for it).
    return Promise.all(entries.map((e) => e.ready)).then(() => {});
  }

  private inUse(i: Interest): boolean {
    switch (i.kind) {
      case 'user':
        return this.hub.sessionsOf(i.appId, i.userId).length > 0;
      case 'topic':
        return this.hub.countTopicConnections(i.appId, i.topic) > 0;
      case 'app':
        return this.hub.countTopicConnections(i.appId, ALL_TOPIC) > 0;
    }
  }
}
