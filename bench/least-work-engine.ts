/**
 * The least work a job engine can do for bench/builds.ts's drain, measured in the same run: the baseline the job
 * engine's time per job is divided by. Nothing of Usine's design is copied: bare tables (no trigger, no count, no
 * foreign key, one partial index for the queue), each build a fixed chain of four jobs, and per job the two writes
 * that cannot be done without, each one statement:
 *
 * 1. claim: the oldest queued job, `FOR UPDATE SKIP LOCKED` (SQLite: one `UPDATE … RETURNING`);
 * 2. finish: the job's status and its log lines, the same lines appended to its build's log, the next job queued (or,
 *    on a failure, the rest skipped and the build failed; after the last job, the build succeeded), and the last
 *    job's artifact stored (PostgreSQL: one statement of data-modifying CTEs; SQLite: one transaction).
 *
 * Same database server, same number of workers in one process, same fail rate and about the same bytes written
 * (a job's log of a few lines, a ~1.5 kB artifact) as the engine's drain. What the engine does beyond this — a
 * generic dependency graph, the build's start line and claim lines, leases renewed and checked, status counts kept
 * by triggers, events published, artifacts packed from the log — is what the ratio shows the cost of.
 */
import { randomBytes } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import BetterSqlite3 from 'better-sqlite3';
import postgres from 'postgres';
import type { Dialect } from './options.js';
import { scratchDatabase } from './database.js';

const JOBS_PER_BUILD = 4;
/** About what a job of the default pipeline logs at BUILD_TIME_SCALE=0 (a few lines, ~300 bytes). */
const LOG = Array.from({ length: 5 }, (_, index) => `[job] line ${index + 1}: ${'x'.repeat(48)}\n`).join('');
const ARTIFACT = randomBytes(1536);

export interface LeastWorkResult {
  jobs: number;
  seconds: number;
}

interface Claimed {
  id: number;
  build_id: number;
  position: number;
}

/**
 * What a finish writes besides the job itself: the next job queued, or the build's end. A build fails with
 * probability `failRate` in all, as the default pipeline's do: each of its jobs with the rate that makes it so.
 */
function outcomeOf(job: Claimed, failRate: number) {
  const failed = Math.random() < 1 - (1 - failRate) ** (1 / JOBS_PER_BUILD);
  const last = job.position === JOBS_PER_BUILD - 1;
  return { status: failed ? 'fail' : 'success', buildStatus: failed ? 'fail' : last ? 'success' : null, artifact: !failed && last };
}

export async function leastWorkDrain(dialect: Dialect, builds: number, workers: number, failRate: number): Promise<LeastWorkResult> {
  const scratch = await scratchDatabase(dialect);
  try {
    return dialect === 'pg' ? await drainPostgres(scratch.url, builds, workers, failRate) : await drainSqlite(scratch.url.replace(/^sqlite:/, ''), builds, workers, failRate);
  } finally {
    await scratch.drop();
  }
}

async function drainPostgres(url: string, builds: number, workers: number, failRate: number): Promise<LeastWorkResult> {
  const sql = postgres(url, { max: workers, onnotice: () => {} });
  try {
    await sql.unsafe(`
      create table builds (id integer primary key, status text not null, logs text not null default '', finished_at timestamptz);
      create table jobs (id integer generated always as identity primary key, build_id integer not null, position integer not null,
        status text not null, logs text not null default '', lease_owner text, started_at timestamptz, finished_at timestamptz);
      create index jobs_queued on jobs (id) where status = 'queued';
      create index jobs_build on jobs (build_id, position);
      create table artifacts (id integer generated always as identity primary key, build_id integer not null, data bytea not null);`);
    await sql`insert into builds (id, status) select i, 'running' from generate_series(1, ${builds}::int) i`;
    await sql`insert into jobs (build_id, position, status)
      select b, p, case when p = 0 then 'queued' else 'created' end from generate_series(1, ${builds}::int) b, generate_series(0, ${JOBS_PER_BUILD - 1}) p
      order by b, p`;
    await sql`vacuum analyze`;

    let ran = 0;
    const started = performance.now();
    const worker = async (name: string) => {
      for (;;) {
        const [job] = await sql<Claimed[]>`
          update jobs set status = 'running', lease_owner = ${name}, started_at = clock_timestamp()
          where id = (select id from jobs where status = 'queued' order by id limit 1 for update skip locked)
          returning id, build_id, position`;
        if (!job) return;
        const { status, buildStatus, artifact } = outcomeOf(job, failRate);
        await sql`
          with done as (
            update jobs set status = ${status}, logs = logs || ${LOG}, finished_at = clock_timestamp(), lease_owner = null where id = ${job.id}
          ), next as (
            update jobs set status = case when ${status} = 'success' then 'queued' else 'skipped' end
            where build_id = ${job.build_id} and position > ${job.position} and (${status} = 'fail' or position = ${job.position + 1})
          ), build as (
            update builds set logs = logs || ${LOG}, status = coalesce(${buildStatus}::text, status),
              finished_at = case when ${buildStatus}::text is null then null else clock_timestamp() end
            where id = ${job.build_id}
          )
          insert into artifacts (build_id, data) select ${job.build_id}, ${ARTIFACT} where ${artifact}`;
        ran++;
      }
    };
    await Promise.all(Array.from({ length: workers }, (_, index) => worker(`least-work/w${index + 1}`)));
    return { jobs: ran, seconds: (performance.now() - started) / 1000 };
  } finally {
    await sql.end();
  }
}

