/**
 * How a build's jobs move from status to status: the pure graph semantics the job engine applies inside a database
 * transaction. No I/O: every function takes the jobs' current states (the latest attempt of each name only, in
 * pipeline order) and returns the changes to write, in pipeline order, one entry per job at most (its final
 * transition from the status given), jobs that do not change left out.
 *
 * The reference:
 * - A job in `created` waits for its needs. A need is *over* when its status is terminal (`success`, `fail`,
 *   `canceled`, `skipped`). An unplayed `manual` need is not over: it holds its dependents in `created` until it is
 *   played and finishes. A need naming no job of the list is ignored (a resolved pipeline has none).
 * - The needs' outcome, as GitLab computes it: `failed` if a need is `fail` without `allow_failure`; else `canceled`
 *   if a need is `canceled`; else `skipped` if a need is `skipped`; else `success` (a `fail` with `allow_failure`
 *   counts as a success). No needs: `success`.
 * - Once every need of a `created` job is over, by its `when`: `on_success` → `queued` on success, else `skipped`;
 *   `on_failure` → `queued` on failed, else `skipped`; `always` → `queued`; `manual` → `manual` on success, else
 *   `skipped`. A skip is over in turn, so skips cascade down the graph within one call of advance().
 * - A build is *over* when no job is `queued` or `running` and no `created` job can move without a play (every one
 *   waits, directly or not, on an unplayed `manual` job); `manual` jobs never hold a build open. Until then it is
 *   `running` once a job was claimed, `queued` before. Over, it is `fail` if a job is `fail` without `allow_failure`,
 *   else `canceled` if a job is `canceled`, else `success` (also when nothing ran). `warning`: a job is `fail` with
 *   `allow_failure`.
 * - Canceling a build: `queued` and `running` jobs → `canceled`, `created` and `manual` ones → `skipped`. Canceling
 *   one job (`created`, `queued`, `running` or `manual`) → `canceled`, then the others advance (dependents see a
 *   canceled need: `always` ones run, `on_success` ones are skipped).
 * - Retrying a `success`, `fail` or `canceled` job → `queued` (its needs were over already); every job depending on
 *   it through `skipped` jobs only goes back to `created`, to wait for it again. A dependent that is not `skipped`
 *   (it ran, or is still to run) is left alone, and so is what depends on it.
 * - Playing a `manual` job → `queued`.
 *
 * Linear in the graph: each call is O(jobs + needs), at most 200 jobs with 199 needs each.
 */
import type { When } from './definition.js';

