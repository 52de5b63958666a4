/**
 * Build throughput with the job engine: builds and jobs completed per second with BUILD_TIME_SCALE=0 (no simulated
 * waiting, so what is measured is the engine's own cost: claims, finishes that release the next jobs, artifacts,
 * events), each build running the default pipeline (checkout → install → test → package, four jobs), in three set-ups:
 *   (a) 1 server process on PostgreSQL, (b) 3 processes on one PostgreSQL database, (c) 1 process on SQLite (a file).
 * Each: start the processes (`node --import tsx src/main.ts`, BUILD_CONCURRENCY 4 each), trigger N builds through all
 * of them, and time from the first trigger to the last build's `finished_at` ("live"); then queue N more with no worker
 * running and time how long the workers, warmed up, take to run them ("drain", see runScenario). Also the
 * claim-to-start latency of the jobs a finish unblocked during the drain. Prints a table and writes the
 * "## Build throughput" section of BENCHMARKS.md (other sections are kept) and its rows of the "## Targets" table.
 *
 *   node --import tsx bench/builds.ts
 *
 * Environment: BENCH_BUILDS (default 6000), BENCH_WARMUP_BUILDS (300 per worker process), BENCH_PROJECTS (10),
 * BENCH_TRIGGER_CONCURRENCY (16 per process), BENCH_FAIL_RATE (BUILD_FAIL_RATE, default 0.5 as the figures before the
 * job engine were measured), TEST_DATABASE_URL (the PostgreSQL server to create scratch databases on; default
 * postgres://postgres@127.0.0.1:5432/test), BENCH_SKIP_PG=1 to run the SQLite case only, BENCH_SETUPS=a,b (say) to run
 * only those set-ups, BENCH_SKIP_LIVE=1 to measure the drain only, BENCH_NO_WRITE=1 to leave BENCHMARKS.md alone,
 * BENCH_CPU_PROF=<dir> for CPU profiles of the drain's worker processes (drainProfileEnv).
 */
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { testDatabaseUrl } from '../test/pg-available.js';
import { apiClient, describeServers, loginAdmin, mapLimit, startServers, stopServer, type ApiClient, type ServerProcess } from '../test/processes.js';
import { holdQueued, readRuns, releaseHeld, scratchDatabase, type BuildTimes, type JobTimes } from './database.js';
import { machineBusyMs } from './machine-cpu.js';
import { getSection, readBenchmarks, upsertSection, writeBenchmarks, BENCHMARKS_FILE } from './markdown.js';
import { groupCpuMs } from './process-group-cpu.js';
import { leastWorkDrain } from './least-work-engine.js';
import { buildTargets, verdictTable, OLD_BUILD_DRAIN, PER_JOB_SLACK, BUILDS_PER_S_TARGET } from './report.js';

const BUILDS = Number(process.env.BENCH_BUILDS ?? 6000);
const PROJECTS = Number(process.env.BENCH_PROJECTS ?? 10);
const TRIGGER_CONCURRENCY = Number(process.env.BENCH_TRIGGER_CONCURRENCY ?? 16);
const FAIL_RATE = process.env.BENCH_FAIL_RATE ?? '0.5';
const SKIP_LIVE = process.env.BENCH_SKIP_LIVE === '1';
const CONCURRENCY = 4;
/** Builds each worker process runs before the drain is measured: a long-running process has its hot code compiled. */
const WARMUP_PER_PROCESS = Number(process.env.BENCH_WARMUP_BUILDS ?? 300);
const DRAIN_TIMEOUT_MS = 10 * 60_000;

interface Scenario {
  label: string;
  dialect: 'pg' | 'sqlite';
  processes: number;
}

interface Result extends Scenario {
  /** Live: builds triggered, their outcomes, the jobs that ran (skipped ones did not), and the times. */
  builds: number;
  success: number;
  fail: number;
  liveJobs: number;
  triggerS: number;
  totalS: number;
  /** Drain: the jobs that ran (of `builds` builds), and the seconds from the first job's start to the last one's end. */
  drainJobs: number;
  drainS: number;
  /** Claim-to-start latency (ms) of the drain's jobs that a finish unblocked: p50, p99, and how many. */
  unblockedP50Ms: number;
  unblockedP99Ms: number;
  unblocked: number;
  /** Busy CPU of the whole machine per drained job (ms), and its share of all cores over the drain. */
  drainCpuMsPerJob?: number;
  drainBusyShare?: number;
  /** Of that CPU per drained job (ms): the Usine processes', and PostgreSQL's. */
  drainUsineCpuMsPerJob?: number;
  drainPostgresCpuMsPerJob?: number;
  /** The least work's drain on the same database server, in this run (bench/least-work-engine.ts): jobs/s. */
  leastWorkJobsPerS?: number;
}

