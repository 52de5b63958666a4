/**
 * Build throughput: builds completed per second with BUILD_TIME_SCALE=0 (no simulated waiting, so what is measured is
 * the engine's own cost: claims, log writes, artifacts, finishes, events), in three set-ups:
 *   (a) 1 server process on PostgreSQL, (b) 3 processes on one PostgreSQL database, (c) 1 process on SQLite (a file).
 * Each: start the processes (`node --import tsx src/main.ts`, BUILD_CONCURRENCY 4 each), trigger N builds through all
 * of them, and time from the first trigger to the last build's `finished_at` ("live"); then queue N more with no worker
 * running and time how long the workers, warmed up, take to run them ("drain", see runScenario). Prints a table and writes the
 * "## Build throughput" section of BENCHMARKS.md (other sections are kept).
 *
 *   node --import tsx bench/builds.ts
 *
 * Environment: BENCH_BUILDS (default 6000: a drain of ~5 s; with 2000, ~1.7 s, the figures moved by ±10 % between runs), BENCH_WARMUP_BUILDS (300 per worker process), BENCH_PROJECTS (10), BENCH_TRIGGER_CONCURRENCY (16 per process),
 * TEST_DATABASE_URL (the PostgreSQL server to create scratch databases on; default postgres://postgres@127.0.0.1:5432/test),
 * BENCH_SKIP_PG=1 to run the SQLite case only, BENCH_SETUPS=a,b (say) to run only those set-ups, BENCH_CPU_PROF=<dir>
 * for CPU profiles of the drain's worker processes (drainProfileEnv).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { testDatabaseUrl } from '../test/pg-available.js';
import { apiClient, describeServers, loginAdmin, mapLimit, queueFigures, repoRoot, startServers, stopServer, type ApiClient, type ServerProcess } from '../test/processes.js';
import { holdQueued, releaseHeld, scratchDatabase } from './database.js';
import { machineBusyMs } from './machine-cpu.js';
import { groupCpuMs } from './process-group-cpu.js';

const BUILDS = Number(process.env.BENCH_BUILDS ?? 6000);
const PROJECTS = Number(process.env.BENCH_PROJECTS ?? 10);
const TRIGGER_CONCURRENCY = Number(process.env.BENCH_TRIGGER_CONCURRENCY ?? 16);
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
  builds: number;
  success: number;
  fail: number;
  triggerS: number;
  totalS: number;
  /** Seconds the workers took to run a queue of `builds` filled beforehand. */
  drainS: number;
  /** Busy CPU of the whole machine per drained build (ms), and its share of all cores over the drain. */
  drainCpuMsPerBuild?: number;
  drainBusyShare?: number;
  /** Of that CPU per drained build (ms): the Usine processes', and PostgreSQL's. */
  drainUsineCpuMsPerBuild?: number;
  drainPostgresCpuMsPerBuild?: number;
}

interface Build {
  id: number;
  status: string;
  started_at: string | null;
  finished_at: string | null;
}

interface Page<T> {
  items: T[];
  total: number;
}

/** A scratch database: a PostgreSQL database with a random name, or a SQLite file in a temporary directory. */

async function postgresVersion(): Promise<string> {
  const client = postgres(testDatabaseUrl(), { max: 1, onnotice: () => {} });
  try {
    const [row] = await client<{ server_version: string }[]>`show server_version`;
    return row?.server_version ?? 'unknown';
  } finally {
    await client.end();
  }
}

async function countStatus(client: ApiClient, projectIds: number[], status: string): Promise<number> {
  const pages = await Promise.all(
    projectIds.map((id) => client.expect<Page<Build>>(200, 'GET', `/projects/${id}/builds?per_page=1&status=${status}`)),
  );
  return pages.reduce((sum, page) => sum + page.total, 0);
}

async function listAll(client: ApiClient, projectId: number): Promise<Build[]> {
  const builds: Build[] = [];
  for (let page = 1; ; page++) {
    const body = await client.expect<Page<Build>>(200, 'GET', `/projects/${projectId}/builds?per_page=100&page=${page}`);
    builds.push(...body.items);
    if (body.items.length < 100 || builds.length >= body.total) return builds;
  }
}

/** Waits until no build is queued or running (`/status` queue figures, or per-project counts). */
async function waitIdle(server: ServerProcess, client: ApiClient, projectIds: number[], since: number): Promise<void> {
  for (;;) {
    const { queued, running } = (await queueFigures(server.url)) ?? {
      queued: await countStatus(client, projectIds, 'queued'),
      running: await countStatus(client, projectIds, 'running'),
    };
    if (queued + running === 0) return;
    if (Date.now() - since > DRAIN_TIMEOUT_MS) throw new Error(`${queued} queued and ${running} running after ${DRAIN_TIMEOUT_MS} ms`);
    await sleep(200);
  }
}

