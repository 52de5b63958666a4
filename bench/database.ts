/**
 * Scratch databases for the benchmarks, migrated with the app's own migrations, and seeded with plain SQL:
 * `projects` projects with three finished builds each, plus one big project whose `bigBuilds` builds
 * (numbers 1..n, gap-free, success/fail alternating, all finished) go in with one statement
 * (a recursive CTE on SQLite, `generate_series` on PostgreSQL).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import postgres from 'postgres';
import { parseDatabaseUrl } from '../src/config.js';
import { createDatabase } from '../src/db/client.js';
import { runMigrations } from '../src/db/migrate.js';
import { testDatabaseUrl } from '../test/pg-available.js';
import type { Dialect } from './options.js';

export interface ScratchDatabase {
  dialect: Dialect;
  /** DATABASE_URL for the servers. */
  url: string;
  drop(): Promise<void>;
}

export interface Seeded {
  /** The project holding the big build history. */
  bigProjectId: number;
  bigBuilds: number;
  projects: number;
  seedSeconds: number;
}

export async function scratchDatabase(dialect: Dialect): Promise<ScratchDatabase> {
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'usine-bench-'));
    return { dialect, url: `sqlite:${join(dir, 'usine.db')}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const server = testDatabaseUrl();
  const name = `usine_bench_${randomBytes(6).toString('hex')}`;
  const admin = postgres(server, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = new URL(server);
  url.pathname = `/${name}`;
  return {
    dialect,
    url: url.toString(),
    drop: async () => {
      const dropper = postgres(server, { max: 1, onnotice: () => {} });
      await dropper.unsafe(`drop database if exists ${name} with (force)`);
      await dropper.end();
    },
  };
}

/** Applies the app's migrations (so the seed can run before any server starts). */
export async function migrate(url: string): Promise<void> {
  const config = parseDatabaseUrl(url);
  const database = createDatabase(config);
  try {
    await runMigrations(database, config);
  } finally {
    await database.close();
  }
}

export async function seed(database: ScratchDatabase, projects: number, bigBuilds: number): Promise<Seeded> {
  const started = Date.now();
  const bigProjectId = database.dialect === 'sqlite' ? seedSqlite(database.url, projects, bigBuilds) : await seedPg(database.url, projects, bigBuilds);
  return { bigProjectId, bigBuilds, projects, seedSeconds: (Date.now() - started) / 1000 };
}

function seedSqlite(url: string, projects: number, bigBuilds: number): number {
  const config = parseDatabaseUrl(url);
  if (config.dialect !== 'sqlite') throw new Error('not a SQLite URL');
  const db = new BetterSqlite3(config.path);
  try {
    db.pragma('journal_mode = WAL');
    const big = db.prepare(`insert into projects (name, repo) values ('bench-big', 'https://github.com/bench/big') returning id`).get() as { id: number };
    db.prepare(
      `with recursive n(i) as (select 1 union all select i + 1 from n where i < ?)
       insert into projects (name, repo) select 'bench-project-' || i, 'https://github.com/bench/project-' || i from n`,
    ).run(projects - 1);
    const now = Date.now();
    db.prepare(
      `with recursive n(i) as (select 1 union all select i + 1 from n where i < 3)
       insert into builds (project_id, number, status, branch, commit_sha, logs, duration_s, attempts, created_at, started_at, finished_at)
       select p.id, n.i, case when (p.id + n.i) % 2 = 0 then 'success' else 'fail' end, 'main', printf('%040x', p.id * 10 + n.i),
              'seeded build' || char(10), 5.0, 1, @now - 60000 + n.i, @now - 60000 + n.i, @now - 55000 + n.i
       from projects p cross join n where p.id <> @big`,
    ).run({ now, big: big.id });
    db.prepare(
      `with recursive n(i) as (select 1 union all select i + 1 from n where i < @count)
       insert into builds (project_id, number, status, branch, commit_sha, logs, duration_s, attempts, created_at, started_at, finished_at)
       select @big, i, case when i % 2 = 0 then 'success' else 'fail' end, 'main', printf('%040x', i),
              'seeded build ' || i || char(10), 5.0, 1, @t0 + i * 10, @t0 + i * 10, @t0 + i * 10 + 5
       from n`,
    ).run({ big: big.id, count: bigBuilds, t0: now - bigBuilds * 10 - 120_000 });
    db.exec('analyze');
    return big.id;
  } finally {
    db.close();
  }
}

async function seedPg(url: string, projects: number, bigBuilds: number): Promise<number> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [big] = await sql<{ id: number }[]>`insert into projects (name, repo) values ('bench-big', 'https://github.com/bench/big') returning id`;
    if (!big) throw new Error('no project inserted');
    await sql`insert into projects (name, repo)
      select 'bench-project-' || i, 'https://github.com/bench/project-' || i from generate_series(1, ${projects - 1}::int) i`;
    await sql`insert into builds (project_id, number, status, branch, commit_sha, logs, duration_s, attempts, created_at, started_at, finished_at)
      select p.id, n, case when (p.id + n) % 2 = 0 then 'success' else 'fail' end, 'main', md5((p.id * 10 + n)::text) || '00000000',
             E'seeded build\n', 5, 1, now() - interval '60 s', now() - interval '60 s', now() - interval '55 s'
      from projects p cross join generate_series(1, 3) n where p.id <> ${big.id}`;
    await sql`insert into builds (project_id, number, status, branch, commit_sha, logs, duration_s, attempts, created_at, started_at, finished_at)
      select ${big.id}::int, i, case when i % 2 = 0 then 'success' else 'fail' end, 'main', md5(i::text) || '00000000',
             'seeded build ' || i || E'\n', 5, 1, t, t, t + interval '5 ms'
      from generate_series(1, ${bigBuilds}::int) i,
           lateral (select now() - interval '2 min' - (${bigBuilds}::int - i) * interval '10 ms' as t) ts`;
    await sql`analyze`;
    return big.id;
  } finally {
    await sql.end();
  }
}

export async function databaseVersions(dialects: readonly Dialect[]): Promise<{ sqlite?: string; pg?: string }> {
  const versions: { sqlite?: string; pg?: string } = {};
  if (dialects.includes('sqlite')) {
    const db = new BetterSqlite3(':memory:');
    versions.sqlite = (db.prepare('select sqlite_version() as v').get() as { v: string }).v;
    db.close();
  }
  if (dialects.includes('pg')) {
    const sql = postgres(testDatabaseUrl(), { max: 1, onnotice: () => {} });
    try {
      versions.pg = (await sql<{ server_version: string }[]>`show server_version`)[0]?.server_version;
    } finally {
      await sql.end();
    }
  }
  return versions;
}

/** Raw SQL on the scratch database, whichever its dialect, on a connection of its own that is closed afterwards. */
async function onDatabase<T>(url: string, sqlite: (db: BetterSqlite3.Database) => T, pg: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const config = parseDatabaseUrl(url);
  if (config.dialect === 'sqlite') {
    const db = new BetterSqlite3(config.path);
    try {
      db.pragma('busy_timeout = 10000');
      return sqlite(db);
    } finally {
      db.close();
    }
  }
  const sql = postgres(config.url, { max: 1, onnotice: () => {} });
  try {
    return await pg(sql);
  } finally {
    await sql.end();
  }
}

/**
 * Cancels every queued build straight in the database: after POST /projects/:id/build has queued thousands, the
 * workers would otherwise run them during the next scenarios.
 */
export const cancelQueued = (url: string): Promise<number> =>
  onDatabase(
    url,
    (db) => db.prepare(`update builds set status = 'canceled', finished_at = ? where status = 'queued'`).run(Date.now()).changes,
    async (sql) => (await sql`update builds set status = 'canceled', finished_at = now() where status = 'queued'`).count,
  );

/** Marks held builds: canceled (no worker claims them), with this lease owner (which nothing else writes). */
const HOLD = 'bench-hold';

/**
 * Takes every queued build out of the queue, to be put back at once by `releaseHeld` (bench/builds.ts's drain: the
 * worker processes start, and finish starting, on an empty queue).
 */
export const holdQueued = (url: string): Promise<number> =>
  onDatabase(
    url,
    (db) => db.prepare(`update builds set status = 'canceled', lease_owner = ? where status = 'queued'`).run(HOLD).changes,
    async (sql) => (await sql`update builds set status = 'canceled', lease_owner = ${HOLD} where status = 'queued'`).count,
  );

/**
 * Puts the builds `holdQueued` took back in the queue (the `limit` oldest, or all), in one statement, and returns their
 * ids. On PostgreSQL a `queued` event (what the API publishes on a trigger) wakes every process's idle workers at
 * once; on SQLite the one process's workers, idle since they started together, find them at their next poll, together.
 */
export const releaseHeld = (url: string, limit = -1): Promise<number[]> =>
  onDatabase(
    url,
    (db) =>
      db
        .prepare<[string, number], { id: number }>(
          `update builds set status = 'queued', lease_owner = null
           where id in (select id from builds where status = 'canceled' and lease_owner = ? order by id limit ?) returning id`,
        )
        .all(HOLD, limit)
        .map((row) => row.id),
    async (sql) => {
      const held = sql`select id from builds where status = 'canceled' and lease_owner = ${HOLD} order by id`;
      const released = await sql<{ id: number }[]>`
        update builds set status = 'queued', lease_owner = null
        where id in (${limit < 0 ? held : sql`${held} limit ${limit}`}) returning id`;
      const first = released[0];
      if (first) await sql`select pg_notify('usine_build_events', ${JSON.stringify({ type: 'queued', build_id: first.id })})`;
      return released.map((row) => row.id);
    },
  );
