/**
 * Webhook deliveries, measured against a local receiver (node:http in this process, on 127.0.0.1, answering 204 at
 * once), with Usine processes started as bench/builds.ts starts them (`node --import tsx src/main.ts`, a scratch
 * database each phase, `WEBHOOK_ALLOW_PRIVATE_NETWORKS=true` so that loopback may receive):
 *   1. Deliveries/s, one process and three (PostgreSQL; SQLite: one): a backlog of pings queued with no delivery
 *      worker running, then drained by `WEBHOOK_CONCURRENCY=4` per process; from the warm-up's last arrival to the last.
 *   2. The delay from a build's finish to the arrival of its `build.succeeded`/`build.failed` delivery, p50 and p99:
 *      idle (one build at a time) and under bench/builds.ts's drain.
 *   3. The build engine's drain (jobs/s) with no hook and with a hook (events `*`) on every project: the issue asks
 *      for ≥ 0.8× with hooks on.
 * Prints the "## Webhooks" section of BENCHMARKS.md; `--write` puts it there (replacing it, or just before "## Soak").
 *
 *   node --import tsx bench/webhooks.ts [--db=pg|sqlite|both] [--quick] [--write] [--only=throughput,idle,drain] [--rounds=N]
 *
 * --only runs some of the three parts (and cannot --write); --rounds is how many times each drain runs (default 2, 1
 * with --quick), in alternating order.
 *
 * Environment: TEST_DATABASE_URL (the PostgreSQL server scratch databases are created on), BENCH_POOL_MAX (each
 * process's DATABASE_POOL_MAX, default 4 as bench/builds.ts).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  apiClient,
  describeServers,
  loginAdmin,
  mapLimit,
  startServers,
  stopServer,
  type ApiClient,
  type ServerProcess,
} from '../test/processes.js';
import { holdQueued, onDatabase, readRuns, releaseHeld, scratchDatabase, type BuildTimes, type JobTimes, type ScratchDatabase } from './database.js';
import { describeMachine } from './machine.js';
import { BENCHMARKS_FILE, readBenchmarks, upsertSection, writeBenchmarks } from './markdown.js';
import type { Dialect } from './options.js';
import { groupCpuMs, type GroupCpuMs } from './process-group-cpu.js';

// ---------------------------------------------------------------------------------------------------------------
// Options and sizes

const PARTS = ['throughput', 'idle', 'drain'] as const;
type Part = (typeof PARTS)[number];

function parseArgs(argv: readonly string[]) {
  const unknown = argv.filter((arg) => !/^--(quick|write|db=(pg|sqlite|both)|only=[a-z,]+|rounds=[1-9])$/.test(arg));
  if (unknown.length > 0) {
    const usage = `--db=pg|sqlite|both, --quick, --write, --only=${PARTS.join(',')}, --rounds=<1-9>`;
    throw new Error(`unknown or malformed flag(s): ${unknown.join(' ')} (${usage})`);
  }
  const value = (name: string) => argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
  const db = value('db') ?? 'pg';
  const only = value('only')?.split(',') ?? [...PARTS];
  const strange = only.filter((part) => !(PARTS as readonly string[]).includes(part));
  if (strange.length > 0) throw new Error(`--only: unknown part(s) ${strange.join(', ')} (${PARTS.join(', ')})`);
  // A partial run would replace the whole section with part of it.
  if (argv.includes('--write') && only.length < PARTS.length) throw new Error('--write writes the whole section: not with --only');
  const quick = argv.includes('--quick');
  return {
    quick,
    write: argv.includes('--write'),
    /** Drains per set of hooks, in alternating order: the ratio is taken over all of them. */
    rounds: Number(value('rounds') ?? (quick ? 1 : 2)),
    dialects: (db === 'both' ? ['pg', 'sqlite'] : [db]) as Dialect[],
    parts: new Set(only as Part[]),
  };
}

const options = parseArgs(process.argv.slice(2));
const SIZES = options.quick
  ? { hooks: 16, pingsPerHook: 40, warmupPingsPerHook: 5, idleBuilds: 30, drainBuilds: 300, drainWarmup: 100, hookedWarmup: 20 }
  : { hooks: 16, pingsPerHook: 250, warmupPingsPerHook: 100, idleBuilds: 200, drainBuilds: 2000, drainWarmup: 300, hookedWarmup: 40 };
/** Delivery workers per process, as the default; build workers per process, as bench/builds.ts. */
const WEBHOOK_CONCURRENCY = 4;
const BUILD_CONCURRENCY = 4;
/** Projects the drain's builds are spread over (bench/builds.ts's default); each gets a hook when hooks are on. */
const DRAIN_PROJECTS = 10;
/** Builds run before the idle delays are counted: the first ones pay for compiling the hot code. */
const IDLE_WARMUP_BUILDS = 5;
const TRIGGER_CONCURRENCY = 16;
const POOL_MAX = process.env.BENCH_POOL_MAX ?? '4';
/** Any phase waiting on deliveries or builds gives up after this long: a run stays bounded even when something sticks. */
const WAIT_LIMIT_MS = options.quick ? 90_000 : 240_000;
const FINISH_EVENTS = ['build.succeeded', 'build.failed'];

const SERVER_ENV: Record<string, string> = {
  BUILD_TIME_SCALE: '0',
  BUILD_QUEUE_LIMIT: '100000',
  BUILD_FAIL_RATE: '0.5',
  BUILD_DRAIN_S: '1',
  // As bench/builds.ts: one connection per build worker, so that the drains compare with its figures.
  DATABASE_POOL_MAX: POOL_MAX,
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
  WEBHOOK_CONCURRENCY: String(WEBHOOK_CONCURRENCY),
  BUILD_CONCURRENCY: String(BUILD_CONCURRENCY),
};
/** A process that queues work for later and runs none of it: no build worker, no delivery worker, no fan-out. */
const API_ONLY_ENV = { ...SERVER_ENV, BUILD_CONCURRENCY: '0', WEBHOOK_CONCURRENCY: '0' };

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

