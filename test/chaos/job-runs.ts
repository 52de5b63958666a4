/**
 * The checks the chaos scenarios make on builds run as jobs (issue #16), shared by crash, outage and races:
 * - per job, about its runs: one completed run at most, pickups and hand-backs well ordered, as its own log tells it
 *   (the claim writes its pickup line in the same statement, so that log is checked strictly) and as its build's log
 *   tells it (where the pickup is written by a second statement: a process that died, or lost its database, between
 *   the two leaves a take-over with no pickup before it, accepted for those processes only);
 * - per job, about the graph: no job started before every one of its needs had finished;
 * - per build: exactly one `Build finished` line, with the build's status, unless it was canceled (then none, and no
 *   job line after the cancel's); at most one `Build #N … started` line, naming the build's number, before any pickup.
 * Rows come from plain SQL (either database) or the API: `jobRecord` reads both.
 */
import { eventsByJob, jobRunProblems, logEvents, pidOf, type JobLogEvent } from '../build-log-events.js';
import { prefixLines } from '../../src/repositories/jobs.js';

/**
 * A pipeline with parallel jobs and needs: compile, then three `unit` copies (needing compile) beside a `lint` that
 * needs nothing, then `publish` (no `needs`: every job of the earlier stages), which stores an artifact. 6 jobs, 2.5–6
 * simulated seconds end to end. `failRate` is each job's (unset: the server's BUILD_FAIL_RATE).
 */
export function chaosPipeline(failRate?: number) {
  const rate = failRate === undefined ? {} : { fail_rate: failRate };
  return {
    stages: ['build', 'test', 'publish'],
    jobs: {
      compile: { stage: 'build', duration_s: [1, 2], ...rate },
      unit: { stage: 'test', needs: ['compile'], parallel: 3, duration_s: [1, 3], ...rate },
      lint: { stage: 'test', needs: [], duration_s: [0.5, 1.5], ...rate },
      publish: { stage: 'publish', artifacts: true, duration_s: [0.5, 1], ...rate },
    },
  };
}
/** The job names a build of chaosPipeline() has, in pipeline order. */
export const CHAOS_PIPELINE_JOBS = ['compile', 'unit 1/3', 'unit 2/3', 'unit 3/3', 'lint', 'publish'];
/** The job names a build of the default pipeline has. */
export const DEFAULT_PIPELINE_JOBS = ['checkout', 'install', 'test', 'package'];

export const TERMINAL_JOB_STATUSES = ['success', 'fail', 'canceled', 'skipped'];

/** One current job (not a retried attempt), as the checks need it. Times in ms since the epoch. */
export interface JobRecord {
  id: number;
  build_id: number;
  name: string;
  status: string;
  needs: string[];
  artifacts: boolean;
  /** Its own log; undefined when it was not read (then only its build's log is checked). */
  logs?: string;
  started_at: number | null;
  finished_at: number | null;
}

const millis = (value: unknown): number | null => {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'number') return value;
  return new Date(String(value)).getTime();
};
const parsed = <T>(value: unknown): T => (typeof value === 'string' ? (JSON.parse(value) as T) : (value as T));

/**
 * A job row from SQLite (JSON as text, times as ms), PostgreSQL through postgres.js (JSON parsed, times as Dates),
 * Drizzle, or the API (times as ISO strings; no spec: `artifacts` false).
 */
export function jobRecord(row: Record<string, unknown>): JobRecord {
  const spec = row.spec === undefined ? {} : parsed<{ artifacts?: boolean }>(row.spec);
  return {
    id: Number(row.id),
    build_id: Number(row.build_id),
    name: String(row.name),
    status: String(row.status),
    needs: parsed<string[]>(row.needs),
    artifacts: spec.artifacts === true,
    logs: typeof row.logs === 'string' ? row.logs : undefined,
    started_at: millis(row.started_at),
    finished_at: millis(row.finished_at),
  };
}

