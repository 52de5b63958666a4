/**
 * A database as an older release left it, for the tests of a migration that must upgrade existing rows: migrated
 * with the migrations folder that release shipped, then written to with raw SQL (the app of the day may no longer
 * exist to write them, and the current repositories would expect the current schema).
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { drizzle as drizzleSqlite } from 'drizzle-orm/better-sqlite3';
import { migrate as migrateSqlite } from 'drizzle-orm/better-sqlite3/migrator';
import { drizzle as drizzlePg } from 'drizzle-orm/postgres-js';
import { migrate as migratePg } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { migrationsFolder } from '../../src/db/migrate.js';
import { createScratchDatabase, testDb, type ScratchDatabase } from '../helper.js';

export interface OldReleaseDatabase extends ScratchDatabase {
  /**
   * The names in its schema (tables, indexes, triggers on SQLite; relations on PostgreSQL) once the writes are done,
   * so a test can check the migration under test had not run yet.
   */
  objects: string[];
}

/**
 * Copies the current dialect's migrations folder into `into`, its journal cut just before the migration tagged `tag`:
 * the folder the release before that migration shipped. The cut is found by tag, not by index, since migrations
 * merged from other branches may be renumbered around it.
 */
function migrationsBefore(tag: string, into: string): string {
  const source = migrationsFolder(testDb);
  const journal = JSON.parse(readFileSync(join(source, 'meta', '_journal.json'), 'utf8')) as { entries: { tag: string }[] };
  const cut = journal.entries.findIndex((entry) => entry.tag === tag);
  if (cut < 1) throw new Error(`no migration tagged ${tag} after the first in ${source}`);
  const entries = journal.entries.slice(0, cut);
  const folder = join(into, 'migrations');
  mkdirSync(join(folder, 'meta'), { recursive: true });
  writeFileSync(join(folder, 'meta', '_journal.json'), JSON.stringify({ ...journal, entries }));
  for (const entry of entries) copyFileSync(join(source, `${entry.tag}.sql`), join(folder, `${entry.tag}.sql`));
  return folder;
}

/**
 * A fresh database of the dialect under test (a temporary SQLite file, or a scratch PostgreSQL database) migrated up
 * to, not including, the migration tagged `tag`, then given `writes` in order; it is closed when this resolves, so
 * the app can open `url` and apply the rest. `drop()` removes it and its temporary folder: call it after the app closes.
 */
export async function databaseAsReleasedBefore(tag: string, writes: string[]): Promise<OldReleaseDatabase> {
  const dir = mkdtempSync(join(tmpdir(), `usine-before-${tag}-`));
  let scratch: ScratchDatabase | undefined;
  const drop = async () => {
    await scratch?.drop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const folder = migrationsBefore(tag, dir);
    if (testDb === 'sqlite') {
      const file = join(dir, 'usine.db');
      const db = new BetterSqlite3(file);
      try {
        migrateSqlite(drizzleSqlite(db), { migrationsFolder: folder });
        for (const statement of writes) db.exec(statement);
        const objects = db.prepare('select name from sqlite_master').pluck().all() as string[];
        return { url: `sqlite:${file}`, drop, objects };
      } finally {
        db.close();
      }
    }
    scratch = await createScratchDatabase('pg');
    const client = postgres(scratch.url, { max: 1, onnotice: () => {} });
    try {
      await migratePg(drizzlePg(client), { migrationsFolder: folder });
      for (const statement of writes) await client.unsafe(statement);
      // What an unqualified name resolves to, as to_regclass() sees it, without the system catalogs.
      const rows = await client<{ relname: string }[]>`
        select relname from pg_class where pg_table_is_visible(oid) and relnamespace <> 'pg_catalog'::regnamespace`;
      return { url: scratch.url, drop, objects: rows.map((row) => row.relname) };
    } finally {
      await client.end({ timeout: 5 });
    }
  } catch (error) {
    await drop();
    throw error;
  }
}
