import { getOrCreate } from '../util/maps.js';
import type { Session } from './session.js';

/**
 * How often the wheel moves on by one slot. A ping is a socket write (a syscall, ≈ 25 µs here),
 * so a tick must visit few sockets: with 32 slots a 15k-connection process pinged 470 sockets
 * per tick and blocked its loop 10–30 ms every half second. About 20 ms per slot keeps a tick at
 * about 20 pings for 15k connections and a 15 s interval.
 */
const TICK_MS = 20;
const MIN_SLOTS = 32;
/**
 * Longest gap between two liveness checks of one session. The contract drops a silent client
 * between 2·H and 2·H + 5 s for any H, so a session must be looked at more often than once
 * per interval when H is long; 2 s leaves room for a late timer on a busy loop.
 */
export const MAX_CHECK_GAP_MS = 2000;

/**
 * One timer for every connection's heartbeat. The wheel turns once per `turnMs` (the interval
 * split into `phases` turns of at most MAX_CHECK_GAP_MS); every visit checks liveness, and a
 * session is pinged on one turn in `phases`, so it is pinged once per interval. Sessions are
 * spread round-robin over slot × phase, which keeps both the visits and the pings of a tick few.
 *
 * The wheel follows the wall clock rather than counting timer callbacks: a tick that fires late
 * (busy loop, a shared core) visits every slot that fell due meanwhile, so a late timer cannot
 * stretch a turn and push a silent client past its bound.
 */
export class HeartbeatWheel {
  readonly slotCount: number;
  readonly tickMs: number;
  /** Turns of the wheel per heartbeat interval. */
  readonly phases: number;
  private readonly slots: Set<Session>[];
  private readonly silentAfterMs: number;
  private cursor = 0;
  private turn = 0;
  private nextPosition = 0;
  private nextDue = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    intervalMs: number,
    private readonly onSilent: (s: Session) => void,
    private readonly onTick?: (now: number) => void,
  ) {
    this.phases = Math.max(1, Math.ceil(intervalMs / MAX_CHECK_GAP_MS));
    const turnMs = intervalMs / this.phases;
    this.slotCount = Math.max(MIN_SLOTS, Math.floor(turnMs / TICK_MS));
    this.slots = Array.from({ length: this.slotCount }, () => new Set());
    this.tickMs = Math.max(1, Math.floor(turnMs / this.slotCount));
    this.silentAfterMs = 2 * intervalMs;
  }

  /** `s.slot` holds the session's position: slot = position mod slotCount, its ping turn the rest. */
  add(s: Session): void {
    s.slot = this.nextPosition++ % (this.slotCount * this.phases);
    this.slots[s.slot % this.slotCount]!.add(s);
  }

  remove(s: Session): void {
    this.slots[s.slot % this.slotCount]!.delete(s);
  }

  start(): void {
    if (this.timer) return;
    this.nextDue = Date.now() + this.tickMs;
    this.timer = setInterval(() => this.advance(Date.now()), this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Visits every slot that has fallen due by `now` (at most one whole turn after a long stall). */
  advance(now: number): void {
    if (this.nextDue === 0) this.nextDue = now;
    let visits = 0;
    while (this.nextDue <= now && visits < this.slotCount) {
      this.tick(now);
      this.nextDue += this.tickMs;
      visits++;
    }
    if (this.nextDue <= now) this.nextDue = now + this.tickMs;
  }

  /** Visits one slot: drops sessions silent for two intervals, pings those whose turn it is. */
  tick(now: number): void {
    const slot = this.slots[this.cursor]!;
    const phase = this.turn % this.phases;
    const deadline = now - this.silentAfterMs;
    for (const s of slot) {
      if (s.lastSeen <= deadline) this.onSilent(s);
      else if (Math.floor(s.slot / this.slotCount) === phase) s.transport.ping();
    }
    this.cursor = (this.cursor + 1) % this.slotCount;
    if (this.cursor === 0) {
      this.turn = (this.turn + 1) % this.phases;
      if (this.turn === 0) this.onTick?.(now);
    }
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
