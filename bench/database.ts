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
  // BENCH_PG_SETTINGS="name=value;…": settings of the scratch database, for its new connections (profiling: e.g.
  // session_preload_libraries=auto_explain;auto_explain.log_min_duration=2 logs the slow statements' plans).
  for (const setting of (process.env.BENCH_PG_SETTINGS ?? '').split(';').filter(Boolean)) {
    const [key = '', value = ''] = setting.split('=');
    await admin.unsafe(`alter database ${name} set ${key.trim()} = '${value.trim().replaceAll("'", "''")}'`);
  }
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
export async function onDatabase<T>(url: string, sqlite: (db: BetterSqlite3.Database) => T, pg: (sql: postgres.Sql) => Promise<T>): Promise<T> {
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
 * Cancels every queued build straight in the database, and its jobs that have not run (queued ones canceled, waiting
 * ones skipped), in one transaction: after POST /projects/:id/build has queued thousands, the workers would otherwise
 * run them during the next scenarios. (A job left queued under a canceled build would still be claimed, found to have
 * no build to run for, and only freed when its lease expires: thousands of them held the workers for minutes.)
 */
export const cancelQueued = (url: string): Promise<number> =>
  onDatabase(
    url,
    (db) =>
      db.transaction(() => {
        db.prepare(
          `update jobs set status = case when status = 'queued' then 'canceled' else 'skipped' end, finished_at = ?
           where status in ('created', 'queued', 'manual') and build_id in (select id from builds where status = 'queued')`,
        ).run(Date.now());
        return db.prepare(`update builds set status = 'canceled', finished_at = ? where status = 'queued'`).run(Date.now()).changes;
      })(),
    async (sql) =>
      sql.begin(async (tx) => {
        await tx`update jobs set status = case when status = 'queued' then 'canceled' else 'skipped' end, finished_at = now()
          where status in ('created', 'queued', 'manual') and build_id in (select id from builds where status = 'queued')`;
        return (await tx`update builds set status = 'canceled', finished_at = now() where status = 'queued'`).count;
      }),
  );

/** Marks held jobs: canceled (no worker claims them), with this lease owner (the app never leaves one on a canceled job). */
const HOLD = 'bench-hold';

/**
 * Takes every queued job out of the queue (what workers claim: with the default pipeline, each build's first job; its
 * later jobs wait in `created` for it), to be put back at once by `releaseHeld` (bench/builds.ts's drain: the worker
 * processes start, and finish starting, on an empty queue). The builds stay `queued`: nothing settles a build none of
 * whose jobs runs. The hold and the release change `status` like any writer, so whatever counts jobs by status (the
 * partial indexes /status and /metrics count; triggers that keep counts, as builds' do) stays right, and held jobs
 * count as canceled meanwhile, not queued: the drain's wait for an idle queue does not wait for them.
 */
export const holdQueued = (url: string): Promise<number> =>
  onDatabase(
    url,
    (db) => db.prepare(`update jobs set status = 'canceled', lease_owner = ? where status = 'queued'`).run(HOLD).changes,
    async (sql) => (await sql`update jobs set status = 'canceled', lease_owner = ${HOLD} where status = 'queued'`).count,
  );

/**
 * Puts the jobs `holdQueued` took back in the queue (the `limit` oldest, or all), in one statement, and returns the
 * ids of their builds. On PostgreSQL a `queued` event (what the API publishes on a trigger) wakes every process's idle
 * workers at once; on SQLite the one process's workers, idle since they started together, find them at their next
 * poll, together.
 */
export const releaseHeld = (url: string, limit = -1): Promise<number[]> =>
  onDatabase(
    url,
    (db) =>
      db
        .prepare<[string, number], { build_id: number }>(
          `update jobs set status = 'queued', lease_owner = null
           where id in (select id from jobs where status = 'canceled' and lease_owner = ? order by id limit ?) returning build_id`,
        )
        .all(HOLD, limit)
        .map((row) => row.build_id),
    async (sql) => {
      const held = sql`select id from jobs where status = 'canceled' and lease_owner = ${HOLD} order by id`;
      const released = await sql<{ build_id: number }[]>`
        update jobs set status = 'queued', lease_owner = null
        where id in (${limit < 0 ? held : sql`${held} limit ${limit}`}) returning build_id`;
      const first = released[0];
      if (first) await sql`select pg_notify('usine_build_events', ${JSON.stringify({ type: 'queued', build_id: first.build_id })})`;
      return released.map((row) => row.build_id);
    },
  );

/** A build as the benchmark reads it: times in milliseconds since the epoch (fractional on PostgreSQL), or null. */
export interface BuildTimes {
  id: number;
  status: string;
  started_at: number | null;
  finished_at: number | null;
}

/** A job (current attempt) as the benchmark reads it. */
export interface JobTimes {
  id: number;
  build_id: number;
  name: string;
  needs: string[];
  status: string;
  claims: number;
  started_at: number | null;
  finished_at: number | null;
}

/**
 * Every build and every current job, straight from the database (one query each, where the API would take a request
 * per build for the jobs). PostgreSQL's times to the microsecond, SQLite's to the millisecond (as stored).
 */
export const readRuns = (url: string): Promise<{ builds: BuildTimes[]; jobs: JobTimes[] }> =>
  onDatabase(
    url,
    (db) => {
      const builds = db.prepare<[], BuildTimes>(`select id, status, started_at, finished_at from builds order by id`).all();
      const jobs = db
        .prepare<[], Omit<JobTimes, 'needs'> & { needs: string }>(
          `select id, build_id, name, needs, status, claims, started_at, finished_at from jobs where not retried order by id`,
        )
        .all()
        .map((row) => ({ ...row, needs: JSON.parse(row.needs) as string[] }));
      return { builds, jobs };
    },
    async (sql) => {
      const builds = await sql<BuildTimes[]>`
        select id, status, (extract(epoch from started_at) * 1000)::float8 as started_at,
               (extract(epoch from finished_at) * 1000)::float8 as finished_at
        from builds order by id`;
      const jobs = await sql<(Omit<JobTimes, 'needs'> & { needs: string })[]>`
        select id, build_id, name, needs::text as needs, status, claims, (extract(epoch from started_at) * 1000)::float8 as started_at,
               (extract(epoch from finished_at) * 1000)::float8 as finished_at
        from jobs where not retried order by id`;
      return { builds: [...builds], jobs: jobs.map((row) => ({ ...row, needs: JSON.parse(row.needs) as string[] })) };
    },
  );