/** The value at quantile q (nearest rank) of `values`, sorted here. */
function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

const fixed = (value: number | undefined, digits: number) => (value === undefined || !Number.isFinite(value) ? '—' : value.toFixed(digits));
const count = (value: number) => value.toLocaleString('en-US');
const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));
/** This machine's clock in ms since the epoch, to the microsecond: receiver arrivals are compared with PostgreSQL's. */
const nowMs = () => performance.timeOrigin + performance.now();

/**
 * Every hook on or off, straight in the database: claims only take an active hook's deliveries, so a backlog waits
 * until every worker process is ready. No event is logged (only a disabling with a reason is).
 */
const setHooksActive = (url: string, active: boolean) =>
  onDatabase(
    url,
    (db) => void db.prepare('update hooks set active = ?').run(active ? 1 : 0),
    async (sql) => void (await sql`update hooks set active = ${active}`),
  );

interface Backlog {
  /** Deliveries pending or in flight. */
  pending: number;
  /** Logged events the fan-out has not read yet (PostgreSQL: sequenced ones), and events not sequenced yet. */
  unfanned: number;
  unsequenced: number;
}

const BACKLOG_SQL = `select (select count(*) from deliveries where status in ('pending', 'delivering')) as pending,
  (select coalesce(max(id), 0) from events) - (select value from event_marks where name = 'webhooks') as unfanned,
  (select count(*) from events where id is null) as unsequenced`;

/** A row as either driver returns it: SQLite's counts are numbers, PostgreSQL's bigint counts strings. */
type RawRow<K extends string> = Record<K, number | string>;

const readBacklog = (url: string): Promise<Backlog> =>
  onDatabase<RawRow<keyof Backlog>>(
    url,
    (db) => db.prepare<[], RawRow<keyof Backlog>>(BACKLOG_SQL).get()!,
    async (sql) => (await sql.unsafe<RawRow<keyof Backlog>[]>(BACKLOG_SQL))[0]!,
  ).then((row) => ({ pending: Number(row.pending), unfanned: Number(row.unfanned), unsequenced: Number(row.unsequenced) }));

const backlogEmpty = (backlog: Backlog) => backlog.pending + backlog.unfanned + backlog.unsequenced === 0;
const describeBacklog = (backlog: Backlog) =>
  `${backlog.pending} deliveries pending, ${backlog.unfanned} events not fanned out, ${backlog.unsequenced} not sequenced`;

/** The mean duration of the attempts' POSTs (ms, as the sender measured them: connection, request, answer). */
const meanPostMs = (url: string) =>
  onDatabase<RawRow<'mean'>>(
    url,
    (db) => db.prepare<[], RawRow<'mean'>>('select avg(duration_ms) as mean from delivery_attempts').get()!,
    async (sql) => (await sql.unsafe<RawRow<'mean'>[]>('select avg(duration_ms)::float8 as mean from delivery_attempts'))[0]!,
  ).then((row) => Number(row.mean));

const STATUSES_SQL = 'select status, count(*) as n, sum(attempts) as attempts from deliveries group by status';
/** Deliveries by status, with their attempts: every one should have succeeded at its first attempt. */
const deliveryStatuses = (url: string) =>
  onDatabase<RawRow<'status' | 'n' | 'attempts'>[]>(
    url,
    (db) => db.prepare<[], RawRow<'status' | 'n' | 'attempts'>>(STATUSES_SQL).all(),
    async (sql) => [...(await sql.unsafe<RawRow<'status' | 'n' | 'attempts'>[]>(STATUSES_SQL))],
  ).then((rows) => rows.map((row) => ({ status: String(row.status), n: Number(row.n), attempts: Number(row.attempts) })));

/** Waits until nothing is left to deliver (deliveries, events to fan out or sequence); the backlog then, or the last seen. */
async function waitDelivered(url: string, timeoutMs: number): Promise<{ settled: boolean; backlog: Backlog }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const backlog = await readBacklog(url);
    if (backlogEmpty(backlog) || Date.now() > deadline) return { settled: backlogEmpty(backlog), backlog };
    await sleep(200);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The receiver

interface Arrival {
  /** When the request's head arrived (this machine's clock, ms since the epoch). */
  at: number;
  messageId: string;
  type: string;
  /** The body's `timestamp`: the event's `created_at` (ms since the epoch; NaN for a body without one). */
  eventAt: number;
  /** For a build event: the build's id and `finished_at` (ms since the epoch, NaN while it has none). */
  buildId?: number;
  finishedAt?: number;
}

/** The fields of a delivery's body this benchmark reads, from the parsed JSON, without trusting its shape. */
function readBody(text: string): { type: string; eventAt: number; buildId?: number; finishedAt?: number } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { type: '?', eventAt: Number.NaN };
  }
  const body = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  const data = typeof body.data === 'object' && body.data !== null ? (body.data as Record<string, unknown>) : {};
  const type = typeof body.type === 'string' ? body.type : '?';
  const eventAt = typeof body.timestamp === 'string' ? Date.parse(body.timestamp) : Number.NaN;
  if (!type.startsWith('build.') || typeof data.id !== 'number') return { type, eventAt };
  return { type, eventAt, buildId: data.id, finishedAt: typeof data.finished_at === 'string' ? Date.parse(data.finished_at) : Number.NaN };
}

