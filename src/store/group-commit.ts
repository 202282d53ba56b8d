/**
 * Group commit: callers enqueue items and get a promise; all items queued while the
 * previous batch was being written go to the store together, in one transaction.
 * Under load the batch size grows by itself (no fixed window, no added latency when idle).
 */
export class GroupCommit<In, Out> {
  private queue: In[] = [];
  private waiters: { resolve: (v: Out) => void; reject: (e: unknown) => void }[] = [];
  private running: Promise<void> | null = null;
  private scheduled = false;

  constructor(
    private readonly write: (items: In[]) => Promise<Out[]>,
    private readonly maxBatch = 2000,
    /**
     * How long the first item of an idle queue waits for company. 0: the next turn of the
     * event loop (no added latency). Writes nobody waits on can trade a few ms for fewer
     * transactions; `flush()` never waits for it.
     */
    private readonly windowMs = 0,
  ) {}

  get pending(): number {
    return this.queue.length;
  }

  submit(item: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.queue.push(item);
      this.waiters.push({ resolve, reject });
      this.schedule();
    });
  }

  /** Resolves once every item submitted before this call has been written (or failed). */
  async flush(): Promise<void> {
    while (this.running || this.queue.length > 0) {
      if (!this.running) this.start();
      await this.running;
    }
  }

  private schedule(): void {
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    // setImmediate, not a microtask: lets every request parsed in this I/O phase join the batch.
    const run = () => {
      this.scheduled = false;
      if (!this.running) this.start();
    };
    if (this.windowMs > 0) setTimeout(run, this.windowMs);
    else setImmediate(run);
  }

  private start(): void {
    const items = this.queue.splice(0, this.maxBatch);
    const waiters = this.waiters.splice(0, items.length);
    if (items.length === 0) return;
    this.running = this.write(items).then(
      (results) => {
        for (let i = 0; i < waiters.length; i++) waiters[i]!.resolve(results[i] as Out);
      },
      (err: unknown) => {
        for (const w of waiters) w.reject(err);
      },
    );
    this.running.finally(() => {
      this.running = null;
      if (this.queue.length > 0) this.start();
    });
  }
}
