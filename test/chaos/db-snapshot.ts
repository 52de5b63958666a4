import { createHash } from 'node:crypto';
import { sql, type SQL } from 'drizzle-orm';
import type { Database } from '../../src/db/client.js';

/** The tables a rejected request must leave untouched (a build's jobs too: a refused trigger, retry or play plans none). */
export const SNAPSHOT_TABLES = ['users', 'projects', 'builds', 'jobs', 'refresh_tokens', 'artifacts'] as const;
export type SnapshotTable = (typeof SNAPSHOT_TABLES)[number];

/** Per table: its row count and a hash of all its rows (every column), in id order. */
export type DbSnapshot = Record<SnapshotTable, { count: number; hash: string }>;

interface SqliteRunner {
  all(query: SQL): unknown[];
}

function digest(rows: unknown[]): string {
  const hash = createHash('sha1');
  for (const row of rows) {
    hash.update(
      JSON.stringify(row, (_key, value: unknown) =>
        // better-sqlite3 hands blobs back as Buffers: their hash stands for them.
        value && typeof value === 'object' && (value as { type?: unknown }).type === 'Buffer'
          ? createHash('sha1').update(Buffer.from((value as { data: number[] }).data)).digest('hex')
          : value,
      ),
    );
    hash.update('\n');
  }
  return hash.digest('hex');
}

/**
 * One cheap snapshot of the whole database: a single round trip on PostgreSQL (md5 of each table's rows as text),
 * plain selects on SQLite (in process).
 */
export async function snapshotDb(database: Database): Promise<DbSnapshot> {
  const result = {} as DbSnapshot;
  if (database.dialect === 'pg') {
    const columns = SNAPSHOT_TABLES.map(
      (table) =>
        `(select count(*)::int from ${table}) as "${table}_count", ` +
        `(select md5(coalesce(string_agg(t::text, E'\\n' order by t.id), '')) from ${table} t) as "${table}_hash"`,
    ).join(', ');
    const rows = (await database.db.execute(sql.raw(`select ${columns}`))) as unknown as Record<string, unknown>[];
    const row = rows[0] ?? {};
    for (const table of SNAPSHOT_TABLES) {
      result[table] = { count: Number(row[`${table}_count`]), hash: String(row[`${table}_hash`]) };
    }
    return result;
  }
  const runner = database.db as unknown as SqliteRunner;
  for (const table of SNAPSHOT_TABLES) {
    const rows = runner.all(sql.raw(`select * from ${table} order by id`));
    result[table] = { count: rows.length, hash: digest(rows) };
  }
  return result;
}

/** The tables whose rows differ between two snapshots (empty when the database did not change). */
export function changedTables(before: DbSnapshot, after: DbSnapshot): SnapshotTable[] {
  return SNAPSHOT_TABLES.filter((table) => before[table].count !== after[table].count || before[table].hash !== after[table].hash);
}