async function postgresVersion(): Promise<string> {
  const client = postgres(testDatabaseUrl(), { max: 1, onnotice: () => {} });
  try {
    const [row] = await client<{ server_version: string }[]>`show server_version`;
    return row?.server_version ?? 'unknown';
  } finally {
    await client.end();
  }
}

/** Queued and running jobs, as /status counts them. */
async function activeJobs(server: ServerProcess): Promise<{ queued: number; running: number }> {
  const answer = await apiClient(server.url).get<{ jobs?: { queued: number; running: number } | null }>('/status');
  const jobs = typeof answer.body === 'object' ? answer.body?.jobs : undefined;
  if (!jobs || typeof jobs.queued !== 'number' || typeof jobs.running !== 'number') throw new Error(`/status without job counts (HTTP ${answer.status})`);
  return jobs;
}

/**
 * Waits until no job is queued or running (/status), then until every build of `expected` is over (read from the
 * database: /status reads its two counts in two statements, and a job claimed between them is seen in neither).
 * Finishing a job releases its dependents in the same transaction, so a build with work left always has a job queued
 * or running. Held jobs (bench/database.ts) count as canceled: a drain's held builds are not waited for.
 */
async function waitIdle(server: ServerProcess, url: string, expected: ReadonlySet<number>, since: number): Promise<{ builds: BuildTimes[]; jobs: JobTimes[] }> {
  for (;;) {
    const { queued, running } = await activeJobs(server);
    if (queued + running === 0) {
      const runs = await readRuns(url);
      const open = runs.builds.filter((build) => expected.has(build.id) && (build.finished_at === null || build.status === 'queued' || build.status === 'running'));
      if (open.length === 0) return runs;
    }
    if (Date.now() - since > DRAIN_TIMEOUT_MS) throw new Error(`${queued} jobs queued and ${running} running after ${DRAIN_TIMEOUT_MS} ms`);
    await sleep(200);
  }
}

/** N triggers through every client at once, TRIGGER_CONCURRENCY in flight per client, spread over the projects. */
async function triggerBuilds(clients: ApiClient[], projectIds: number[], count = BUILDS): Promise<number[]> {
  return mapLimit(
    Array.from({ length: count }, (_, index) => index),
    TRIGGER_CONCURRENCY * clients.length,
    async (index) => (await clients[index % clients.length]!.expect<{ id: number }>(201, 'POST', `/projects/${projectIds[index % PROJECTS]!}/builds`)).id,
  );
}

/** The value at quantile q (nearest rank) of `values`, sorted here. */
function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

/**
 * How long each job that a finish unblocked waited for a worker: from the moment it became claimable to its
 * `started_at`. The jobs table does not record when a job became queued; a job with needs is queued by the
 * transaction that finishes the last of them, so that moment is the latest `finished_at` among its needs (written by
 * that transaction's first update, the database's clock; the job is claimable from that transaction's commit, a few
 * statements later, so the figure slightly overstates the wait). Jobs without needs (each build's checkout) are left
 * out: the drain releases them all at once, and their wait is the backlog's, not an unblocked job's.
 */
function unblockedLatencies(jobs: readonly JobTimes[]): number[] {
  const byBuild = new Map<number, Map<string, JobTimes>>();
  for (const job of jobs) {
    let names = byBuild.get(job.build_id);
    if (!names) byBuild.set(job.build_id, (names = new Map()));
    names.set(job.name, job);
  }
  const latencies: number[] = [];
  for (const job of jobs) {
    if (job.needs.length === 0 || job.started_at === null) continue;
    const names = byBuild.get(job.build_id);
    const released = Math.max(...job.needs.map((need) => names?.get(need)?.finished_at ?? Number.NaN));
    if (Number.isFinite(released)) latencies.push(job.started_at - released);
  }
  return latencies;
}