/** N triggers through every client at once, TRIGGER_CONCURRENCY in flight per client, spread over the projects. */
async function triggerBuilds(clients: ApiClient[], projectIds: number[], count = BUILDS): Promise<void> {
  await mapLimit(
    Array.from({ length: count }, (_, index) => index),
    TRIGGER_CONCURRENCY * clients.length,
    (index) => clients[index % clients.length]!.expect(201, 'POST', `/projects/${projectIds[index % PROJECTS]!}/builds`),
  );
}

const timeOf = (text: string | null) => Date.parse(text ?? '');

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
 * held out of the queue, the worker processes start, and once all of them are ready the builds go back to the queue
 * in one statement; from the first `started_at` to the last `finished_at` of those builds (the database's clock), so
 * the figure is the engine's alone, without the triggering's load or another process's start-up.
 */
async function runScenario(scenario: Scenario): Promise<Result> {
  const database = await scratchDatabase(scenario.dialect);
  const env = {
    DATABASE_URL: database.url,
    BUILD_TIME_SCALE: '0',
    BUILD_CONCURRENCY: String(CONCURRENCY),
    BUILD_QUEUE_LIMIT: '100000',
    BUILD_FAIL_RATE: '0.5',
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
    let clients = servers.map((server) => apiClient(server.url, token));
    const projectIds: number[] = [];
    for (let index = 0; index < PROJECTS; index++) {
      const project = await clients[0]!.expect<{ id: number }>(201, 'POST', '/projects', {
        name: `bench-${index}-${randomBytes(3).toString('hex')}`,
        repo: `https://github.com/demo/bench-${index}`,
      });
      projectIds.push(project.id);
    }
    const listBuilds = async () => (await Promise.all(projectIds.map((id) => listAll(clients[0]!, id)))).flat();

    // Live.
    const startedAt = Date.now();
    await triggerBuilds(clients, projectIds);
    const triggeredAt = Date.now();
    await waitIdle(servers[0]!, clients[0]!, projectIds, startedAt);
    // The end is the last build's finished_at (the database's clock, this machine's), not when a poll noticed.
    const live = await listBuilds();
    const lastFinished = Math.max(...live.map((build) => timeOf(build.finished_at)));
    if (live.length !== BUILDS || !Number.isFinite(lastFinished)) {
      throw new Error(`expected ${BUILDS} finished builds, found ${live.length} (last finished_at ${lastFinished})`);
    }
    const liveIds = new Set(live.map((build) => build.id));

    // Drain: fill the queue with no worker anywhere, hold it, start the workers, and once every process is ready
    // (none is still starting up and taking CPU from the others) let a warm-up batch through, then, once it has run,
    // put the rest of the queue back at once.
    await Promise.all(servers.map((server) => stopServer(server, 12_000)));
    servers = await startServers(1, { ...env, BUILD_CONCURRENCY: '0' }, `${prefix}-api-only`);
    const warmup = WARMUP_PER_PROCESS * scenario.processes;
    await triggerBuilds([apiClient(servers[0]!.url, token)], projectIds, BUILDS + warmup);
    await stopServer(servers[0]!, 12_000);
    const held = await holdQueued(database.url);
    servers = await startServers(scenario.processes, { ...env, ...drainProfileEnv(scenario) }, prefix);
    clients = servers.map((server) => apiClient(server.url, token));
    const warmupIds = new Set(await releaseHeld(database.url, warmup));
    await waitIdle(servers[0]!, clients[0]!, projectIds, Date.now());
    const drainStartedAt = Date.now();
    const busyBefore = machineBusyMs();
    const groupsBefore = groupCpuMs(servers.map((server) => server.pid));
    const released = (await releaseHeld(database.url)).length;
    if (held !== BUILDS + warmup || warmupIds.size !== warmup || released !== BUILDS) {
      throw new Error(`drain: ${held} builds held, ${warmupIds.size} + ${released} released, expected ${warmup} + ${BUILDS}`);
    }
    await waitIdle(servers[0]!, clients[0]!, projectIds, drainStartedAt);
    const busyAfter = machineBusyMs();
    const groupsAfter = groupCpuMs(servers.map((server) => server.pid));
    const drainWallMs = Date.now() - drainStartedAt;
    const drained = (await listBuilds()).filter((build) => !liveIds.has(build.id) && !warmupIds.has(build.id));
    const firstStarted = Math.min(...drained.map((build) => timeOf(build.started_at)));
    const lastDrained = Math.max(...drained.map((build) => timeOf(build.finished_at)));
    if (drained.length !== BUILDS || !Number.isFinite(firstStarted) || !Number.isFinite(lastDrained)) {
      throw new Error(`drain: expected ${BUILDS} finished builds, found ${drained.length}`);
    }
    return {
      ...scenario,
      builds: live.length,
      success: live.filter((build) => build.status === 'success').length,
      fail: live.filter((build) => build.status === 'fail').length,
      triggerS: (triggeredAt - startedAt) / 1000,
      totalS: (Math.max(lastFinished, triggeredAt) - startedAt) / 1000,
      drainS: (lastDrained - firstStarted) / 1000,
      ...(busyBefore !== undefined && busyAfter !== undefined
        ? { drainCpuMsPerBuild: (busyAfter - busyBefore) / BUILDS, drainBusyShare: (busyAfter - busyBefore) / (drainWallMs * cpus().length) }
        : {}),
      ...(groupsBefore && groupsAfter
        ? {
            drainUsineCpuMsPerBuild: (groupsAfter.processesMs - groupsBefore.processesMs) / BUILDS,
            drainPostgresCpuMsPerBuild: scenario.dialect === 'pg' ? (groupsAfter.postgresMs - groupsBefore.postgresMs) / BUILDS : undefined,
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

function table(results: Result[]): string {
  const rows = results.map((result) => [
    result.label,
    String(result.processes * CONCURRENCY),
    String(result.builds),
    `${result.success} / ${result.fail}`,
    result.triggerS.toFixed(2),
    (result.builds / result.triggerS).toFixed(0),
    result.totalS.toFixed(2),
    (result.builds / result.totalS).toFixed(0),
    result.drainS.toFixed(2),
    (result.builds / result.drainS).toFixed(0),
    result.drainCpuMsPerBuild === undefined ? '—' : result.drainCpuMsPerBuild.toFixed(2),
    result.drainBusyShare === undefined ? '—' : `${(result.drainBusyShare * 100).toFixed(0)} %`,
    result.drainUsineCpuMsPerBuild === undefined ? '—' : result.drainUsineCpuMsPerBuild.toFixed(2),
    result.drainPostgresCpuMsPerBuild === undefined ? '—' : result.drainPostgresCpuMsPerBuild.toFixed(2),
  ]);
  const header = [
    'Set-up',
    'Workers',
    'Builds',
    'Success / fail',
    'Triggering (s)',
    'Triggers/s',
    'Live: all terminal (s)',
    'Live: builds/s',
    'Drain (s)',
    'Drain: builds/s',
    'Drain: machine CPU ms/build',
    'Drain: machine busy',
    'Drain: Usine CPU ms/build',
    'Drain: PostgreSQL CPU ms/build',
  ];
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function writeSection(markdown: string): string {
  const file = join(repoRoot, 'BENCHMARKS.md');
  const existing = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  const heading = '## Build throughput';
  const start = existing.indexOf(`${heading}\n`);
  let updated: string;
  if (start === -1) {
    updated = `${existing.trimEnd()}\n\n${markdown.trimEnd()}\n`;
  } else {
    const rest = existing.slice(start + heading.length);
    const next = rest.search(/^## /m);
    const after = next === -1 ? '' : rest.slice(next);
    updated = `${existing.slice(0, start)}${markdown.trimEnd()}\n${after ? `\n${after}` : ''}`;
  }
  writeFileSync(file, updated);
  return file;
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
for (const scenario of scenarios) {
  process.stdout.write(`${scenario.label}: ${BUILDS} builds… `);
  const result = await runScenario(scenario);
  results.push(result);
  console.log(`live ${(result.builds / result.totalS).toFixed(0)} builds/s, drain ${(result.builds / result.drainS).toFixed(0)} builds/s`);
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

const section = `## Build throughput

\`node --import tsx bench/builds.ts\`: ${BUILDS} builds over ${PROJECTS} projects with \`BUILD_TIME_SCALE=0\` (no simulated
waiting: the figures are the engine's own cost per build — claim, log writes, artifact, finish, events) and
\`BUILD_FAIL_RATE=0.5\`, ${CONCURRENCY} workers and \`DATABASE_POOL_MAX=${CONCURRENCY}\` per process, triggered through every process at once
(${TRIGGER_CONCURRENCY} requests in flight per process). Two measurements per set-up, on one database:

- **Live**: the builds run while the triggers arrive; from the first trigger to the last build's \`finished_at\`. When it
  equals the triggering time, the workers kept up and the figure is the API's trigger rate, not the engine's.
- **Drain**: ${BUILDS} more builds (and ${WARMUP_PER_PROCESS} per worker process for a warm-up) are queued by an API-only
  process (\`BUILD_CONCURRENCY=0\`) and held out of the queue; the worker processes start, and once every one is
  ready the warm-up builds go back to the queue and run (a long-running process has its hot code compiled), then the
  ${BUILDS} go back in one statement; from the first \`started_at\` to the last \`finished_at\` of those builds: the
  engine alone. The machine's busy CPU over the drain (every process: Usine, PostgreSQL, this script; \`/proc/stat\`)
  is given per build, and as a share of all cores (from the release to when the script saw the queue empty), and so
  is the part of it the Usine processes and PostgreSQL's used (\`/proc/<pid>/stat\`).

${table(results)}

${machine}
`;

console.log(`\n${table(results)}\n\n${machine}`);
console.log(`\nWrote the "## Build throughput" section of ${writeSection(section)}`);
