/**
 * `npm run bench`: the HTTP API under load on SQLite and PostgreSQL, against two baselines measured in the same run on
 * the same database (a bare Fastify route, and for each hot read the least work it can do: bench/baseline-server.ts), plus
 * logins under argon2id, GET /projects while logins flood, live log streams with 200 listeners, the server's RSS,
 * and (full run) the build engine's throughput (bench/builds.ts). Prints everything; a full run writes BENCHMARKS.md
 * (all but its "## Build throughput" section, which bench/builds.ts writes) and bench/ratios.svg.
 *
 *   node --import tsx bench/index.ts [--quick] [--only=projects,project,sse,…] [--db=sqlite|pg|both] [--write|--no-write]
 *
 * Scenario names: see bench/scenarios.ts, plus login-flood, sse and builds. Environment: TEST_DATABASE_URL (the
 * PostgreSQL server scratch databases are created on), BENCH_CPU_PROF=<dir> (CPU profile of each Usine server).
 */
import { spawnSync } from 'node:child_process';
import { repoRoot } from '../test/processes.js';
import { CHART_FILE, writeChart } from './chart.js';
import { describeMachine } from './machine.js';
import { BENCHMARKS_FILE, getSection, readBenchmarks, setIntro, upsertSection, writeBenchmarks } from './markdown.js';
import { parseOptions, type BenchOptions } from './options.js';
import { buildTargets, dbName, extrasLines, httpTargets, scenarioTable, soakTargets, verdictTable } from './report.js';
import { runDatabase, type DatabaseResults } from './run-database.js';
import { APP_NODE_FLAGS, APP_PROCESS_ENV, BENCH_TIME_SCALE } from './servers.js';

const options = parseOptions(process.argv.slice(2));
const started = Date.now();

/** bench/builds.ts in its own process (it writes its own section); on a full run, or when --only names it. */
function runBuildThroughput(opts: BenchOptions): void {
  const wanted = opts.only ? opts.only.has('builds') : !opts.quick;
  if (!wanted) return;
  console.log('\n== Build throughput (bench/builds.ts) ==');
  const env = { ...process.env, ...(opts.quick ? { BENCH_BUILDS: '300' } : {}), ...(opts.dialects.includes('pg') ? {} : { BENCH_SKIP_PG: '1' }) };
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'bench/builds.ts'], { cwd: repoRoot, env, stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`bench/builds.ts failed (exit ${result.status})`);
}

const all: DatabaseResults[] = [];
for (const dialect of options.dialects) all.push(await runDatabase(dialect, options));
runBuildThroughput(options);

const machine = await describeMachine(options.dialects);
const server = options.dist ? 'built dist/' : 'src/ under tsx';
const mode = options.quick
  ? `quick (smoke run, ${server}: ${options.durationS} s per scenario after ${options.warmupS} s of warm-up, ${options.bigBuilds.toLocaleString('en-US')} builds)`
  : `full (${server}: ${options.durationS} s per scenario after ${options.warmupS} s of warm-up, ${options.bigBuilds.toLocaleString('en-US')} builds)`;

for (const results of all) {
  console.log(`\n== ${dbName(results.dialect)} ==\n${scenarioTable(results)}\n${extrasLines(results).map((l) => `- ${l}`).join('\n')}`);
}
const existing = readBenchmarks();
const verdicts = [...httpTargets(all, options.quick), ...buildTargets(getSection(existing, '## Build throughput')), ...soakTargets(getSection(existing, '## Soak'))];
console.log(`\n== Targets ==\n${verdictTable(verdicts)}\n\n${machine.map((l) => `- ${l}`).join('\n')}\n- Mode: ${mode}`);
console.log(`\nDone in ${((Date.now() - started) / 1000).toFixed(0)} s.`);

