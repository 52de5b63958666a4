import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createScratchDatabase, testDb, type TestDb } from './helper.js';

/**
 * A database that outlives one app instance, for restarts and for several instances at once: a SQLite file in a
 * fresh temporary directory (never :memory:, which dies with its connection), or a new PostgreSQL database.
 */
export interface PersistentDatabase {
  url: string;
  /** The temporary directory holding the SQLite file; undefined on PostgreSQL. */
  dir?: string;
  drop(): Promise<void>;
}

export async function createPersistentDatabase(db: TestDb = testDb): Promise<PersistentDatabase> {
  if (db === 'pg') return createScratchDatabase('pg');
  const dir = mkdtempSync(join(tmpdir(), 'usine-db-'));
  return { url: `sqlite:${join(dir, 'usine.db')}`, dir, drop: async () => rmSync(dir, { recursive: true, force: true }) };
}
