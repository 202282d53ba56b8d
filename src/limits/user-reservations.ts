/** A reservation not turned into a session within this long (socket gone mid-upgrade) lapses. */
const LAPSE_MS = 10_000;

/**
 * Connection slots a user holds between passing the per-user check and being registered.
 * Handshakes await the token check and the cluster count; without a reservation taken
 * synchronously after those awaits, concurrent handshakes of one user all saw the same count
 * and together passed the limit.
 */
export class UserReservations {
  private readonly byUser = new Map<string, number[]>();

  /** Slots reserved and not yet opened for this user. */
  count(appId: string, userId: string, now = Date.now()): number {
    const k = `${appId}\0${userId}`;
    const times = this.byUser.get(k);
    if (!times) return 0;
    while (times.length > 0 && now - times[0]! > LAPSE_MS) times.shift();
    if (times.length === 0) this.byUser.delete(k);
    return times.length;
  }

  reserve(appId: string, userId: string, now = Date.now()): void {
    const k = `${appId}\0${userId}`;
    const times = this.byUser.get(k);
    if (times) times.push(now);
    else this.byUser.set(k, [now]);
  }

  /** The session was opened (or the handshake given up): the slot is the hub's now. */
  release(appId: string, userId: string): void {
    const k = `${appId}\0${userId}`;
    const times = this.byUser.get(k);
    if (!times) return;
    times.shift();
    if (times.length === 0) this.byUser.delete(k);
  }
}