/**
 * jobRunProblems, where a take-over with no pickup before it is accepted when its worker belongs to one of `deadPids`
 * (a process killed, or cut from its database, between its claim and the claim's line in the build's log).
 */
function runProblems(events: readonly JobLogEvent[], deadPids: ReadonlySet<number>): string[] {
  const blind = events.find(
    (event, index): event is Extract<JobLogEvent, { kind: 'takeover' }> =>
      event.kind === 'takeover' && events[index - 1]?.kind !== 'pickup' && deadPids.has(pidOf(event.owner)),
  );
  return jobRunProblems(events, blind === undefined ? undefined : pidOf(blind.owner));
}

/**
 * What is wrong with one job's runs, from the events of its own log (strict) and of its build's log: a job that ended
 * success or fail completed exactly one run, the last one picked up, and its last line says how it ended; a canceled
 * job completed none (its pickups still well ordered); a job that never started (skipped, or waiting) has no event.
 */
export function jobProblems(job: JobRecord, inBuildLog: readonly JobLogEvent[], deadPids: ReadonlySet<number> = new Set()): string[] {
  const problems: string[] = [];
  const sources: [string, readonly JobLogEvent[], ReadonlySet<number>][] = [["build's log", inBuildLog, deadPids]];
  if (job.logs !== undefined) {
    const own = logEvents(prefixLines(job.name, job.logs)).filter((event): event is JobLogEvent => event.kind !== 'finished');
    sources.unshift(['own log', own, new Set()]);
  }
  for (const [where, events, dead] of sources) {
    const say = (problem: string) => problems.push(`${where}: ${problem}`);
    if (job.status === 'success' || job.status === 'fail') {
      for (const problem of runProblems(events, dead)) say(problem);
      const last = events.at(-1);
      if (last?.kind === 'job_finished' && last.status !== job.status) say(`its last line says ${last.status}, its status is ${job.status}`);
    } else if (job.status === 'canceled') {
      // Stopped before its end: no finish line, and the pickups and hand-backs before the cancel well ordered.
      const finishes = events.filter((event) => event.kind === 'job_finished').length;
      if (finishes > 0) say(`canceled, yet ${finishes} job-finished lines`);
      else for (const problem of runProblems(events, dead)) if (problem !== '0 job-finished lines') say(problem);
    } else if (events.length > 0) {
      say(`${job.status}, yet ${events.length} run events (${events.map((event) => event.kind).join(', ')})`);
    }
  }
  return problems;
}

/** Jobs of one build that started before one of their needs had finished (or whose need never did). */
export function needOrderProblems(jobs: readonly JobRecord[]): string[] {
  const byName = new Map(jobs.map((job) => [job.name, job]));
  const problems: string[] = [];
  for (const job of jobs) {
    if (job.started_at === null) continue;
    for (const name of job.needs) {
      const need = byName.get(name);
      if (!need) problems.push(`${job.name} needs ${name}, which the build does not have`);
      else if (need.finished_at === null) problems.push(`${job.name} started, but its need ${name} never finished (${need.status})`);
      else if (need.finished_at > job.started_at) {
        problems.push(`${job.name} started ${need.finished_at - job.started_at} ms before its need ${name} finished`);
      }
    }
  }
  return problems;
}

const START_LINE = /^\[usine\] Build #(\d+) of .+ started$/;
const CANCEL_LINE = /^\[usine\] Build canceled by /;

/**
 * What is wrong with a terminal build's own lines: `Build finished: <status>` exactly once and with its status
 * (never when canceled: then exactly one cancel line, and no line of a job's run after it); at most one start line,
 * naming its number, and one as soon as a job's pickup is in the log, before that pickup.
 */
