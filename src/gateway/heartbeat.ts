import { getOrCreate } from '../util/maps.js';
import type { Session } from './session.js';

/**
 * How often the wheel turns. A ping is a socket write (a syscall, ≈ 25 µs here), so a tick
 * must visit few sockets: with 32 slots a 15k-connection process pinged 470 sockets per tick
 * and blocked its loop 10–30 ms every half second. One slot per 20 ms keeps a tick at about
 * 20 sockets for 15k connections and a 15 s interval.
 */
const TICK_MS = 20;
const MIN_SLOTS = 32;

/**
 * One timer for every connection's heartbeat. Sessions are spread round-robin over the slots;
 * each tick visits one slot, pings the live ones and reports those silent for two intervals.
 */
export class HeartbeatWheel {
  readonly slotCount: number;
  readonly tickMs: number;
  private readonly slots: Set<Session>[];
  private cursor = 0;
  private nextSlot = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly intervalMs: number,
    private readonly onSilent: (s: Session) => void,
    private readonly onTick?: (now: number) => void,
  ) {
    this.slotCount = Math.max(MIN_SLOTS, Math.floor(intervalMs / TICK_MS));
    this.slots = Array.from({ length: this.slotCount }, () => new Set());
    this.tickMs = Math.max(1, Math.floor(intervalMs / this.slotCount));
  }

  add(s: Session): void {
    s.slot = this.nextSlot++ % this.slotCount;
    this.slots[s.slot]!.add(s);
  }

  remove(s: Session): void {
    this.slots[s.slot]!.delete(s);
  }

  start(): void {
    this.timer ??= setInterval(() => this.tick(Date.now()), this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  tick(now: number): void {
    const slot = this.slots[this.cursor]!;
    this.cursor = (this.cursor + 1) % this.slotCount;
    // Silent for two intervals (less one tick, as each session is visited once per interval).
    const deadline = now - (2 * this.intervalMs - this.tickMs);
    for (const s of slot) {
      if (s.lastSeen < deadline) this.onSilent(s);
      else s.transport.ping();
    }
    if (this.cursor === 0) this.onTick?.(now);
  }
}

/**
 * Token expiry, by whole seconds: one timer for all connections. A session whose token has
 * expired is reported once; `refresh` moves it to a later bucket.
 */
export class ExpiryWheel {
  private readonly buckets = new Map<number, Set<Session>>();
  private doneUpTo = Math.floor(Date.now() / 1000);
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly onExpired: (s: Session) => void) {}

  add(s: Session): void {
    // An expiry already behind the cursor fires on the next tick.
    const key = Math.max(Math.ceil(s.exp / 1000), this.doneUpTo + 1);
    getOrCreate(this.buckets, key, () => new Set()).add(s);
  }

  remove(s: Session): void {
    for (const key of [Math.ceil(s.exp / 1000), this.doneUpTo + 1]) {
      const set = this.buckets.get(key);
      if (set?.delete(s)) {
        if (set.size === 0) this.buckets.delete(key);
        return;
      }
    }
  }

  /** Moves a session to its new expiry (after `refresh`). */
  update(s: Session, exp: number): void {
    this.remove(s);
    s.exp = exp;
    this.add(s);
  }

  start(): void {
    this.timer ??= setInterval(() => this.tick(Date.now()), 250);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  tick(now: number): void {
    const nowSec = Math.floor(now / 1000);
    // Buckets are keyed by ceil(exp): bucket k holds tokens expiring in (k-1, k] seconds.
    for (let k = this.doneUpTo + 1; k <= nowSec; k++) {
      const set = this.buckets.get(k);
      if (!set) continue;
      this.buckets.delete(k);
      for (const s of set) this.onExpired(s);
    }
    this.doneUpTo = Math.max(this.doneUpTo, nowSec);
  }
}
