import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../helpers/server.js';
import { storeContract } from './store-contract.js';

const dir = tempDir('mp-store-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

storeContract('sqlite', () =>
  createSqliteStore({ url: `sqlite:${join(dir, 'contract.db')}`, sqliteSync: 'normal' }),
);