async function drainSqlite(path: string, builds: number, workers: number, failRate: number): Promise<LeastWorkResult> {
  const db = new BetterSqlite3(path);
  try {
    // The pragmas Usine's own connection sets (src/db/client.ts): settings of the database, not of the design.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(`
      create table builds (id integer primary key, status text not null, logs text not null default '', finished_at integer);
      create table jobs (id integer primary key autoincrement, build_id integer not null, position integer not null,
        status text not null, logs text not null default '', lease_owner text, started_at integer, finished_at integer);
      create index jobs_queued on jobs (id) where status = 'queued';
      create index jobs_build on jobs (build_id, position);
      create table artifacts (id integer primary key autoincrement, build_id integer not null, data blob not null);`);
    db.prepare(`with recursive n(i) as (select 1 union all select i + 1 from n where i < ?) insert into builds (id, status) select i, 'running' from n`).run(builds);
    db.prepare(
      `with recursive n(i) as (select 1 union all select i + 1 from n where i < ?), p(j) as (select 0 union all select j + 1 from p where j < ?)
       insert into jobs (build_id, position, status) select i, j, case when j = 0 then 'queued' else 'created' end from n, p order by i, j`,
    ).run(builds, JOBS_PER_BUILD - 1);

    const claim = db.prepare<[string, number], Claimed>(
      `update jobs set status = 'running', lease_owner = ?, started_at = ?
       where id = (select id from jobs where status = 'queued' order by id limit 1) returning id, build_id, position`,
    );
    const finishJob = db.prepare(`update jobs set status = ?, logs = logs || ?, finished_at = ?, lease_owner = null where id = ?`);
    const next = db.prepare(
      `update jobs set status = case when @status = 'success' then 'queued' else 'skipped' end
       where build_id = @build and position > @position and (@status = 'fail' or position = @position + 1)`,
    );
    const buildLog = db.prepare(
      `update builds set logs = logs || @log, status = coalesce(@status, status), finished_at = case when @status is null then null else @now end where id = @build`,
    );
    const storeArtifact = db.prepare(`insert into artifacts (build_id, data) values (?, ?)`);
    const finish = db.transaction((job: Claimed, status: string, buildStatus: string | null, artifact: boolean) => {
      const now = Date.now();
      finishJob.run(status, LOG, now, job.id);
      next.run({ status, build: job.build_id, position: job.position });
      buildLog.run({ log: LOG, status: buildStatus, now, build: job.build_id });
      if (artifact) storeArtifact.run(job.build_id, ARTIFACT);
    });

    let ran = 0;
    const started = performance.now();
    const worker = async (name: string) => {
      for (;;) {
        const job = claim.get(name, Date.now());
        if (!job) return;
        const { status, buildStatus, artifact } = outcomeOf(job, failRate);
        finish(job, status, buildStatus, artifact);
        ran++;
        // One turn of the event loop per job, as the engine's workers take (nothing else to serve here).
        await nextTurn();
      }
    };
    await Promise.all(Array.from({ length: workers }, (_, index) => worker(`least-work/w${index + 1}`)));
    return { jobs: ran, seconds: (performance.now() - started) / 1000 };
  } finally {
    db.close();
  }
}