/** Jobs that ran to their end (skipped ones never ran). */
const ran = (job: JobTimes) => job.started_at !== null && job.finished_at !== null && (job.status === 'success' || job.status === 'fail');

/** BENCH_CPU_PROF=<dir>: each drain worker process writes a V8 CPU profile (warm-up and drain) to <dir>/<set-up>. */
function drainProfileEnv(scenario: Scenario): Record<string, string> {
  const dir = process.env.BENCH_CPU_PROF;
  if (!dir) return {};
  const setup = scenario.label.slice(1, scenario.label.indexOf(')'));
  // NODE_OPTIONS refuses --cpu-prof: a preloaded module profiles the process instead.
  return {
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ./bench/cpu-profile.mjs`.trim(),
    BENCH_CPU_PROF_DIR: join(dir, setup),
  };
}

/**
 * Two measurements on one database. Live: the processes run while N builds are triggered through them; from the first
 * trigger to the last `finished_at`. Drain: N more builds are queued by an API-only process (BUILD_CONCURRENCY=0) and
 * their first jobs held out of the queue (later jobs wait for those anyway), the worker processes start, and once all
 * of them are ready the jobs go back to the queue in one statement; from the first job's `started_at` to the last
 * one's `finished_at` (the database's clock), so the figure is the engine's alone, without the triggering's load or
 * another process's start-up.
 */
async function runScenario(scenario: Scenario): Promise<Result> {
  const database = await scratchDatabase(scenario.dialect);
  const env = {
    DATABASE_URL: database.url,
    BUILD_TIME_SCALE: '0',
    BUILD_CONCURRENCY: String(CONCURRENCY),
    BUILD_QUEUE_LIMIT: '100000',
    BUILD_FAIL_RATE: FAIL_RATE,
    BUILD_DRAIN_S: '1',
    // One PostgreSQL connection per worker in every set-up: three processes with ten each would put 30 backends on
    // the two cores this machine shares with them (see DATABASE_POOL_MAX in the README).
    DATABASE_POOL_MAX: String(CONCURRENCY),
  };
  const prefix = `bench-${scenario.dialect}`;
  let servers: ServerProcess[] = [];
  try {
    servers = await startServers(scenario.processes, env, prefix);
    const token = await loginAdmin(servers[0]!.url);
    const clients = servers.map((server) => apiClient(server.url, token));
    const projectIds: number[] = [];
    for (let index = 0; index < PROJECTS; index++) {
      const project = await clients[0]!.expect<{ id: number }>(201, 'POST', '/projects', {
        name: `bench-${index}-${randomBytes(3).toString('hex')}`,
        repo: `https://github.com/demo/bench-${index}`,
      });
      projectIds.push(project.id);
    }

    // Live.
    const startedAt = Date.now();
    const liveIds = new Set(SKIP_LIVE ? [] : await triggerBuilds(clients, projectIds));
    const triggeredAt = Date.now();
    const afterLive = await waitIdle(servers[0]!, database.url, liveIds, startedAt);
    // The end is the last build's finished_at (the database's clock, this machine's), not when a poll noticed.
    const live = afterLive.builds.filter((build) => liveIds.has(build.id));
    const lastFinished = Math.max(...live.map((build) => build.finished_at ?? Number.NaN));
    if (!SKIP_LIVE && (live.length !== BUILDS || !Number.isFinite(lastFinished))) {
      throw new Error(`expected ${BUILDS} finished builds, found ${live.length} (last finished_at ${lastFinished})`);
    }

    // Drain: fill the queue with no worker anywhere, hold it, start the workers, and once every process is ready
    // (none is still starting up and taking CPU from the others) let a warm-up batch through, then, once it has run,
    // put the rest of the queue back at once.
    await Promise.all(servers.map((server) => stopServer(server, 12_000)));
    servers = await startServers(1, { ...env, BUILD_CONCURRENCY: '0' }, `${prefix}-api-only`);
    const warmup = WARMUP_PER_PROCESS * scenario.processes;
    const queuedIds = await triggerBuilds([apiClient(servers[0]!.url, token)], projectIds, BUILDS + warmup);
    await stopServer(servers[0]!, 12_000);
    const held = await holdQueued(database.url);
    servers = await startServers(scenario.processes, { ...env, ...drainProfileEnv(scenario) }, prefix);
    const warmupIds = new Set(await releaseHeld(database.url, warmup));
    await waitIdle(servers[0]!, database.url, warmupIds, Date.now());
    const drainIds = new Set(queuedIds.filter((id) => !warmupIds.has(id)));
    const released = await releaseHeld(database.url);
    // From here: the jobs are claimable (committed); the release itself (an UPDATE of every held job) is the
    // benchmark's work, not the engine's, and stays out of the CPU figures.
    const drainStartedAt = Date.now();
    const busyBefore = machineBusyMs();
    const groupsBefore = groupCpuMs(servers.map((server) => server.pid));
    if (held !== BUILDS + warmup || warmupIds.size !== warmup || released.length !== BUILDS || !released.every((id) => drainIds.has(id))) {
      throw new Error(`drain: ${held} jobs held, ${warmupIds.size} + ${released.length} released, expected ${warmup} + ${BUILDS} (one per build)`);
    }
    const afterDrain = await waitIdle(servers[0]!, database.url, drainIds, drainStartedAt);
    const busyAfter = machineBusyMs();
    const groupsAfter = groupCpuMs(servers.map((server) => server.pid));
    const drainWallMs = Date.now() - drainStartedAt;
    const drained = afterDrain.builds.filter((build) => drainIds.has(build.id));
    const drainJobs = afterDrain.jobs.filter((job) => drainIds.has(job.build_id));
    const drainRan = drainJobs.filter(ran);
    const firstStarted = Math.min(...drainRan.map((job) => job.started_at!));
    const lastDrained = Math.max(...drainRan.map((job) => job.finished_at!));
    if (drained.length !== BUILDS || !Number.isFinite(firstStarted) || !Number.isFinite(lastDrained)) {
      throw new Error(`drain: expected ${BUILDS} finished builds, found ${drained.length}`);
    }
    const twice = drainRan.filter((job) => job.claims !== 1);
    if (twice.length > 0) throw new Error(`drain: ${twice.length} jobs claimed more than once (job ${twice[0]!.id}: ${twice[0]!.claims} claims)`);
    const latencies = unblockedLatencies(drainJobs);
    const liveJobs = afterLive.jobs.filter((job) => liveIds.has(job.build_id) && ran(job)).length;
    const jobs = drainRan.length;
    return {
      ...scenario,
      builds: live.length,
      success: live.filter((build) => build.status === 'success').length,
      fail: live.filter((build) => build.status === 'fail').length,
      liveJobs,
      triggerS: (triggeredAt - startedAt) / 1000,
      totalS: SKIP_LIVE ? Number.NaN : (Math.max(lastFinished, triggeredAt) - startedAt) / 1000,
      drainJobs: jobs,
      drainS: (lastDrained - firstStarted) / 1000,
      unblockedP50Ms: quantile(latencies, 0.5),
      unblockedP99Ms: quantile(latencies, 0.99),
      unblocked: latencies.length,
      ...(busyBefore !== undefined && busyAfter !== undefined
        ? { drainCpuMsPerJob: (busyAfter - busyBefore) / jobs, drainBusyShare: (busyAfter - busyBefore) / (drainWallMs * cpus().length) }
        : {}),
      ...(groupsBefore && groupsAfter
        ? {
            drainUsineCpuMsPerJob: (groupsAfter.processesMs - groupsBefore.processesMs) / jobs,
            drainPostgresCpuMsPerJob: scenario.dialect === 'pg' ? (groupsAfter.postgresMs - groupsBefore.postgresMs) / jobs : undefined,
          }
        : {}),
    };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${scenario.label}: ${message}\n${describeServers(servers).slice(-8000)}`, { cause: error });
  } finally {
    await Promise.all(servers.map((server) => stopServer(server, 12_000)));
    await database.drop();
  }
}

/** The figure before the job engine (BENCHMARKS.md, drain with the four-step engine) this set-up is compared with. */
const oldRate = (result: Result) => (result.dialect === 'sqlite' ? OLD_BUILD_DRAIN.sqlite : OLD_BUILD_DRAIN.pg);

/**
 * BENCH_OLD_SAME_MACHINE="pg=…,pg3=…,sqlite=…": the four-step engine's drain (builds/s) measured on this machine just
 * before, by the bench/builds.ts of the last commit that had it, run from a copy of that commit (see BENCHMARKS.md);
 * each set-up is then also compared with its own set-up's figure.
 */
const sameMachine = Object.fromEntries(
  (process.env.BENCH_OLD_SAME_MACHINE ?? '')
    .split(',')
    .filter(Boolean)
    .map((pair) => pair.split('=').map((part) => part.trim()) as [string, string])
    .map(([key, value]) => [key, Number(value)]),
) as Partial<Record<'pg' | 'pg3' | 'sqlite', number>>;
const sameMachineRate = (result: Result) => sameMachine[result.dialect === 'sqlite' ? 'sqlite' : result.processes > 1 ? 'pg3' : 'pg'];
const hasSameMachine = Object.keys(sameMachine).length > 0;

const fixed = (value: number | undefined, digits: number) => (value === undefined || !Number.isFinite(value) ? '—' : value.toFixed(digits));

function table(results: Result[]): string {
  const rows = results.map((result) => {
    const jobsPerS = result.drainJobs / result.drainS;
    return [
      result.label,
      String(result.processes * CONCURRENCY),
      String(result.builds),
      `${result.success} / ${result.fail}`,
      fixed(result.liveJobs / result.builds, 2),
      fixed(result.triggerS, 2),
      fixed(result.builds / result.triggerS, 0),
      fixed(result.totalS, 2),
      fixed(result.builds / result.totalS, 0),
      fixed(result.liveJobs / result.totalS, 0),
      String(result.drainJobs),
      fixed(result.drainS, 2),
      fixed(BUILDS / result.drainS, 0),
      fixed(jobsPerS, 0),
      `${fixed(oldRate(result) / jobsPerS, 2)}×`,
      fixed(result.leastWorkJobsPerS, 0),
      `${fixed((result.leastWorkJobsPerS ?? Number.NaN) / jobsPerS, 2)}×`,
      ...(hasSameMachine ? [`${fixed((sameMachineRate(result) ?? Number.NaN) / jobsPerS, 2)}× (${fixed(sameMachineRate(result), 0)} builds/s)`] : []),
      `${fixed(result.unblockedP50Ms, 1)} / ${fixed(result.unblockedP99Ms, 1)}`,
      fixed(result.drainCpuMsPerJob, 2),
      result.drainBusyShare === undefined ? '—' : `${(result.drainBusyShare * 100).toFixed(0)} %`,
      fixed(result.drainUsineCpuMsPerJob, 2),
      fixed(result.drainPostgresCpuMsPerJob, 2),
    ];
  });
  const header = [
    'Set-up',
    'Workers',
    'Builds',
    'Success / fail',
    'Jobs run per build',
    'Triggering (s)',
    'Triggers/s',
    'Live: all terminal (s)',
    'Live: builds/s',
    'Live: jobs/s',
    'Drain: jobs run',
    'Drain (s)',
    'Drain: builds/s',
    'Drain: jobs/s',
    'Drain: time per job ÷ old time per build',
    'Least work: jobs/s',
    'Drain: time per job ÷ least work',
    ...(hasSameMachine ? ['Drain: ÷ old time per build, same machine'] : []),
    'Unblocked job, claim-to-start p50 / p99 (ms)',
    'Drain: machine CPU ms/job',
    'Drain: machine busy',
    'Drain: Usine CPU ms/job',
    'Drain: PostgreSQL CPU ms/job',
  ];
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

const allScenarios: Scenario[] = [
  { label: '(a) PostgreSQL, 1 process', dialect: 'pg', processes: 1 },
  { label: '(b) PostgreSQL, 3 processes, one database', dialect: 'pg', processes: 3 },
  { label: '(c) SQLite file, 1 process', dialect: 'sqlite', processes: 1 },
];
const setups = process.env.BENCH_SETUPS?.split(',').map((letter) => `(${letter.trim()})`);
const scenarios = allScenarios.filter(
  (scenario) =>
    !(process.env.BENCH_SKIP_PG === '1' && scenario.dialect === 'pg') && (!setups || setups.some((setup) => scenario.label.startsWith(setup))),
);

const results: Result[] = [];
/** The least work's jobs/s on each database, measured once per run, right after that database's first set-up. */
const leastWork = new Map<Scenario['dialect'], number>();
for (const scenario of scenarios) {
  process.stdout.write(`${scenario.label}: ${BUILDS} builds… `);
  const result = await runScenario(scenario);
  if (!leastWork.has(scenario.dialect)) {
    const least = await leastWorkDrain(scenario.dialect, BUILDS, CONCURRENCY, Number(FAIL_RATE));
    leastWork.set(scenario.dialect, least.jobs / least.seconds);
  }
  result.leastWorkJobsPerS = leastWork.get(scenario.dialect);
  results.push(result);
  console.log(
    `live ${fixed(result.builds / result.totalS, 0)} builds/s, drain ${(BUILDS / result.drainS).toFixed(0)} builds/s, ` +
      `${(result.drainJobs / result.drainS).toFixed(0)} jobs/s (${(oldRate(result) / (result.drainJobs / result.drainS)).toFixed(2)}× the old time per build, ` +
      `${fixed((result.leastWorkJobsPerS ?? Number.NaN) / (result.drainJobs / result.drainS), 2)}× the least work's), ` +
      `unblocked p50 ${fixed(result.unblockedP50Ms, 1)} ms p99 ${fixed(result.unblockedP99Ms, 1)} ms, ` +
      `CPU/job ${fixed(result.drainCpuMsPerJob, 2)} ms (Usine ${fixed(result.drainUsineCpuMsPerJob, 2)}, PostgreSQL ${fixed(result.drainPostgresCpuMsPerJob, 2)})`,
  );
}

