import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import type { FastifyBaseLogger } from 'fastify';
import type { NewArtifact } from '../repositories/artifacts.js';
import { prefixLines, type ClaimedBuild, type ClaimedJob, type JobActionResult, type JobsRepository, type Settled } from '../repositories/jobs.js';
import { packArtifact } from './artifact.js';
import type { BuildEventBus } from './events.js';
import { jobFinishedLine, planJobRun, randomForJob, type JobRunSubject } from './job-simulator.js';
import { formatLine } from './simulator.js';

export interface JobEngineOptions {
  /** Workers in this process (BUILD_CONCURRENCY). */
  concurrency: number;
  /** Wall seconds per simulated second (0: no waiting at all). */
  timeScale: number;
  leaseMs: number;
  /** Claims of one job before a lost lease fails it instead of queuing it again. */
  maxAttempts: number;
  /** On stop, ms running jobs get to finish before they are handed back to the queue. */
  drainMs: number;
  seed?: string;
  jobs: JobsRepository;
  events: BuildEventBus;
  log: FastifyBaseLogger;
  /** False while the database is known to be down: workers neither claim nor sweep then. */
  databaseAvailable?: () => boolean;
  onBusyChange?: (busy: number, idle: number) => void;
  /** Told of every job this process ran to its end: its status and the simulated seconds it ran. */
  onJobFinished?: (status: 'success' | 'fail', duration_s: number) => void;
}

/** Idle workers look for work this often even without a `queued` event. */
const IDLE_POLL_MS = 2000;

/** `<project>-<number>-<job>.tar.gz`, the job's name reduced to letters, digits, dots, dashes and underscores. */
export const jobArtifactName = (buildArtifactName: string, jobName: string): string =>
  `${buildArtifactName.replace(/\.tar\.gz$/, '')}-${jobName.replace(/[^A-Za-z0-9._-]+/g, '-')}.tar.gz`;

class LeaseLost extends Error {}
/** The reason idle workers' wait is aborted with: a constant (see wake()). */
const WOKEN = Symbol('woken');
class ShutdownAbort extends Error {}

/**
 * The job engine: the one module that changes the status of builds and jobs and publishes their
 * events. Routes call its actions and map their typed outcomes to HTTP; its workers claim queued jobs (one atomic
 * statement), play each job's simulated run, and finish it in the transaction that releases what it unblocks.
 *
 * Every write of a run is conditional on the worker still holding its job (lease owner and `running`): a canceled or
 * taken-over run stops at its next write. Cancels also arrive as `job` events, which abort the current wait at once.
 */
export class JobEngine {
  readonly ownerPrefix = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private readonly running = new Map<number, { build_id: number; controller: AbortController }>();
  private readonly loops: Promise<void>[] = [];
  private readonly stopping = new AbortController();
  private wakeSignal = new AbortController();
  /** Workers waiting in idle() (see wake()). */
  private idleWorkers = 0;
  private unsubscribe?: () => void;
  private sweeper?: NodeJS.Timeout;
  private drainOver = false;

  constructor(private readonly options: JobEngineOptions) {}

  get busy(): number {
    return this.running.size;
  }

  // ---- actions (the routes' way in) ----------------------------------------------------------------------------

  /** Cancels a queued or running build and its jobs; undefined when it is missing or already over. */
  async cancelBuild(buildId: number, by: string): Promise<Settled | undefined> {
    const settled = await this.options.jobs.cancelBuild(buildId, `[usine] Build canceled by ${by} at ${new Date().toISOString()}\n`, this.options.timeScale);
    if (settled) this.publish(settled);
    return settled;
  }

  async cancelJob(jobId: number, by: string): Promise<JobActionResult> {
    const result = await this.options.jobs.cancelJob(jobId, `[usine] Job canceled by ${by} at ${new Date().toISOString()}\n`, this.options.timeScale);
    if (result.outcome === 'done') this.publish(result.settled);
    return result;
  }

  async retryJob(jobId: number): Promise<JobActionResult> {
    const result = await this.options.jobs.retryJob(jobId);
    if (result.outcome === 'done') this.publish(result.settled, result.job_id);
    return result;
  }

  async playJob(jobId: number): Promise<JobActionResult> {
    const result = await this.options.jobs.playJob(jobId);
    if (result.outcome === 'done') this.publish(result.settled);
    return result;
  }

  /**
   * Tells every process what a write changed: the build's status (log followers read on), each running job it
   * canceled (its worker, wherever it is, stops it), and `queued` when jobs became claimable (idle workers wake).
   */
  private publish(settled: Settled, queuedJobId?: number): void {
    const { events } = this.options;
    events.publish({ type: 'changed', build_id: settled.build_id, status: settled.status });
    for (const jobId of settled.stopped) events.publish({ type: 'job', job_id: jobId, build_id: settled.build_id, status: 'canceled' });
    if (queuedJobId !== undefined || settled.changes.some((change) => change.to === 'queued')) {
      events.publish({ type: 'queued', build_id: settled.build_id });
    }
  }

