import { randomBytes } from 'node:crypto';
import { afterAll } from 'vitest';
import { createMysqlStore } from '../../src/store/mysql/mysql-store.js';
import { dropDatabase, withDatabase } from '../helpers/mysql.js';
import { describeWithService } from '../helpers/services.js';
import { storeContract } from './store-contract.js';

await describeWithService('mysql', 'store contract', (base) => {
  const url = withDatabase(base, `mp_contract_${randomBytes(4).toString('hex')}`);
  afterAll(() => dropDatabase(url));
  storeContract('mysql', () => createMysqlStore({ url, sqliteSync: 'normal' }));
});