const cpu = cpus();
const machine = [
  `- CPU: ${cpu[0]?.model.trim() ?? 'unknown'}, ${cpu.length} cores`,
  `- Node.js ${process.version}`,
  scenarios.some((scenario) => scenario.dialect === 'pg') ? `- PostgreSQL ${await postgresVersion()} (same machine)` : undefined,
  `- Date: ${new Date().toISOString().slice(0, 10)}`,
]
  .filter(Boolean)
  .join('\n');

const perJobLimit = (rate: number) => Math.ceil(rate / PER_JOB_SLACK);
const section = `## Build throughput

\`node --import tsx bench/builds.ts\`: ${BUILDS} builds over ${PROJECTS} projects, each running the default pipeline (four jobs
one after the other: checkout → install → test → package, the last one storing the artifact), with
\`BUILD_TIME_SCALE=0\` (no simulated waiting: the figures are the engine's own cost — claims, the finishes that release
the next job, artifacts, events) and \`BUILD_FAIL_RATE=${FAIL_RATE}\` (as the figures before the job engine: a build fails
at one of its jobs and the jobs after it are skipped, so ${FAIL_RATE === '0.5' ? 'about 3.3' : 'fewer than 4'} jobs run per build), ${CONCURRENCY} workers and
\`DATABASE_POOL_MAX=${CONCURRENCY}\` per process, triggered through every process at once (${TRIGGER_CONCURRENCY} requests in flight per
process). Two measurements per set-up, on one database:

- **Live**: the builds run while the triggers arrive; from the first trigger to the last build's \`finished_at\`. When it
  equals the triggering time, the workers kept up and the figure is the API's trigger rate, not the engine's.
- **Drain**: ${BUILDS} more builds (and ${WARMUP_PER_PROCESS} per worker process for a warm-up) are queued by an API-only process
  (\`BUILD_CONCURRENCY=0\`) and their queued jobs (each build's checkout; the others wait for it) held out of the queue
  (bench/database.ts); the worker processes start, and once every one is ready the warm-up builds' jobs go back to the
  queue and run (a long-running process has its hot code compiled), then the ${BUILDS} go back in one statement; from the
  first job's \`started_at\` to the last one's \`finished_at\`: the engine alone. Jobs/s counts the jobs that ran.
- **Time per job ÷ old time per build**: the four-step engine's drain, one build per worker run, was ${OLD_BUILD_DRAIN.pg.toLocaleString('en-US')}
  builds/s on PostgreSQL with one process and ${OLD_BUILD_DRAIN.sqlite.toLocaleString('en-US')} on SQLite (this file, before issue #16; three processes:
  ${OLD_BUILD_DRAIN.pg3.toLocaleString('en-US')}). Issue #16 allows a job to cost at most ${Math.round((PER_JOB_SLACK - 1) * 100)} % more than such a build: ≥ ${perJobLimit(OLD_BUILD_DRAIN.pg).toLocaleString('en-US')} jobs/s
  on PostgreSQL (one process and three, against the one-process figure) and ≥ ${perJobLimit(OLD_BUILD_DRAIN.sqlite).toLocaleString('en-US')} on SQLite, and
  ≥ ${BUILDS_PER_S_TARGET} builds/s of the four-job default pipeline on PostgreSQL.${
  hasSameMachine
    ? `
