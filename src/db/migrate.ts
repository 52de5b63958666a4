import { join } from 'node:path';
import type { BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { migrate as migrateSqlite } from 'drizzle-orm/better-sqlite3/migrator';
import { drizzle as drizzlePg } from 'drizzle-orm/postgres-js';
import { migrate as migratePg } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import type { DatabaseConfig } from '../config.js';
import { projectRoot } from '../project-root.js';
import type { Database } from './client.js';

export const migrationsFolder = (dialect: DatabaseConfig['dialect']) => join(projectRoot, 'drizzle', dialect);

/** Any constant shared by every Usine process: it names the advisory lock that serialises migrations. */
const MIGRATION_LOCK_KEY = 0x75_73_69_6e; // "usin"

/**
 * Applies pending migrations. On PostgreSQL several replicas may start together against an empty
 * database, so the run happens on one dedicated connection holding a session advisory lock:
 * the first process migrates, the others wait, then find nothing left to do.
 */
export async function runMigrations(database: Database, config: DatabaseConfig): Promise<void> {
  if (config.dialect === 'sqlite') {
    // The cast undoes the one in client.ts: the migrator needs the real better-sqlite3 database.
    migrateSqlite(database.db as unknown as BetterSQLite3Database, { migrationsFolder: migrationsFolder('sqlite') });
    return;
  }
  const client = postgres(config.url, { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    await client`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    await migratePg(drizzlePg(client), { migrationsFolder: migrationsFolder('pg') });
  } finally {
    await client`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`.catch(() => undefined);
    await client.end({ timeout: 5 });
  }
}