/**
 * Answers every POST with 204 once its body is in, and keeps each phase's deliveries (those to its path prefix; a
 * delivery is counted once, by `webhook-id`, however often it is sent). Watchers run synchronously on each new
 * delivery, so that a CPU sample can be taken at the very arrival that starts or ends a measurement.
 */
class Receiver {
  readonly #server: Server;
  #prefix = '/none/';
  #seen = new Set<string>();
  #watchers = new Set<(arrival: Arrival) => void>();
  arrivals: Arrival[] = [];
  duplicates = 0;
  /** Deliveries to another phase's path (a process of an earlier phase still sending): none expected. */
  strays = 0;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<Receiver> {
    const server = createServer((request, response) => receiver.handle(request, response));
    const receiver = new Receiver(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return receiver;
  }

  get port(): number {
    const address = this.#server.address();
    if (typeof address !== 'object' || !address) throw new Error('the receiver is not listening');
    return address.port;
  }

  /** Starts a phase: deliveries to `/<phase>/…` count from now on, the earlier ones are forgotten. */
  phase(name: string): string {
    this.#prefix = `/${name}-${randomBytes(3).toString('hex')}/`;
    this.#seen = new Set();
    this.arrivals = [];
    this.duplicates = 0;
    this.strays = 0;
    return `http://127.0.0.1:${this.port}${this.#prefix}`;
  }

  handle(request: IncomingMessage, response: ServerResponse): void {
    const at = nowMs();
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      response.writeHead(204).end();
      if (!request.url?.startsWith(this.#prefix)) {
        this.strays++;
        return;
      }
      const messageId = String(request.headers['webhook-id'] ?? '');
      if (this.#seen.has(messageId)) {
        this.duplicates++;
        return;
      }
      this.#seen.add(messageId);
      const arrival: Arrival = { at, messageId, ...readBody(Buffer.concat(chunks).toString('utf8')) };
      this.arrivals.push(arrival);
      for (const watcher of [...this.#watchers]) watcher(arrival);
    });
  }

  watch(watcher: (arrival: Arrival) => void): () => void {
    this.#watchers.add(watcher);
    return () => void this.#watchers.delete(watcher);
  }

  /** Resolves once `done()` holds (checked now and at each new delivery); rejects after `timeoutMs`. */
  until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        unwatch();
        reject(new Error(`no ${what} within ${timeoutMs} ms (${this.arrivals.length} deliveries received)`));
      }, timeoutMs);
      const unwatch = this.watch(() => {
        if (!done()) return;
        clearTimeout(timer);
        unwatch();
        resolve();
      });
    });
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Phases: a scratch database and the processes on it, all cleaned up at the end, on failure, and on Ctrl-C

class Phase {
  readonly #running = new Set<ServerProcess>();
  /** Every process started, for the failure message. */
  readonly started: ServerProcess[] = [];

  constructor(
    readonly label: string,
    readonly database: ScratchDatabase,
  ) {}

  async start(count: number, env: Record<string, string>, prefix: string): Promise<ServerProcess[]> {
    const servers = await startServers(count, { ...env, DATABASE_URL: this.database.url }, prefix, 60_000);
    for (const server of servers) {
      this.#running.add(server);
      this.started.push(server);
    }
    return servers;
  }

  async stop(servers: Iterable<ServerProcess>): Promise<void> {
    await Promise.all(
      [...servers].map(async (server) => {
        await stopServer(server, 12_000);
        this.#running.delete(server);
      }),
    );
  }

  async close(): Promise<void> {
    await this.stop(this.#running);
    await this.database.drop();
  }
}

const phases = new Set<Phase>();
/** Set on Ctrl-C: a phase failing because its processes were just stopped waits for the exit instead of reporting it. */
let interrupted = false;

async function inPhase<T>(label: string, dialect: Dialect, body: (phase: Phase) => Promise<T>): Promise<T> {
  const phase = new Phase(label, await scratchDatabase(dialect));
  phases.add(phase);
  try {
    return await body(phase);
  } catch (error) {
    if (interrupted) await new Promise<never>(() => {});
    throw new Error(`${label}: ${errorText(error)}\n${describeServers(phase.started).slice(-8000)}`, { cause: error });
  } finally {
    phases.delete(phase);
    await phase.close().catch((error: unknown) => console.error(`${label}: cleaning up: ${errorText(error)}`));
  }
}

// Ctrl-C or a kill: the children and the scratch databases go too, rather than outlive the benchmark.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    console.error(`\n${signal}: stopping the Usine processes and dropping the scratch databases…`);
    void Promise.allSettled([...phases].map((phase) => phase.close())).finally(() => process.exit(130));
  });
}

/** Projects named for this run, each with a hook to `url` + its index when `events` is given; returns their ids. */
async function createProjects(api: ApiClient, count: number, hook?: { url: string; events: string[] }): Promise<number[]> {
  const ids: number[] = [];
  for (let index = 0; index < count; index++) {
    const project = await api.expect<{ id: number }>(201, 'POST', '/projects', {
      name: `bench-hooks-${index}-${randomBytes(3).toString('hex')}`,
      repo: `https://github.com/demo/bench-hooks-${index}`,
    });
    ids.push(project.id);
  }
  if (hook) await createHooks(api, ids, hook);
  return ids;
}

async function createHooks(api: ApiClient, projectIds: readonly number[], hook: { url: string; events: string[] }): Promise<number[]> {
  const ids: number[] = [];
  for (const [index, projectId] of projectIds.entries()) {
    const created = await api.expect<{ id: number }>(201, 'POST', `/projects/${projectId}/hooks`, {
      url: `${hook.url}${index}`,
      events: hook.events,
      description: 'bench/webhooks.ts',
    });
    ids.push(created.id);
  }
  return ids;
}

