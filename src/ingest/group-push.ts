import type { Router } from '../delivery/router.js';
import { PushError } from '../domain/errors.js';
import type { PushResult } from '../domain/message.js';
import type { Logger } from '../observability/logger.js';
import { type GroupPushJob, type GroupStore, LostGroupPush } from '../store/group-store.js';
import type { PersistItem } from '../store/store.js';
import type { Audience } from './ingest.js';
import { compareIds, memberBatches } from './member-union.js';

export interface GroupPushOptions {
  readonly nodeId: string;
  /** Members written per transaction (PUSH_GROUP_BATCH). */
  readonly batchSize: number;
  /** A job whose node's heartbeat is older than this is adopted (two heartbeat intervals). */
  readonly staleAfterMs: number;
  /** How often open jobs of dead nodes are looked for. */
  readonly adoptEveryMs: number;
}

/** How long a repeated id waits for a group push another node is still writing. */
const WAIT_FOR_OTHER_MS = 60_000;
const POLL_MS = 100;

/**
 * Group pushes: `to.groups` becomes one user message per distinct member of the groups'
 * union. The message row and a job row are stored first; then the members are walked in
 * id order, a batch per transaction (seqs, deliveries and the job's cursor together), and
 * each batch is routed as soon as it is durable — exactly what a `users` push does for its
 * recipients, so acks, resends, backlog and status are the same. The push is answered once
 * the last batch is written. A job cut short (crash, shutdown) is finished from its cursor
 * by this node when it starts again, or by any node once this one's heartbeat is stale.
 */
export class GroupPusher {
  /** Jobs this node is writing, by app\0id, resolving with the distinct member count. */
  private readonly running = new Map<string, Promise<number>>();
  private readonly runningPks = new Set<number>();
  private timer: NodeJS.Timeout | null = null;
  private adopting: Promise<void> | null = null;
  private stopping = false;

  constructor(
    private readonly store: GroupStore,
    private readonly router: Router,
    private readonly audience: Audience,
    private readonly options: GroupPushOptions,
    private readonly log: Logger,
  ) {}

  async push(item: PersistItem, groups: readonly string[]): Promise<PushResult> {
    if (this.stopping) throw new PushError('unavailable', 'the node is stopping');
    // Who is online is read while the job is stored: on a networked store the two round
    // trips overlap, and the online members' first batch goes out one read earlier. (A
    // repeated id does not use it; a failure surfaces where the read is awaited.)
    const online = this.store.onlineMembers(item.appId, groups, Date.now() - this.options.staleAfterMs);
    online.catch(() => {});
    const start = await this.store.startGroupPush(item, groups, this.options.nodeId);
    switch (start.kind) {
      case 'started':
        return {
          id: start.job.message.id,
          recipients: await this.begin(start.job, online),
          duplicate: false,
        };
      case 'duplicate':
        return { id: start.id, recipients: start.recipients, duplicate: true };
      case 'running': {
        const local = this.running.get(runKey(item.appId, start.id));
        const recipients = local ? await local : await this.waitForOther(item.appId, start.id);
        return { id: start.id, recipients, duplicate: true };
      }
      case 'conflict':
        throw new PushError('conflict', `message id "${start.id}" was already used with a different body`);
    }
  }

  /** Finishes this node's own open jobs now, and adopts those of dead nodes from time to time. */
  start(): void {
    this.adoptNow();
    this.timer ??= setInterval(() => this.adoptNow(), this.options.adoptEveryMs);
    this.timer.unref();
  }

  /** Stops between batches; open jobs stay in the store for the next start or another node. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.adopting;
    await Promise.allSettled([...this.running.values()]);
  }

  private adoptNow(): void {
    this.adopting ??= this.adopt()
      .catch((err: unknown) => this.log.warn({ err }, 'looking for open group pushes failed; will retry'))
      .finally(() => {
        this.adopting = null;
      });
  }

  private async adopt(): Promise<void> {
    const me = this.options.nodeId;
    const staleBefore = Date.now() - this.options.staleAfterMs;
    for (const job of await this.store.openGroupPushes()) {
      if (this.stopping) return;
      if (this.runningPks.has(job.messagePk)) continue;
      if (job.node !== me) {
        const alive = job.nodeHeartbeat != null && job.nodeHeartbeat >= staleBefore;
        if (alive || !(await this.store.claimGroupPush(job.messagePk, job.node, me))) continue;
        job.node = me;
      }
      this.log.info({ id: job.message.id, written: job.written }, 'resuming a group push');
      this.begin(job).catch(() => {}); // begin logs; the job stays open for a later try
    }
  }

  /** Runs a job to its end, registered so repeated ids wait for it instead of polling. */
  private begin(job: GroupPushJob, online?: Promise<string[]>): Promise<number> {
    const key = runKey(job.message.appId, job.message.id);
    const run = this.run(job, online).finally(() => {
      this.running.delete(key);
      this.runningPks.delete(job.messagePk);
    });
    this.running.set(key, run);
    this.runningPks.add(job.messagePk);
    return run;
  }

