import type { LifecycleEnvelope } from '../bus/bus.js';
import type { Hub } from './hub.js';
import { encodeControl } from './protocol/json-codec.js';

type PresenceEnvelope = Extract<LifecycleEnvelope, { kind: 'topic_presence' }>;

/**
 * Delivers lifecycle signals that arrived on the bus (from any node, this one included) to
 * this node's sessions: `revoke` to a recalled message's recipients or topic subscribers,
 * `read` to a user's other devices, and topic `join`/`leave` to subscribers that asked for them.
 *
 * Join/leave are debounced per (topic, user, device): a leave is held for `debounceMs`, and a
 * join for the same key within that window cancels it and is itself dropped. A reconnect
 * storm (every client of a node dropping and coming back, here or on another node) so sends
 * nothing, and a real departure is announced `debounceMs` late. Every node sees the same
 * events in each publisher's order, so each reaches the same result for its own subscribers.
 */
export class LifecycleSignals {
  private readonly pendingLeaves = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly hub: Hub,
    private readonly debounceMs: number,
  ) {}

  deliver(e: LifecycleEnvelope): void {
    switch (e.kind) {
      case 'revoke':
        for (const r of e.recipients) {
          const fields = { id: e.id, seq: r.seq };
          const frame = encodeControl('revoke', fields);
          for (const s of this.hub.sessionsOf(e.appId, r.user))
            this.hub.sendControl(s, 'revoke', fields, frame);
        }
        return;
      case 'revoke_topic': {
        const sessions = this.hub.topicSessions(e.appId, e.topic);
        if (!sessions) return;
        const fields = { id: e.id, topic: e.topic, offset: e.offset };
        const frame = encodeControl('revoke', fields);
        for (const s of sessions) this.hub.sendControl(s, 'revoke', fields, frame);
        return;
      }
      case 'read': {
        const fields = { seq: e.seq };
        const frame = encodeControl('read', fields);
        for (const s of this.hub.sessionsOf(e.appId, e.userId)) {
          if (s.id !== e.except) this.hub.sendControl(s, 'read', fields, frame);
        }
        return;
      }
      case 'topic_presence':
        this.debounce(e);
        return;
    }
  }

  private debounce(e: PresenceEnvelope): void {
    const k = `${e.appId}\0${e.topic}\0${e.user}\0${e.device}`;
    const pending = this.pendingLeaves.get(k);
    if (e.op === 'join') {
      if (pending) {
        clearTimeout(pending);
        this.pendingLeaves.delete(k);
        return; // back within the window: neither the leave nor this join is news
      }
      this.announce(e);
      return;
    }
    if (pending) clearTimeout(pending);
    const timer = setTimeout(() => {
      this.pendingLeaves.delete(k);
      this.announce(e);
    }, this.debounceMs);
    timer.unref();
    this.pendingLeaves.set(k, timer);
  }

  private announce(e: PresenceEnvelope): void {
    const sessions = this.hub.topicSessions(e.appId, e.topic);
    if (!sessions) return;
    const fields = { topic: e.topic, user: e.user, device: e.device };
    const frame = encodeControl(e.op, fields);
    for (const s of sessions) {
      if (s.id !== e.connection && s.subs?.get(e.topic)?.presence)
        this.hub.sendControl(s, e.op, fields, frame);
    }
  }

  close(): void {
    for (const t of this.pendingLeaves.values()) clearTimeout(t);
    this.pendingLeaves.clear();
  }
}