const cpuOf = (servers: readonly ServerProcess[]) => groupCpuMs(servers.map((server) => server.pid));
const cpuPer = (before: GroupCpuMs | undefined, after: GroupCpuMs | undefined, units: number) =>
  before && after
    ? { usineMs: (after.processesMs - before.processesMs) / units, postgresMs: (after.postgresMs - before.postgresMs) / units }
    : undefined;

// ---------------------------------------------------------------------------------------------------------------
// 1. Deliveries per second

interface ThroughputResult {
  dialect: Dialect;
  processes: number;
  hooks: number;
  measured: number;
  seconds: number;
  /** CPU per delivery (ms) of the Usine processes and of every `postgres` process, over the measured deliveries. */
  cpu?: { usineMs: number; postgresMs: number };
  /** The POSTs' mean duration (ms): with the rate, how many were in flight on average. */
  meanPostMs: number;
  /** Attempts beyond one per delivery (retries), deliveries received twice, and deliveries not succeeded. */
  extraAttempts: number;
  duplicates: number;
  notSucceeded: number;
}

/**
 * A backlog of pings, one delivery each, round-robin over the hooks, queued by an API-only process; the hooks are
 * then switched off, the worker processes start, and once every one is ready the hooks are switched on in one
 * statement. The idle workers find the backlog at their next poll (within 0.5 s); the first deliveries, a warm-up,
 * also absorb that staggered start.
 */