export const JOB_STATUSES = ['created', 'queued', 'running', 'success', 'fail', 'canceled', 'skipped', 'manual'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const TERMINAL_JOB_STATUSES: readonly JobStatus[] = ['success', 'fail', 'canceled', 'skipped'];

/** What the engine knows of one job (the latest attempt of each name only). */
export interface JobState {
  name: string;
  needs: readonly string[];
  when: When;
  allow_failure: boolean;
  status: JobStatus;
}

/** One job's move: written as is by the engine. */
export interface JobChange {
  name: string;
  from: JobStatus;
  to: JobStatus;
}

/** Where a build stands, from its jobs alone. */
export interface BuildState {
  status: 'queued' | 'running' | 'success' | 'fail' | 'canceled';
  /** Nothing more happens without a play, a retry or a new build. */
  over: boolean;
  /** A job failed that was allowed to. */
  warning: boolean;
}

type NeedsOutcome = 'success' | 'failed' | 'canceled' | 'skipped';

const isOver = (status: JobStatus): boolean => TERMINAL_JOB_STATUSES.includes(status);

/** Positions by name: the graph's edges are names, the work is done on positions. */
function positions(jobs: readonly JobState[]): Map<string, number> {
  return new Map(jobs.map((job, index) => [job.name, index]));
}

/** Positions of the jobs that need each job, one entry per need (a job listed twice as a need counts twice). */
function dependentsOf(jobs: readonly JobState[], position: ReadonlyMap<string, number>): number[][] {
  const dependents: number[][] = jobs.map(() => []);
  jobs.forEach((job, index) => {
    for (const need of job.needs) {
      const at = position.get(need);
      if (at !== undefined) dependents[at]?.push(index);
    }
  });
  return dependents;
}

function needsOutcome(job: JobState, status: readonly JobStatus[], jobs: readonly JobState[], position: ReadonlyMap<string, number>): NeedsOutcome {
  let canceled = false;
  let skipped = false;
  for (const need of job.needs) {
    const at = position.get(need);
    if (at === undefined) continue;
    const needStatus = status[at];
    if (needStatus === 'fail' && !jobs[at]?.allow_failure) return 'failed';
    if (needStatus === 'canceled') canceled = true;
    else if (needStatus === 'skipped') skipped = true;
  }
  return canceled ? 'canceled' : skipped ? 'skipped' : 'success';
}

/** Where a `created` job whose needs are all over goes. */
function release(when: When, outcome: NeedsOutcome): JobStatus {
  switch (when) {
    case 'on_success':
      return outcome === 'success' ? 'queued' : 'skipped';
    case 'on_failure':
      return outcome === 'failed' ? 'queued' : 'skipped';
    case 'always':
      return 'queued';
    case 'manual':
      return outcome === 'success' ? 'manual' : 'skipped';
  }
}

/**
 * Releases, in place, every `created` job whose needs are all over, and again for those a skip makes ready, until
 * nothing moves. Each job keeps a count of its needs not over yet; a skip counts down its dependents', so every edge is
 * looked at a bounded number of times, however long the cascade.
 */
function settle(jobs: readonly JobState[], status: JobStatus[], position: ReadonlyMap<string, number>): void {
  const waiting: number[][] = jobs.map(() => []);
  const pending = jobs.map(() => 0);
  const ready: number[] = [];
  jobs.forEach((job, index) => {
    if (status[index] !== 'created') return;
    let count = 0;
    for (const need of job.needs) {
      const at = position.get(need);
      if (at === undefined || isOver(status[at] as JobStatus)) continue;
      count++;
      waiting[at]?.push(index);
    }
    pending[index] = count;
    if (count === 0) ready.push(index);
  });
  for (let next = ready.pop(); next !== undefined; next = ready.pop()) {
    const job = jobs[next] as JobState;
    const to = release(job.when, needsOutcome(job, status, jobs, position));
    status[next] = to;
    if (!isOver(to)) continue;
    for (const dependent of waiting[next] ?? []) {
      const left = (pending[dependent] ?? 0) - 1;
      pending[dependent] = left;
      if (left === 0) ready.push(dependent);
    }
  }
}

/** The changes from the jobs' statuses to `status`, in pipeline order. */
function changes(jobs: readonly JobState[], status: readonly JobStatus[]): JobChange[] {
  const result: JobChange[] = [];
  jobs.forEach((job, index) => {
    const to = status[index] as JobStatus;
    if (to !== job.status) result.push({ name: job.name, from: job.status, to });
  });
  return result;
}

/** Releases every `created` job whose needs are over, cascading skips, until nothing moves. */
export function advance(jobs: readonly JobState[]): JobChange[] {
  const status = jobs.map((job) => job.status);
  settle(jobs, status, positions(jobs));
  return changes(jobs, status);
}

/**
 * A freshly planned build (every job `created`): the changes advance() makes at once. Jobs without needs are
 * `queued` (`on_success`, `always`), `manual`, or `skipped` (`on_failure`), and skips cascade.
 */
export function initialStatuses(jobs: readonly Pick<JobState, 'name' | 'needs' | 'when' | 'allow_failure'>[]): JobChange[] {
  return advance(jobs.map((job) => ({ ...job, status: 'created' })));
}

/** Whether the build is over and what it comes to; `started`: a job of the build was ever claimed. */
export function buildStatusOf(jobs: readonly JobState[], started: boolean): BuildState {
  const position = positions(jobs);
  const status = jobs.map((job) => job.status);
  const moving = jobs.some(
    (job) =>
      job.status === 'queued' ||
      job.status === 'running' ||
      // A `created` job whose needs are all over moves at the next advance(); one that is not waits on a job that is
      // `queued` or `running` (already counted), `created` (it or its own needs will move), or `manual` (a play).
      (job.status === 'created' &&
        job.needs.every((need) => {
          const at = position.get(need);
          return at === undefined || isOver(status[at] as JobStatus);
        })),
  );
  const warning = jobs.some((job) => job.status === 'fail' && job.allow_failure);
  if (moving) return { status: started ? 'running' : 'queued', over: false, warning };
  const failed = jobs.some((job) => job.status === 'fail' && !job.allow_failure);
  const canceled = jobs.some((job) => job.status === 'canceled');
  return { status: failed ? 'fail' : canceled ? 'canceled' : 'success', over: true, warning };
}

/**
 * Retries `retried` (a `success`, `fail` or `canceled` job): it is `queued` again, and the `skipped` jobs depending on
 * it, directly or through other `skipped` jobs, go back to `created` to wait for it. No advance(): they wait for the
 * retried job. Undefined if there is no such job or it cannot be retried.
 */
export function replanAfterRetry(jobs: readonly JobState[], retried: string): JobChange[] | undefined {
  const position = positions(jobs);
  const start = position.get(retried);
  if (start === undefined) return undefined;
  const from = jobs[start]?.status;
  if (from !== 'success' && from !== 'fail' && from !== 'canceled') return undefined;
  const status = jobs.map((job) => job.status);
  status[start] = 'queued';
  const dependents = dependentsOf(jobs, position);
  const visit = [start];
  for (let next = visit.pop(); next !== undefined; next = visit.pop()) {
    for (const dependent of dependents[next] ?? []) {
      if (status[dependent] !== 'skipped') continue; // also marks those already reset: each is visited once
      status[dependent] = 'created';
      visit.push(dependent);
    }
  }
  return changes(jobs, status);
}

/** Cancels the build: `queued` and `running` jobs are `canceled`, `created` and `manual` ones `skipped`. */
export function cancelBuild(jobs: readonly JobState[]): JobChange[] {
  const status = jobs.map((job): JobStatus => {
    if (job.status === 'queued' || job.status === 'running') return 'canceled';
    if (job.status === 'created' || job.status === 'manual') return 'skipped';
    return job.status;
  });
  return changes(jobs, status);
}

/**
 * Cancels one `created`, `queued`, `running` or `manual` job, then advances the others (its dependents see a canceled
 * need). Undefined if there is no such job or it is already over.
 */
export function cancelJob(jobs: readonly JobState[], name: string): JobChange[] | undefined {
  const position = positions(jobs);
  const at = position.get(name);
  if (at === undefined) return undefined;
  const from = jobs[at]?.status;
  if (from !== 'created' && from !== 'queued' && from !== 'running' && from !== 'manual') return undefined;
  const status = jobs.map((job) => job.status);
  status[at] = 'canceled';
  settle(jobs, status, position);
  return changes(jobs, status);
}

/** Plays a `manual` job: it is `queued`. Undefined if there is no such job or it is not `manual`. */
export function play(jobs: readonly JobState[], name: string): JobChange[] | undefined {
  const job = jobs.find((candidate) => candidate.name === name);
  if (job?.status !== 'manual') return undefined;
  return [{ name, from: 'manual', to: 'queued' }];
}