  // ---- workers ----------------------------------------------------------------------------------------------------

  start(): void {
    if (this.options.concurrency === 0) return;
    this.unsubscribe = this.options.events.subscribe((event) => {
      if (event.type === 'queued') this.wake();
      else if (event.type === 'job' && event.status !== 'running') this.running.get(event.job_id)?.controller.abort(new Error(`now ${event.status}`));
      // A build that ended (canceled): its jobs still running here stop at their next write; abort their waits now.
      else if (event.type === 'changed' && event.status === 'canceled') {
        for (const run of this.running.values()) if (run.build_id === event.build_id) run.controller.abort(new Error('build canceled'));
      }
    });
    const sweepEvery = Math.max(250, this.options.leaseMs / 2);
    this.sweeper = setInterval(() => void this.recoverExpiredLeases(), sweepEvery);
    this.sweeper.unref();
    for (let index = 1; index <= this.options.concurrency; index++) this.loops.push(this.workLoop(`${this.ownerPrefix}/w${index}`));
    this.reportBusy();
  }

  async stop(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    this.stopping.abort();
    clearInterval(this.sweeper);
    this.wake();
    const drained = Promise.all(this.loops);
    const timer = sleep(this.options.drainMs, 'timeout' as const, { ref: false });
    if ((await Promise.race([drained.then(() => 'done' as const), timer])) === 'timeout') {
      this.drainOver = true;
      for (const run of this.running.values()) run.controller.abort(new ShutdownAbort());
    }
    await drained;
    this.unsubscribe?.();
  }

  wake(): void {
    // Every finish that releases a job publishes `queued` (a thousand times a second at BUILD_TIME_SCALE=0), mostly
    // while every worker is busy: with no worker waiting in idle() there is no one to wake, and a worker that idles
    // later waits on the current signal, not yet aborted, as it would on a new one. The reason is a constant: abort()
    // without one builds a DOMException, stack trace and all, each time (~1 % of a worker process's drain profile).
    if (this.idleWorkers === 0) return;
    this.wakeSignal.abort(WOKEN);
    this.wakeSignal = new AbortController();
  }

  private reportBusy(): void {
    this.options.onBusyChange?.(this.running.size, this.options.concurrency - this.running.size);
  }

  private async workLoop(owner: string): Promise<void> {
    const { jobs, log } = this.options;
    while (!this.stopping.signal.aborted) {
      if (this.options.databaseAvailable?.() === false) {
        await this.idle();
        continue;
      }
      let claimed: Awaited<ReturnType<JobsRepository['claimNext']>>;
      try {
        claimed = await jobs.claimNext(owner, this.options.leaseMs);
      } catch (error) {
        log.error({ err: error, owner }, 'job worker could not claim a job');
      }
      if (!claimed) {
        await this.idle();
        continue;
      }
      await this.run(claimed.job, claimed.build, owner);
      // On SQLite every query is synchronous, so a claim, a run at BUILD_TIME_SCALE=0 and a finish are promises that
      // resolve at once: the workers went from job to job in microtasks and the event loop handled nothing else (no
      // HTTP request, no timer) until the queue was empty: 13 s for 1,000 builds. One turn of the event loop per job.
      await nextTurn();
    }
  }

  private async idle(): Promise<void> {
    const signal = AbortSignal.any([this.wakeSignal.signal, this.stopping.signal]);
    this.idleWorkers++;
    try {
      await sleep(IDLE_POLL_MS, undefined, { signal }).catch(() => undefined);
    } finally {
      this.idleWorkers--;
    }
  }

  private async run(job: ClaimedJob, build: ClaimedBuild, owner: string): Promise<void> {
    const { jobs, events, log } = this.options;
    const controller = new AbortController();
    if (this.drainOver) controller.abort(new ShutdownAbort());
    this.running.set(job.id, { build_id: job.build_id, controller });
    this.reportBusy();
    events.publish({ type: 'changed', build_id: job.build_id, status: 'running' });
    try {
      const result = await this.play(job, build, owner, controller.signal);
      if (result === 'aborted' && controller.signal.reason instanceof ShutdownAbort) {
        const text = `[usine] ${owner} is shutting down: the job goes back to the queue for another worker.\n`;
        if (await jobs.release(job, owner, text)) events.publish({ type: 'queued', build_id: job.build_id });
      }
    } catch (error) {
      log.error({ err: error, job_id: job.id, owner }, 'job run failed unexpectedly');
    } finally {
      this.running.delete(job.id);
      this.reportBusy();
    }
  }

