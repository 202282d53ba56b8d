import type { StoreConfig } from '../config.js';
import { PushError } from '../domain/errors.js';
import { createMysqlStore } from './mysql/mysql-store.js';
import { createSqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './store.js';

/** Chooses the store driver by the scheme of PUSH_DB_URL. */
export async function createStore(config: StoreConfig): Promise<Store> {
  if (config.url.startsWith('sqlite:')) return createSqliteStore(config);
  if (/^(mysql|mariadb):\/\//.test(config.url)) return createMysqlStore(config);
  throw new PushError('config_invalid', `PUSH_DB_URL: no driver for "${config.url.split(':')[0]}:"`);
}