if (options.write && !options.only) {
  const intro = `\`npm run bench\` (\`node --import tsx bench/index.ts\`; \`-- --quick\` for a smoke run under 2 minutes) starts Usine
(\`${['node', ...APP_NODE_FLAGS, options.dist ? 'dist/src/main.js' : '--import tsx src/main.ts'].join(' ')}\` with \`${Object.entries(APP_PROCESS_ENV).map(([name, value]) => `${name}=${value}`).join(' ')}\`, as \`npm start\` and the image run it; logger at \`warn\`, rate limits raised out of reach (the limiter still runs and sends its headers), \`BUILD_TIME_SCALE=${BENCH_TIME_SCALE}\`, 10 build workers) on a scratch
SQLite file and on a scratch PostgreSQL database, seeds them with SQL (${options.projects.toLocaleString('en-US')} projects with 3 builds each, and one
project with ${options.bigBuilds.toLocaleString('en-US')} finished builds numbered without gaps), and loads each endpoint with
[autocannon](https://github.com/mcollina/autocannon) (${options.connections} connections) for a fixed time after a warm-up. Two
baselines run in the same process tree on the same database, with the same node flags and environment
(bench/baseline-server.ts): a **bare** Fastify route
returning a constant, and for each hot read the **least work** it can do (verify the JWT with \`@fastify/jwt\`, the
essential queries written by hand with the raw driver, JSON out; none of Usine's own design): a page of the projects
table, whose rows store \`last_build_status\`, and one \`count(*)\`; one project row; a builds page (the project's
existence and newest number in one query, then the page's range of numbers); the queue's four counts in one statement
for \`/status\`. Every figure is req/s, p50/p99 latency, the CPU time the
answering process used per request (user + system,
from \`/proc/<pid>/stat\`) and the req/s ratio to those baselines; the Usine server's RSS is read from
\`/proc/<pid>/status\` every 250 ms. Autocannon, the servers and the databases share the machine, so the
ratios matter more than the absolute figures.

![req/s ratios to the baselines](bench/ratios.svg)

${machine.map((l) => `- ${l}`).join('\n')}
- Mode: ${mode}`;
  const sections = all
    .map((results) => `### ${dbName(results.dialect)}\n\n${scenarioTable(results)}\n\n${extrasLines(results).map((l) => `- ${l}`).join('\n')}`)
    .join('\n\n');
  const http = `## HTTP API

The least-work route's ratio (\`× minimal\`) is the one the app's reads are judged by (the bare route shows the
framework's floor); each of those reads runs in alternation with its least-work route, and the three builds pages with one another
(${options.rounds} rounds sharing the duration; p50/p99 are the rounds' medians), so that other load on the machine weighs on
all alike.
\`GET /projects/:id/builds\` is measured on the project with ${options.bigBuilds.toLocaleString('en-US')} builds, first page and last page
(\`?page=${Math.ceil(options.bigBuilds / 20)}&per_page=20\`, and through \`?cursor=\` when the API gives one). \`POST /projects/:id/build\` queues builds faster than the workers run them: the
queue is canceled in the database after it. The login flood is \`GET /projects\` and \`POST /login\` (both ${options.connections}
connections) at once, its p99 compared with GET /projects measured alone just before (same data). The live-log run keeps ${options.sseClients} SSE clients on ${options.sseBuilds} builds at a time
(${Math.ceil(options.sseClients / options.sseBuilds)} per build), each build starting over once finished; the latency of a line is from when the worker was
due to write it (\`started_at\` + its simulated offset × \`BUILD_TIME_SCALE\`) to when a client parsed it.

${sections}`;
  const targets = `## Targets

Read from the figures above, the "Build throughput" section (drain figures) and the "Soak" section; never asserted
in tests.

${verdictTable(verdicts)}`;
  let text = setIntro(existing, intro);
  text = upsertSection(text, '## HTTP API', http, '## Build throughput');
  text = upsertSection(text, '## Targets', targets, '## Build throughput');
  writeBenchmarks(text);
  writeChart(all, `${machine[0]} · Node ${process.version} · ${mode.split(' (')[0]} run · ${machine.at(-1)}`);
  console.log(`Wrote ${BENCHMARKS_FILE} and ${CHART_FILE}`);
}

process.exit(0);
