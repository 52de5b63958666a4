/**
 * The job engine alone, in this process: no HTTP server, no other process. N builds of the default pipeline are
 * planned straight into a scratch database (their first jobs queued), then a JobEngine with BUILD_CONCURRENCY
 * workers runs them at BUILD_TIME_SCALE=0, and the script reports jobs/s, this process's CPU per job, PostgreSQL's,
 * and each repository call's count and mean wall time. A tool to compare engine changes back to back (A/B) with less
 * noise than bench/builds.ts, whose figures are the ones reported.
 *
 *   node --import tsx bench/job-drain.ts [pg|sqlite] [builds=3000] [--cpu-prof=<file>]
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { pino } from 'pino';
import postgres from 'postgres';
import BetterSqlite3 from 'better-sqlite3';
import { createLocalEventBus } from '../src/builds/events.js';
import { JobEngine } from '../src/builds/job-engine.js';
import { parseDatabaseUrl } from '../src/config.js';
import { createDatabase } from '../src/db/client.js';
import { defaultPipeline } from '../src/pipelines/default.js';
import { resolvePipeline } from '../src/pipelines/resolve.js';
import { createBuildsRepository } from '../src/repositories/builds.js';
import { createJobsRepository } from '../src/repositories/jobs.js';
import { migrate, scratchDatabase } from './database.js';
import { groupCpuMs } from './process-group-cpu.js';

const dialect = process.argv[2] === 'sqlite' ? 'sqlite' : 'pg';
const BUILDS = Number(process.argv[3] ?? 3000);
const WARMUP = 300;
const cpuProf = process.argv.find((arg) => arg.startsWith('--cpu-prof='))?.split('=')[1];
const FAIL_RATE = 0.5;

const scratch = await scratchDatabase(dialect);
try {
  await migrate(scratch.url);
  const config = parseDatabaseUrl(scratch.url);
  // Builds inserted in one statement, as bench/database.ts seeds: the API's trigger is not what is measured here.
  if (config.dialect === 'sqlite') {
    const db = new BetterSqlite3(config.path);
    db.prepare(`insert into projects (name, repo) values ('drain', 'https://github.com/demo/drain')`).run();
    db.prepare(
      `with recursive n(i) as (select 1 union all select i + 1 from n where i < ?)
       insert into builds (project_id, number, status, branch, commit_sha) select 1, i, 'queued', 'main', printf('%040x', i) from n`,
    ).run(BUILDS + WARMUP);
    db.close();
  } else {
    const sql = postgres(scratch.url, { max: 1, onnotice: () => {} });
    await sql`insert into projects (name, repo) values ('drain', 'https://github.com/demo/drain')`;
    await sql`insert into builds (project_id, number, status, branch, commit_sha)
      select 1, i, 'queued', 'main', md5(i::text) || '00000000' from generate_series(1, ${BUILDS + WARMUP}::int) i`;
    await sql.end();
  }
  const database = createDatabase(config, { poolMax: 4 });
  const jobs = createJobsRepository(database);
  const builds = createBuildsRepository(database);
  const plans = resolvePipeline(defaultPipeline(FAIL_RATE), { defaultFailRate: FAIL_RATE });

  // Each repository call's count and wall time (what a worker waits for).
  const calls = new Map<string, { count: number; ms: number }>();
  for (const name of ['claimNext', 'finish', 'appendLog', 'buildLog', 'renewLease'] as const) {
    const original = (jobs[name] as (...args: unknown[]) => Promise<unknown>).bind(jobs);
    (jobs as Record<string, unknown>)[name] = async (...args: unknown[]) => {
      const started = performance.now();
      try {
        return await original(...args);
      } finally {
        const entry = calls.get(name) ?? { count: 0, ms: 0 };
        entry.count++;
        entry.ms += performance.now() - started;
        calls.set(name, entry);
      }
    };
  }

  const drain = async (from: number, to: number) => {
    // Planned in batches of 200 builds per transaction; only then do the workers start on them.
    for (let id = from; id <= to; id++) await jobs.plan(id, plans);
    const engine = new JobEngine({
      concurrency: 4,
      timeScale: 0,
      leaseMs: 30_000,
      maxAttempts: 3,
      drainMs: 1000,
      jobs,
      events: createLocalEventBus(),
      log: pino({ level: 'warn' }),
    });
    const cpuBefore = process.cpuUsage();
    const groupsBefore = groupCpuMs([]);
    const started = performance.now();
    engine.start();
    for (;;) {
      const { queued, running } = (await builds.countActive()).jobs;
      if (queued + running === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const wallMs = performance.now() - started;
    await engine.stop();
    const cpu = process.cpuUsage(cpuBefore);
    const groupsAfter = groupCpuMs([]);
    return { wallMs, usineMs: (cpu.user + cpu.system) / 1000, postgresMs: groupsAfter && groupsBefore ? groupsAfter.postgresMs - groupsBefore.postgresMs : undefined };
  };

  await drain(1, WARMUP);
  calls.clear();
  const session = cpuProf ? new Session() : undefined;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const result = await drain(WARMUP + 1, WARMUP + BUILDS);
  if (session && cpuProf) writeFileSync(cpuProf, JSON.stringify((await session.post('Profiler.stop')).profile));
  const ran = calls.get('finish')?.count ?? 0;
  console.log(
    `${dialect}: ${BUILDS} builds, ${ran} jobs in ${(result.wallMs / 1000).toFixed(2)} s: ${((ran * 1000) / result.wallMs).toFixed(0)} jobs/s, ` +
      `${((BUILDS * 1000) / result.wallMs).toFixed(0)} builds/s; CPU per job: this process ${(result.usineMs / ran).toFixed(3)} ms` +
      (dialect === 'pg' && result.postgresMs !== undefined ? `, PostgreSQL ${(result.postgresMs / ran).toFixed(3)} ms` : ''),
  );
  for (const [name, { count, ms }] of calls) console.log(`  ${name}: ${count} calls, ${(ms / count).toFixed(3)} ms each`);
  await database.close();
} finally {
  await scratch.drop();
}