- **Same machine**: those figures came from another machine (see the change log below); the four-step engine's drain
  measured on this one in the same session (the last commit that had it, its own bench/builds.ts, same sizes) was
  ${[sameMachine.pg && `${sameMachine.pg} builds/s on PostgreSQL with one process`, sameMachine.pg3 && `${sameMachine.pg3} with three`, sameMachine.sqlite && `${sameMachine.sqlite} on SQLite`].filter(Boolean).join(', ')}: the next column divides by those.`
    : ''
}
- **Least work** (bench/least-work-engine.ts, in the same run, on the same database server, after the first set-up of
  each database): bare tables with no trigger, count or foreign key, each build a fixed chain of four jobs, and per job
  the two writes that cannot be done without — a claim, and a finish that writes the job's log and status, appends to
  its build's log, queues the next job (or ends the build) and stores the last job's artifact — one statement each
  (SQLite: the finish in one transaction), with ${CONCURRENCY} workers in one process and the same fail rate per build. The
  time per job over the least work's is what Usine's design costs on top of the work itself: a generic dependency
  graph, build start and claim lines, leases, status counts kept by triggers, events, artifacts packed from the log.
  Set-up (b) is compared with the one-process least work.
- **Claim-to-start latency of an unblocked job**: for each drained job with needs, from the moment it became claimable
  to its \`started_at\`. The jobs table does not record when a job was queued: a job with needs is queued by the
  transaction that finishes the last of them, so the moment taken is the latest \`finished_at\` of its needs (the
  database's clock, written at that transaction's first update; the job is claimable at its commit, a few statements
  later, so the figure slightly overstates the wait). Each build's first job is left out: the drain queues them all
  at once, and their wait is the backlog's. Claims take the oldest queued job, so an unblocked job (whose id is lower
  than every later build's jobs) goes before the backlog: it waits for a free worker, not for the queue.
- **CPU**: the machine's busy CPU over the drain (every process: Usine, PostgreSQL, this script; \`/proc/stat\`) per job
  that ran, and as a share of all cores (from the release to when the script saw the queue empty), and the part of it
  the Usine processes and PostgreSQL's used (\`/proc/<pid>/stat\`). On a machine shared with other work both include
  it: the machine's figures count every process, and PostgreSQL's every \`postgres\` process (other databases' too).

${table(results)}

${machine}
`;