export function buildLogProblems(build: { number: number; status: string; logs: string }): string[] {
  const problems: string[] = [];
  const lines = build.logs.split('\n');
  const finished = logEvents(build.logs).filter((event) => event.kind === 'finished');
  const cancels = lines.filter((line) => CANCEL_LINE.test(line)).length;
  if (build.status === 'canceled') {
    if (finished.length !== 0) problems.push(`canceled, with ${finished.length} "Build finished" lines`);
    if (cancels !== 1) problems.push(`canceled, with ${cancels} cancel lines`);
    const cancelAt = lines.findIndex((line) => CANCEL_LINE.test(line));
    const after = cancelAt === -1 ? [] : logEvents(lines.slice(cancelAt + 1).join('\n')).filter((event) => event.kind !== 'finished');
    if (after.length > 0) problems.push(`${after.length} job events after the cancel line (${after.map((event) => event.kind).join(', ')})`);
  } else {
    if (finished.length !== 1) problems.push(`${build.status}, with ${finished.length} "Build finished" lines`);
    else if (finished[0]?.kind === 'finished' && finished[0].status !== build.status) problems.push(`its "Build finished" line says ${finished[0].status}, its status is ${build.status}`);
    if (cancels !== 0) problems.push(`${build.status}, with ${cancels} cancel lines`);
  }
  const starts = lines.flatMap((line, index) => {
    const match = START_LINE.exec(line);
    return match ? [{ index, number: Number(match[1]) }] : [];
  });
  const firstPickup = lines.findIndex((line) => / \[usine\] Job .+ picked up by \S+, claim \d+$/.test(line));
  if (starts.length > 1) problems.push(`${starts.length} "Build #… started" lines`);
  if (starts[0] && starts[0].number !== build.number) problems.push(`its start line names build #${starts[0].number}, it is #${build.number}`);
  if (firstPickup !== -1 && (starts.length === 0 || starts[0]!.index > firstPickup)) problems.push('a job was picked up before the build\'s start line');
  return problems;
}

/**
 * Every check above on one terminal build and its current jobs: its own lines, every job terminal, each job's runs
 * (strict on the jobs' own logs when read, lenient for `deadPids` on the build's), and the order of needs. Each
 * problem is prefixed with the build's id and the job's name.
 */
export function terminalBuildProblems(
  build: { id: number; number: number; status: string; logs: string },
  jobs: readonly JobRecord[],
  deadPids: ReadonlySet<number> = new Set(),
): string[] {
  const problems = buildLogProblems(build).map((problem) => `build ${build.id}: ${problem}`);
  if (jobs.length === 0) problems.push(`build ${build.id}: no jobs`);
  const byJob = eventsByJob(build.logs);
  const names = new Set(jobs.map((job) => job.name));
  for (const name of byJob.keys()) if (!names.has(name)) problems.push(`build ${build.id}: events of a job it does not have: ${name}`);
  for (const job of jobs) {
    if (!TERMINAL_JOB_STATUSES.includes(job.status)) problems.push(`build ${build.id} (${build.status}), job ${job.name}: still ${job.status}`);
    for (const problem of jobProblems(job, byJob.get(job.name) ?? [], deadPids)) problems.push(`build ${build.id}, job ${job.name}: ${problem}`);
  }
  for (const problem of needOrderProblems(jobs)) problems.push(`build ${build.id}: ${problem}`);
  return problems;
}

/** Groups job records by build id. */
export function jobsByBuild(jobs: readonly JobRecord[]): Map<number, JobRecord[]> {
  const grouped = new Map<number, JobRecord[]>();
  for (const job of jobs) {
    const list = grouped.get(job.build_id) ?? [];
    list.push(job);
    grouped.set(job.build_id, list);
  }
  return grouped;
}

/** The workers' pids named by a job's take-over lines (own log, else its build's events). */
export function takeoverPids(job: JobRecord, inBuildLog: readonly JobLogEvent[]): number[] {
  const events = job.logs === undefined ? inBuildLog : logEvents(prefixLines(job.name, job.logs)).filter((event): event is JobLogEvent => event.kind !== 'finished');
  return events.filter((event) => event.kind === 'takeover' || event.kind === 'giveup').map((event) => pidOf(event.owner));
}
