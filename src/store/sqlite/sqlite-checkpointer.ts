import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * WAL checkpoints on a worker thread with its own connection. SQLite's automatic checkpoint
 * runs inside the COMMIT that crosses the threshold, on the event loop: copying the WAL back
 * into the database and its fsync took a fifth of batch-ingest CPU and stalled deliveries.
 * A PASSIVE checkpoint never blocks the writer, so the main connection only appends to the WAL;
 * its own auto-checkpoint stays on with a high threshold in case this thread falls behind.
 *
 * The WAL only starts over from its beginning when a write transaction begins with every
 * frame checkpointed. Under a steady stream of commits the thread's passes never end in that
 * state (frames arrive while they run), the WAL grew past the auto-checkpoint threshold, and
 * that checkpoint then ran inside COMMITs on the event loop: 6-19 ms each, every few seconds
 * at 5,000 pushes/s. So when a pass finds the WAL longer than `restartFrames`, the thread
 * runs a second, short pass and asks the writer (`onLong`) to checkpoint once itself, between
 * two of its transactions: only the frames appended during that short pass are left to copy,
 * and the writer's next transaction starts the WAL over.
 */
export class Checkpointer {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;

  constructor(path: string, intervalMs: number, restartFrames: number, onLong: () => void) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        path,
        intervalMs,
        restartFrames,
        driver: createRequire(import.meta.url).resolve('better-sqlite3'),
      },
    });
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.on('message', onLong);
    // Best effort: a failed checkpoint is retried next tick, and the main connection's own
    // auto-checkpoint bounds the WAL meanwhile.
    this.worker.on('error', () => {});
    this.worker.unref();
  }

  /** Stops after the checkpoint in progress, if any, and closes the worker's connection. */
  async close(): Promise<void> {
    // Unref'd so it never holds a process open; held while closing so the caller's shutdown
    // continues after it.
    this.worker.ref();
    this.worker.postMessage('close');
    await this.exited;
  }
}

// Plain CommonJS so it runs the same from the build and from the TypeScript sources under test.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 1000');
const pass = () => db.pragma('wal_checkpoint(PASSIVE)')[0];
const timer = setInterval(() => {
  try {
    if (pass().log < workerData.restartFrames) return;
    // Once more first, so the writer is left only what arrived during this short pass.
    pass();
    parentPort.postMessage('long');
  } catch {}
}, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;