console.log(`\n${table(results)}\n\n${machine}`);
if (process.env.BENCH_NO_WRITE !== '1') {
  let text = upsertSection(readBenchmarks(), '## Build throughput', section);
  // The Targets table's rows about builds and jobs, from this section (bench/index.ts writes the same on a full run).
  const targets = getSection(text, '## Targets');
  if (targets !== undefined) {
    const rows = verdictTable(buildTargets(getSection(text, '## Build throughput'))).split('\n').slice(2);
    const kept = targets.split('\n').filter((row) => !isBuildTargetRow(row));
    const at = kept.findIndex((row) => row.startsWith('| Soak'));
    kept.splice(at === -1 ? kept.findLastIndex((row) => row.startsWith('|')) + 1 : at, 0, ...rows);
    text = upsertSection(text, '## Targets', kept.join('\n'));
  }
  writeBenchmarks(text);
  console.log(`\nWrote the "## Build throughput" section of ${BENCHMARKS_FILE} and its rows of "## Targets"`);
}

/** A row of the Targets table that buildTargets writes (or wrote before the job engine). */
function isBuildTargetRow(row: string): boolean {
  return /^\| (≥ \d+ builds\/s|More (builds|jobs)\/s|(PostgreSQL|SQLite)[^|]*: time per job)/.test(row);
}