async function deliveriesPerSecond(dialect: Dialect, processes: number, receiver: Receiver): Promise<ThroughputResult> {
  const label = `deliveries/s, ${dialect === 'pg' ? 'PostgreSQL' : 'SQLite'}, ${processes} process${processes > 1 ? 'es' : ''}`;
  return inPhase(label, dialect, async (phase) => {
    const url = receiver.phase(`throughput${processes}`);
    const [api] = await phase.start(1, API_ONLY_ENV, 'api-only');
    const client = apiClient(api!.url, await loginAdmin(api!.url));
    const projectIds = await createProjects(client, SIZES.hooks);
    const hookIds = await createHooks(client, projectIds, { url, events: ['*'] });
    const warmup = SIZES.hooks * SIZES.warmupPingsPerHook;
    const total = warmup + SIZES.hooks * SIZES.pingsPerHook;
    await mapLimit(
      Array.from({ length: total }, (_, index) => index % SIZES.hooks),
      TRIGGER_CONCURRENCY,
      (hook) => client.expect(202, 'POST', `/projects/${projectIds[hook]!}/hooks/${hookIds[hook]!}/ping`),
    );
    await phase.stop([api!]);
    await setHooksActive(phase.database.url, false);
    const workers = await phase.start(processes, { ...SERVER_ENV, BUILD_CONCURRENCY: '0' }, 'deliverer');

    let before: GroupCpuMs | undefined;
    let after: GroupCpuMs | undefined;
    const unwatch = receiver.watch(() => {
      if (receiver.arrivals.length === warmup) before = cpuOf(workers);
      if (receiver.arrivals.length === total) after = cpuOf(workers);
    });
    await setHooksActive(phase.database.url, true);
    try {
      await receiver.until(() => receiver.arrivals.length >= total, WAIT_LIMIT_MS, `${total} deliveries`);
    } catch (error) {
      throw new Error(`${errorText(error)}; ${describeBacklog(await readBacklog(phase.database.url))}`, { cause: error });
    } finally {
      unwatch();
    }
    const times = receiver.arrivals.map((arrival) => arrival.at).sort((a, b) => a - b);
    const measured = total - warmup;
    const seconds = (times[total - 1]! - times[warmup - 1]!) / 1000;
    // The workers record each attempt after the receiver answered: let the last ones land before reading them.
    await waitDelivered(phase.database.url, 10_000);
    const statuses = await deliveryStatuses(phase.database.url);
    return {
      dialect,
      processes,
      hooks: SIZES.hooks,
      measured,
      seconds,
      cpu: cpuPer(before, after, measured),
      meanPostMs: await meanPostMs(phase.database.url),
      extraAttempts: statuses.reduce((sum, row) => sum + row.attempts - row.n, 0),
      duplicates: receiver.duplicates,
      notSucceeded: statuses.filter((row) => row.status !== 'succeeded').reduce((sum, row) => sum + row.n, 0),
    };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// 2a. Delay from a build's finish to its delivery, idle

interface DelayResult {
  label: string;
  dialect: Dialect;
  builds: number;
  /** Deliveries received and counted (a build's finish), out of `builds`. */
  received: number;
  /** Arrival minus the event's created_at, and minus the build's finished_at (ms). */
  fromEvent: number[];
  fromFinish: number[];
}

const finishDelivery = (arrival: Arrival) => arrival.buildId !== undefined && FINISH_EVENTS.includes(arrival.type);

function delaysOf(arrivals: readonly Arrival[], builds: ReadonlySet<number>) {
  const counted = arrivals.filter((arrival) => finishDelivery(arrival) && builds.has(arrival.buildId!));
  return {
    received: counted.length,
    fromEvent: counted.map((arrival) => arrival.at - arrival.eventAt).filter(Number.isFinite),
    fromFinish: counted.map((arrival) => arrival.at - arrival.finishedAt!).filter(Number.isFinite),
  };
}

/**
 * One process (build and delivery workers), one project with a hook on its builds' finishes, builds triggered one at
 * a time: each the moment the previous one's delivery arrived, and a short pause (the worker records that attempt).
 */
async function idleDelay(dialect: Dialect, receiver: Receiver): Promise<DelayResult> {
  const label = 'idle, one build at a time';
  return inPhase(`delay, ${label}`, dialect, async (phase) => {
    const url = receiver.phase('idle');
    const [server] = await phase.start(1, SERVER_ENV, 'usine');
    const client = apiClient(server!.url, await loginAdmin(server!.url));
    const [projectId] = await createProjects(client, 1, { url, events: FINISH_EVENTS });
    const counted = new Set<number>();
    for (let index = 0; index < IDLE_WARMUP_BUILDS + SIZES.idleBuilds; index++) {
      const { id } = await client.expect<{ id: number }>(201, 'POST', `/projects/${projectId!}/builds`);
      const delivered = () => receiver.arrivals.some((arrival) => finishDelivery(arrival) && arrival.buildId === id);
      await receiver.until(delivered, 30_000, `delivery of build ${id}'s finish`);
      if (index >= IDLE_WARMUP_BUILDS) counted.add(id);
      await sleep(20);
    }
    return { label, dialect, builds: counted.size, ...delaysOf(receiver.arrivals, counted) };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// 2b and 3. The build drain, without hooks and with them

type HookSet = 'none' | 'all' | 'finish';

interface DrainResult {
  dialect: Dialect;
  hooks: HookSet;
  round: number;
  builds: number;
  jobs: number;
  /** From the first drained job's `started_at` to the last one's `finished_at` (the database's clock). */
  seconds: number;
  cpu?: { usineMs: number; postgresMs: number };
  /** What was left to deliver when the drain was released (the warm-up's), and when its last job had finished. */
  backlogAtRelease?: Backlog;
  backlogAtEnd?: Backlog;
  /** Deliveries that arrived between the drain's first job start and its last job's finish. */
  deliveriesDuring: number;
  /** `finish` hooks: the delay of each drained build's finish delivery (the run waits for them after the drain). */
  delay?: DelayResult;
}

/** Queued and running jobs, as /status counts them. */
async function activeJobs(server: ServerProcess): Promise<{ queued: number; running: number }> {
  const answer = await apiClient(server.url).get<{ jobs?: { queued: number; running: number } | null }>('/status');
  const jobs = typeof answer.body === 'object' ? answer.body?.jobs : undefined;
  if (!jobs || typeof jobs.queued !== 'number' || typeof jobs.running !== 'number') {
    throw new Error(`/status without job counts (HTTP ${answer.status})`);
  }
  return jobs;
}

/** As bench/builds.ts: no job queued or running (/status), then every build of `expected` over (the database). */
async function waitIdle(
  server: ServerProcess,
  url: string,
  expected: ReadonlySet<number>,
): Promise<{ builds: BuildTimes[]; jobs: JobTimes[] }> {
  const deadline = Date.now() + WAIT_LIMIT_MS;
  for (;;) {
    const { queued, running } = await activeJobs(server);
    if (queued + running === 0) {
      const runs = await readRuns(url);
      const over = (build: BuildTimes) => build.finished_at !== null && build.status !== 'queued' && build.status !== 'running';
      const open = runs.builds.filter((build) => expected.has(build.id) && !over(build));
      if (open.length === 0) return runs;
    }
    if (Date.now() > deadline) throw new Error(`${queued} jobs queued and ${running} running after ${WAIT_LIMIT_MS} ms`);
    await sleep(100);
  }
}

/** Jobs that ran to their end (skipped ones never ran). */
const ran = (job: JobTimes) => job.started_at !== null && job.finished_at !== null && (job.status === 'success' || job.status === 'fail');

const HOOK_EVENTS: Record<Exclude<HookSet, 'none'>, string[]> = { all: ['*'], finish: FINISH_EVENTS };

/**
 * bench/builds.ts's drain on one process: warm-up and drain builds queued by an API-only process and held out of the
 * queue (bench/database.ts), the worker process started, the hooks (if any) created on every project — after the
 * hold, so its `job.canceled` events, logged before them, are not theirs — then the warm-up released and run, its
 * deliveries waited for, and the drain released in one statement. Jobs/s from the first drained job's start to the
 * last one's finish, as bench/builds.ts.
 */
async function drain(dialect: Dialect, hooks: HookSet, round: number, receiver: Receiver): Promise<DrainResult> {
  const label = `drain, hooks ${hooks}, round ${round}`;
  return inPhase(label, dialect, async (phase) => {
    const url = receiver.phase(`drain-${hooks}`);
    const [api] = await phase.start(1, API_ONLY_ENV, 'api-only');
    const token = await loginAdmin(api!.url);
    const apiOnly = apiClient(api!.url, token);
    const projectIds = await createProjects(apiOnly, DRAIN_PROJECTS);
    const builds = SIZES.drainWarmup + SIZES.drainBuilds;
    const queuedIds = await mapLimit(
      Array.from({ length: builds }, (_, index) => projectIds[index % projectIds.length]!),
      TRIGGER_CONCURRENCY,
      async (projectId) => (await apiOnly.expect<{ id: number }>(201, 'POST', `/projects/${projectId}/builds`)).id,
    );
    await phase.stop([api!]);
    const held = await holdQueued(phase.database.url);
    if (held !== builds) throw new Error(`${held} jobs held, expected ${builds} (one per build)`);

    const [worker] = await phase.start(1, SERVER_ENV, 'usine');
    // The warm-up in two parts: builds alone, then (the hooks created) a few more whose deliveries warm up their code
    // too. Not all of it with hooks: with `*`, about a dozen deliveries per build would take longer than the drain.
    const warmupIds = new Set(await releaseHeld(phase.database.url, SIZES.drainWarmup - SIZES.hookedWarmup));
    await waitIdle(worker!, phase.database.url, warmupIds);
    if (hooks !== 'none') await createHooks(apiClient(worker!.url, token), projectIds, { url, events: HOOK_EVENTS[hooks] });
    const hooked = await releaseHeld(phase.database.url, SIZES.hookedWarmup);
    await waitIdle(worker!, phase.database.url, new Set(hooked));
    for (const id of hooked) warmupIds.add(id);
    // The drain starts with nothing left to deliver, as the one without hooks starts with nothing left to run.
    const backlogAtRelease = hooks === 'none' ? undefined : (await waitDelivered(phase.database.url, WAIT_LIMIT_MS / 4)).backlog;
    if (backlogAtRelease && !backlogEmpty(backlogAtRelease)) console.error(`  (drain released with ${describeBacklog(backlogAtRelease)})`);

    const drainIds = new Set(queuedIds.filter((id) => !warmupIds.has(id)));
    const released = await releaseHeld(phase.database.url);
    const before = cpuOf([worker!]);
    if (warmupIds.size !== SIZES.drainWarmup || released.length !== SIZES.drainBuilds || !released.every((id) => drainIds.has(id))) {
      throw new Error(`${released.length} builds released, expected the ${SIZES.drainBuilds} not in the warm-up`);
    }
    const runs = await waitIdle(worker!, phase.database.url, drainIds);
    const after = cpuOf([worker!]);
    const backlogAtEnd = hooks === 'none' ? undefined : await readBacklog(phase.database.url);
    const drained = runs.builds.filter((build) => drainIds.has(build.id));
    const jobs = runs.jobs.filter((job) => drainIds.has(job.build_id) && ran(job));
    const firstStarted = Math.min(...jobs.map((job) => job.started_at!));
    const lastFinished = Math.max(...jobs.map((job) => job.finished_at!));
    if (drained.length !== SIZES.drainBuilds || !Number.isFinite(firstStarted) || !Number.isFinite(lastFinished)) {
      throw new Error(`expected ${SIZES.drainBuilds} finished builds, found ${drained.length}`);
    }
    const deliveriesDuring = receiver.arrivals.filter((arrival) => arrival.at >= firstStarted && arrival.at <= lastFinished).length;
    const result: DrainResult = {
      dialect,
      hooks,
      round,
      builds: drained.length,
      jobs: jobs.length,
      seconds: (lastFinished - firstStarted) / 1000,
      cpu: cpuPer(before, after, jobs.length),
      backlogAtRelease,
      backlogAtEnd,
      deliveriesDuring,
    };
    if (hooks === 'finish') {
      // Every drained build's finish delivery, the ones still queued when the drain ended included: the tail is the point.
      const missing = new Set(drainIds);
      for (const arrival of receiver.arrivals) if (finishDelivery(arrival)) missing.delete(arrival.buildId!);
      const unwatch = receiver.watch((arrival) => finishDelivery(arrival) && missing.delete(arrival.buildId!));
      await receiver
        .until(() => missing.size === 0, WAIT_LIMIT_MS / 2, 'finish delivery of every drained build')
        .catch((error: unknown) => console.error(`  (${errorText(error)}: ${missing.size} of ${drainIds.size} missing; counted as such)`));
      unwatch();
      const label = `under the build drain (${count(SIZES.drainBuilds)} builds${options.rounds > 1 ? `, round ${round}` : ''})`;
      result.delay = { label, dialect, builds: drainIds.size, ...delaysOf(receiver.arrivals, drainIds) };
    }
    return result;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Report

const dbName = (dialect: Dialect) => (dialect === 'pg' ? 'PostgreSQL' : 'SQLite');
const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
const table = (header: readonly string[], rows: readonly (readonly string[])[]) =>
  [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
const percentiles = (values: readonly number[], qs: readonly number[]) => qs.map((q) => fixed(quantile(values, q), 1)).join(' / ');

function throughputTable(results: readonly ThroughputResult[]): string {
  return table(
    [
      'Set-up',
      'Hooks',
      'Delivery workers',
      'Deliveries measured',
      'Time (s)',
      'Deliveries/s',
      'POST: mean (ms)',
      'POSTs in flight per process (mean)',
      'Usine CPU ms/delivery',
      'PostgreSQL CPU ms/delivery',
      'Retries / duplicates / not succeeded',
    ],
    results.map((result) => [
      `${dbName(result.dialect)}, ${result.processes} process${result.processes > 1 ? 'es' : ''}`,
      String(result.hooks),
      String(result.processes * WEBHOOK_CONCURRENCY),
      count(result.measured),
      fixed(result.seconds, 2),
      fixed(result.measured / result.seconds, 0),
      fixed(result.meanPostMs, 1),
      fixed(((result.measured / result.seconds) * result.meanPostMs) / 1000 / result.processes, 2),
      fixed(result.cpu?.usineMs, 2),
      result.dialect === 'pg' ? fixed(result.cpu?.postgresMs, 2) : '—',
      `${result.extraAttempts} / ${result.duplicates} / ${result.notSucceeded}`,
    ]),
  );
}

function delayTable(results: readonly DelayResult[]): string {
  return table(
    ['Database', 'Condition', 'Builds', 'Delivered', 'From the event: p50 / p99 / max (ms)', 'From finished_at: p50 / p99 (ms)'],
    results.map((result) => [
      dbName(result.dialect),
      result.label,
      count(result.builds),
      count(result.received),
      percentiles(result.fromEvent, [0.5, 0.99, 1]),
      percentiles(result.fromFinish, [0.5, 0.99]),
    ]),
  );
}

const HOOK_LABEL: Record<HookSet, string> = {
  none: 'none',
  all: `\`*\` on each of the ${DRAIN_PROJECTS} projects`,
  finish: `\`build.succeeded\`, \`build.failed\` on each of the ${DRAIN_PROJECTS} projects`,
};
const jobsPerS = (result: DrainResult) => result.jobs / result.seconds;
const ENGINE_TARGET = 0.8;

const backlogCell = (backlog: Backlog | undefined) =>
  backlog ? `${count(backlog.pending)} deliveries + ${count(backlog.unfanned + backlog.unsequenced)} events` : '—';

function drainTable(results: readonly DrainResult[]): string {
  const baseline = (of: DrainResult) =>
    results.find((result) => result.dialect === of.dialect && result.round === of.round && result.hooks === 'none');
  return table(
    [
      'Database',
      'Round',
      'Hooks',
      'Drain: jobs run',
      'Drain (s)',
      'Jobs/s',
      '÷ without hooks',
      'Usine CPU ms/job',
      'PostgreSQL CPU ms/job',
      'Left to deliver at its release',
      'Deliveries during the drain (/s)',
      'Left to deliver at its end',
    ],
    results.map((result) => [
      dbName(result.dialect),
      String(result.round),
      HOOK_LABEL[result.hooks],
      count(result.jobs),
      fixed(result.seconds, 2),
      fixed(jobsPerS(result), 0),
      result.hooks === 'none' ? '—' : `${fixed(jobsPerS(result) / jobsPerS(baseline(result) ?? result), 2)}×`,
      fixed(result.cpu?.usineMs, 2),
      result.dialect === 'pg' ? fixed(result.cpu?.postgresMs, 2) : '—',
      backlogCell(result.backlogAtRelease),
      result.hooks === 'none' ? '—' : `${count(result.deliveriesDuring)} (${fixed(result.deliveriesDuring / result.seconds, 0)})`,
      backlogCell(result.backlogAtEnd),
    ]),
  );
}

/** Every round's jobs over every round's seconds: one figure per set of hooks. */
function pooledJobsPerS(drains: readonly DrainResult[], dialect: Dialect, hooks: HookSet): number {
  const these = drains.filter((result) => result.dialect === dialect && result.hooks === hooks);
  return these.reduce((sum, result) => sum + result.jobs, 0) / these.reduce((sum, result) => sum + result.seconds, 0);
}

function verdicts(drains: readonly DrainResult[]): string[] {
  return options.dialects.flatMap((dialect) => {
    const off = pooledJobsPerS(drains, dialect, 'none');
    const on = pooledJobsPerS(drains, dialect, 'all');
    if (!Number.isFinite(off) || !Number.isFinite(on)) return [];
    const ratio = on / off;
    const quick = options.quick ? ' (quick run: indicative only)' : '';
    const verdict = `target ≥ ${ENGINE_TARGET}×: ${ratio >= ENGINE_TARGET ? 'met' : 'not met'}${quick}`;
    const rounds = options.rounds > 1 ? ` (the ${options.rounds} rounds' jobs over their seconds)` : '';
    const finish = pooledJobsPerS(drains, dialect, 'finish') / off;
    return [
      `- ${dbName(dialect)}: engine with hooks on (\`*\`) ÷ without = **${ratio.toFixed(2)}×**${rounds}; ${verdict}`,
      ...(Number.isFinite(finish) ? [`- ${dbName(dialect)}: with hooks on builds' finishes only ÷ without = ${finish.toFixed(2)}×`] : []),
    ];
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Run

const started = Date.now();
const receiver = await Receiver.start();
const throughputs: ThroughputResult[] = [];
const delays: DelayResult[] = [];
const drains: DrainResult[] = [];
const status = (text: string) => process.stdout.write(text);
try {
  for (const dialect of options.dialects) {
    // Several processes on one SQLite file are not a set-up Usine's engine is benchmarked in (bench/builds.ts).
    for (const processes of !options.parts.has('throughput') ? [] : dialect === 'pg' ? [1, 3] : [1]) {
      status(`[${dialect}] deliveries/s, ${processes} process(es), ${SIZES.hooks} hooks… `);
      const result = await deliveriesPerSecond(dialect, processes, receiver);
      throughputs.push(result);
      console.log(`${fixed(result.measured / result.seconds, 0)}/s (Usine ${fixed(result.cpu?.usineMs, 2)} ms CPU/delivery)`);
    }
    if (options.parts.has('idle')) {
      status(`[${dialect}] delay from a build's finish to its delivery, idle… `);
      const idle = await idleDelay(dialect, receiver);
      delays.push(idle);
      console.log(`p50 / p99 ${percentiles(idle.fromEvent, [0.5, 0.99])} ms`);
    }
    // Odd rounds go none → all → finish, even ones back: a drift of the machine over the run weighs on both sides.
    const order = (round: number) => (round % 2 === 1 ? (['none', 'all', 'finish'] as const) : (['finish', 'all', 'none'] as const));
    const rounds = Array.from({ length: options.rounds }, (_, index) => index + 1);
    const drainRuns = rounds.flatMap((round) => order(round).map((hooks) => ({ hooks, round })));
    for (const { hooks, round } of options.parts.has('drain') ? drainRuns : []) {
      status(`[${dialect}] drain of ${SIZES.drainBuilds} builds, round ${round}, hooks: ${hooks}… `);
      const result = await drain(dialect, hooks, round, receiver);
      drains.push(result);
      if (result.delay) delays.push(result.delay);
      console.log(
        `${fixed(jobsPerS(result), 0)} jobs/s` +
          (hooks === 'none' ? '' : `, ${result.deliveriesDuring} deliveries during it; then ${describeBacklog(result.backlogAtEnd!)}`) +
          (result.delay ? `; finish → delivery p50 / p99 ${percentiles(result.delay.fromEvent, [0.5, 0.99])} ms` : ''),
      );
    }
  }
} finally {
  await receiver.close();
}

const machine = await describeMachine(options.dialects);
const mode = options.quick ? 'quick (smoke run: small sizes, figures indicative only)' : 'full';
const pings = count(SIZES.hooks * (SIZES.pingsPerHook + SIZES.warmupPingsPerHook));
const warmupPings = count(SIZES.hooks * SIZES.warmupPingsPerHook);
const queued = count(SIZES.drainWarmup + SIZES.drainBuilds);
const drainRounds =
  options.rounds > 1
    ? `${options.rounds} rounds, the odd ones without hooks, with \`*\`, with the finishes only, the even ones in the
  other order; each round's ratio is to its own drain without hooks, the verdict's to all rounds' jobs over all their
  seconds.`
    : 'One round: without hooks, then with `*`, then with the finishes only.';
const section = `## Webhooks

\`node --import tsx bench/webhooks.ts\` (\`npm run bench:webhooks\`; \`-- --quick\` for a smoke run, \`-- --write\` to write
this section): Usine processes started as bench/builds.ts starts them (\`node --import tsx src/main.ts\`, logger at
\`warn\`, \`DATABASE_POOL_MAX=${POOL_MAX}\`, \`BUILD_TIME_SCALE=0\`, \`BUILD_FAIL_RATE=0.5\`), a scratch database per
measurement, and a receiver in the benchmark's own process (node:http on 127.0.0.1, answering 204 as soon as a
request's body is in, counting each \`webhook-id\` once); \`WEBHOOK_ALLOW_PRIVATE_NETWORKS=true\` so that loopback may
receive. Each delivery opens a new connection (the sender uses no keep-alive pool).

- **Deliveries/s**: ${SIZES.hooks} hooks (one per project, events \`*\`) and ${pings} pings (\`POST …/hooks/:id/ping\`, one
  delivery each, round-robin over the hooks) queued by an API-only process (\`WEBHOOK_CONCURRENCY=0\`); the hooks are
  switched off in the database, the processes start (\`WEBHOOK_CONCURRENCY=${WEBHOOK_CONCURRENCY}\`, no build worker), and once every
  one is ready the hooks are switched on in one statement. The first ${warmupPings} arrivals are a warm-up (and absorb the
  workers' next poll, up to 0.5 s); the rate is from the last of them to the last arrival. ${SIZES.hooks} hooks, since a hook
  has at most one delivery in flight: fewer would cap the ${3 * WEBHOOK_CONCURRENCY} workers of three processes. POSTs in flight: the
  rate × the attempts' mean duration (the sender's own measure), per process, out of ${WEBHOOK_CONCURRENCY}. CPU: the Usine
  processes' and every \`postgres\` process's (\`/proc\`; the machine's other databases included) over the same
  deliveries. Retries, duplicates (a \`webhook-id\` received twice) and deliveries not succeeded should all be 0.
- **Delay from a build's finish to its delivery**: for a \`build.succeeded\` or \`build.failed\` delivery, its arrival
  minus the event's \`created_at\` (the body's \`timestamp\`: PostgreSQL's \`now()\`, the start of the transaction that
  finished the build; ISO-8601 to the millisecond), and minus the build's \`finished_at\` (\`data.finished_at\`, the
  moment that transaction's update ran). The path: commit, the event log's sequencer (at most every 20 ms under
  load), the fan-out into deliveries, a delivery worker's claim, the POST. **Idle**: one process, one project whose
  hook wants those two events, ${SIZES.idleBuilds} builds (after ${IDLE_WARMUP_BUILDS} not counted) triggered one at a time, each once the
  previous one's delivery arrived. **Under the build drain**: the drain below, with such a hook on each of its
  ${DRAIN_PROJECTS} projects; every drained build's delivery counts, those still queued when the drain ended included.
- **Engine throughput with hooks on and off**: bench/builds.ts's drain with one process (${BUILD_CONCURRENCY} build workers,
  ${WEBHOOK_CONCURRENCY} delivery workers): ${queued} builds over ${DRAIN_PROJECTS} projects queued by an API-only process and their first
  jobs held out of the queue; the process starts and runs ${count(SIZES.drainWarmup)} of them as a warm-up (the hooks, if any,
  created before its last ${SIZES.hookedWarmup}, whose deliveries are waited for: they warm up the delivery code without leaving
  a backlog to the drain); then the ${count(SIZES.drainBuilds)} others go back to the queue in one statement. Jobs/s from the
  first drained job's \`started_at\` to the last one's \`finished_at\`. With \`*\`, every event of a build (its jobs'
  too, about a dozen) is a delivery, one hook per project: the workers deliver while the build workers run, and what
  is left at the drain's end is delivered after it. Target (the issue): ≥ ${ENGINE_TARGET}× the jobs/s without hooks.
  ${drainRounds}

${[
  throughputs.length > 0 ? throughputTable(throughputs) : '',
  delays.length > 0 ? delayTable(delays) : '',
  drains.length > 0 ? `${drainTable(drains)}\n\n${verdicts(drains).join('\n')}` : '',
]
  .filter(Boolean)
  .join('\n\n')}

${machine.map((text) => `- ${text}`).join('\n')}
- Mode: ${mode}
`;

console.log(`\n${section}`);
console.log(`Done in ${((Date.now() - started) / 1000).toFixed(0)} s.`);
if (options.write) {
  writeBenchmarks(upsertSection(readBenchmarks(), '## Webhooks', section, '## Soak'));
  console.log(`Wrote the "## Webhooks" section of ${BENCHMARKS_FILE}`);
}
// Database clients of the helpers may keep the event loop alive for a while: the run is over.
process.exit(0);