  /** Plays one claimed job: its lines as their simulated time comes, the lease renewed, its artifact, its finish. */
  private async play(job: ClaimedJob, build: ClaimedBuild, owner: string, signal: AbortSignal): Promise<'finished' | 'aborted' | 'lost'> {
    const { jobs, events, log, timeScale, leaseMs } = this.options;
    const subject: JobRunSubject = {
      project: { name: build.project_name, repo: build.project_repo },
      build: { project_id: build.project_id, number: build.number, branch: build.branch, commit_sha: build.commit_sha },
      job: { name: job.name, attempt: job.attempt, spec: job.spec },
    };
    const plan = planJobRun(subject, randomForJob(this.options.seed, subject));

    const lost = new AbortController();
    // The run stops when it is aborted (cancel, shutdown) or its lease is lost. The signal combining both is made only
    // for a wait: AbortSignal.any registers with both sources (weak references, a finalization registry), ~2 % of a
    // worker process's CPU at BUILD_TIME_SCALE=0 where no job ever waits.
    let combined: AbortSignal | undefined;
    const stop = {
      get signal() {
        return (combined ??= AbortSignal.any([signal, lost.signal]));
      },
      get aborted() {
        return signal.aborted || lost.signal.aborted;
      },
      get reason(): unknown {
        return signal.aborted ? signal.reason : lost.signal.reason;
      },
    };
    const renewal = setInterval(() => {
      jobs.renewLease(job.id, owner, leaseMs).then(
        (held) => {
          if (!held) lost.abort(new LeaseLost());
        },
        (error: unknown) => log.warn({ err: error, job_id: job.id }, 'could not renew a job lease'),
      );
    }, leaseMs / 3);

    let pending = '';
    const flush = async () => {
      if (pending === '') return;
      if (!(await jobs.appendLog(job, owner, pending))) throw new LeaseLost();
      pending = '';
      events.publish({ type: 'changed', build_id: job.build_id, status: 'running' });
    };
    try {
      const startedAt = Date.now();
      for (const line of plan.lines) {
        const waitMs = startedAt + line.at_s * timeScale * 1000 - Date.now();
        if (waitMs > 0) {
          await flush();
          await sleep(waitMs, undefined, { signal: stop.signal });
        }
        if (stop.aborted) throw stop.reason;
        pending += formatLine(line);
      }
      // The job lasts its whole duration, whenever its last line was due.
      const endMs = startedAt + plan.duration_s * timeScale * 1000 - Date.now();
      if (endMs > 0) {
        await flush();
        await sleep(endMs, undefined, { signal: stop.signal });
      }
      if (stop.aborted) throw stop.reason;
      let artifact: NewArtifact | undefined;
      if (plan.outcome === 'success' && job.spec.artifacts) {
        // The archive's build.log is the build's log up to here: as written so far, and this job's lines not yet
        // flushed, as the finish will append them. The file is stored by the finish itself, in the same write.
        const packed = packArtifact({
          build: { id: job.build_id, ...build },
          project: { id: build.project_id, name: build.project_name, repo: build.project_repo },
          duration_s: plan.duration_s,
          log: (await jobs.buildLog(job.build_id)) + prefixLines(job.name, pending),
          builtBy: owner,
          now: new Date(),
        });
        // The default pipeline's `package` job stores the build's artifact under the name builds always had; any
        // other job's artifact is named after the job too, so that several jobs of one build keep one each.
        artifact = job.spec.job === 'package' ? packed : { ...packed, name: jobArtifactName(packed.name, job.name) };
        pending += `Artifact ${artifact.name}: ${artifact.size_bytes} bytes, sha256 ${artifact.sha256}\n`;
      }
      if (stop.aborted) throw stop.reason;
      const settled = await jobs.finish(job, owner, {
        status: plan.outcome,
        duration_s: plan.duration_s,
        text: pending + jobFinishedLine(plan.outcome, plan.duration_s),
        artifact,
      });
      if (!settled) return 'lost';
      this.options.onJobFinished?.(plan.outcome, plan.duration_s);
      this.publish(settled);
      return 'finished';
    } catch (error) {
      if (lost.signal.aborted || error instanceof LeaseLost) {
        log.warn({ job_id: job.id, owner }, 'job no longer held by this worker (canceled or taken over): stopped');
        return 'lost';
      }
      if (signal.aborted) return 'aborted';
      throw error;
    } finally {
      clearInterval(renewal);
    }
  }

  private async recoverExpiredLeases(): Promise<void> {
    const { jobs, events, log } = this.options;
    if (this.options.databaseAvailable?.() === false) return;
    try {
      const { requeued, failed } = await jobs.recoverExpired(this.options.maxAttempts);
      for (const jobId of requeued) log.warn({ job_id: jobId }, 'job lease expired: queued again');
      for (const settled of failed) {
        log.warn({ build_id: settled.build_id }, 'job lease expired too often: the job fails');
        this.publish(settled);
      }
      if (requeued.length > 0) events.publish({ type: 'queued', build_id: 0 });
    } catch (error) {
      log.error({ err: error }, 'could not recover jobs with expired leases');
    }
  }
}
