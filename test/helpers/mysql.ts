import { createConnection } from 'mysql2/promise';
import { serverOptions } from '../../src/store/mysql/mysql-store.js';

/** The same server URL with another database name (each suite gets its own database). */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Drops the database a mysql:// URL names (suites and the bench make their own). */
export async function dropMysqlDatabase(urlText: string): Promise<void> {
  const url = new URL(urlText);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  const conn = await createConnection(serverOptions(url));
  try {
    await conn.query(`drop database if exists \`${database.replaceAll('`', '``')}\``);
  } finally {
    await conn.end();
  }
}

export const dropDatabase = dropMysqlDatabase;

/** A direct connection to a suite's database, for assertions on what was stored. */
export async function queryDatabase<T>(url: string, query: string, params: unknown[] = []): Promise<T[]> {
  const u = new URL(url);
  const conn = await createConnection({ ...serverOptions(u), database: u.pathname.slice(1) });
  try {
    const [rows] = await conn.query(query, params);
    return rows as T[];
  } finally {
    await conn.end();
  }
}
