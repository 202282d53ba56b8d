import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { Checkpointer } from '../../src/store/sqlite/sqlite-checkpointer.js';
import { tempDir } from '../helpers/server.js';

const dir = tempDir('mp-ckpt-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FRAME = 4096 + 24;

/**
 * Under a steady stream of commits the checkpoint thread's own passes never end with every
 * frame copied, so the WAL never starts over and grows until the writer's auto-checkpoint
 * runs inside a COMMIT. The thread asks the writer to checkpoint once itself instead; the
 * writer's next transaction then starts the WAL over, and the file stays short.
 */
describe('sqlite checkpoint thread: the WAL starts over under steady writes', () => {
  it('keeps the WAL file near the restart threshold while 3,000 transactions commit, ten a millisecond', async () => {
    const path = join(dir, 'wal.db');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('wal_autocheckpoint = 0'); // only the thread and the writer's own checkpoints
    db.exec('create table t (k integer primary key, v blob)');
    const insert = db.prepare('insert into t (k, v) values (?, randomblob(3000))');
    const restartFrames = 300;
    let asked = 0;
    const checkpointer = new Checkpointer(path, 10, restartFrames, () => {
      asked++;
      db.pragma('wal_checkpoint(PASSIVE)');
    });
    try {
      let k = 0;
      let maxFrames = 0;
      // Ten one-row transactions a millisecond: the thread's passes overlap commits, and the
      // writer stays responsive to the thread's request.
      while (k < 3000) {
        for (let i = 0; i < 10; i++) db.transaction(() => insert.run(++k))();
        maxFrames = Math.max(maxFrames, statSync(`${path}-wal`).size / FRAME);
        await new Promise((r) => setTimeout(r, 1));
      }
      expect(asked).toBeGreaterThan(0);
      // Unchecked, the WAL grows to ≈ 9,000 frames here (three pages a transaction); with the
      // writer's checkpoints it stays near 600, and under 1,700 with both cores busy elsewhere.
      expect(maxFrames).toBeLessThan(10 * restartFrames);
    } finally {
      await checkpointer.close();
      db.close();
    }
  });
});