  /** `onlineRead`: the members online when the push came in, if already being read. */
  private async run(job: GroupPushJob, onlineRead?: Promise<string[]>): Promise<number> {
    const { appId } = job.message;
    const live = job.message.ttl === 0;
    const size = this.options.batchSize;
    const write = async (users: readonly string[], advanceTo: string | null) => {
      if (this.stopping)
        throw new PushError('unavailable', 'the node stopped during a group push; it resumes');
      const online = live ? await this.audience.onlineAmong(appId, users) : null;
      const recipients = await this.store.writeGroupBatch(job, users, online, advanceTo);
      this.router.routeStored(job.message, recipients);
    };
    try {
      // Members online anywhere in the cluster first: they get it about as fast as a
      // broadcast, instead of when the walk through a million ids reaches them.
      let ahead: Set<string>;
      if (job.afterUser === null && job.written === 0) {
        const online = (
          await (onlineRead ??
            this.store.onlineMembers(appId, job.groups, Date.now() - this.options.staleAfterMs))
        ).sort(compareIds);
        // On a store that writes transactions in parallel, the online members are split over
        // its writers: the last of them is durable (and handed to the hub) sooner.
        const writers = Math.max(1, this.store.aheadWriters);
        const per = Math.max(1, Math.min(size, Math.ceil(online.length / writers)));
        const parts: string[][] = [];
        for (let i = 0; i < online.length; i += per) parts.push(online.slice(i, i + per));
        await eachConcurrently(parts, writers, (users) => write(users, null));
        ahead = new Set(online);
      } else {
        ahead = new Set(await this.store.writtenAhead(job));
      }
      const read = (group: string, after: string | null, limit: number) =>
        this.store.listMembers(appId, group, after, limit);
      for await (const batch of memberBatches(read, job.groups, job.afterUser, size)) {
        // Those written ahead are skipped (and forgotten: the walk passes each id once).
        const users = ahead.size === 0 ? batch : batch.filter((u) => !ahead.delete(u));
        if (users.length > 0) await write(users, batch[batch.length - 1]!);
      }
      await this.store.finishGroupPush(job);
      return job.written;
    } catch (err) {
      if (err instanceof LostGroupPush) {
        // Another node adopted it (this one looked dead): it answers with the final count.
        return this.waitForOther(appId, job.message.id);
      }
      if (!(err instanceof PushError)) {
        this.log.error({ err, id: job.message.id }, 'group push failed; it resumes from its last batch');
      }
      throw err instanceof PushError
        ? err
        : new PushError('unavailable', 'group push interrupted', { cause: err });
    }
  }

  /** A push with this id is being written elsewhere: its reply once it is done. */
  private async waitForOther(appId: string, id: string): Promise<number> {
    const deadline = Date.now() + WAIT_FOR_OTHER_MS;
    while (Date.now() < deadline && !this.stopping) {
      const recipients = await this.store.groupPushResult(appId, id);
      if (recipients !== null) return recipients;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    throw new PushError(
      'unavailable',
      `group push "${id}" is still being written; repeat it to get its result`,
    );
  }
}

const runKey = (appId: string, id: string) => `${appId}\0${id}`;

/**
 * Runs `fn` over `items`, at most `limit` at a time. On a failure no further item starts;
 * those running are waited for (nothing is left writing behind the caller's back), then the
 * first failure is thrown.
 */
async function eachConcurrently<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | null = null;
  const worker = async () => {
    while (failure === null && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== null) throw (failure as { err: unknown }).err;
}
