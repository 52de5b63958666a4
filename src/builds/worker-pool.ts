import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyBaseLogger } from 'fastify';
import type { ArtifactsRepository } from '../repositories/artifacts.js';
import type { BuildRow, BuildsRepository } from '../repositories/builds.js';
import type { ProjectsRepository } from '../repositories/projects.js';
import type { BuildEventBus } from './events.js';
import { runBuild, type RunSettings } from './run-build.js';

export interface WorkerPoolOptions extends RunSettings {
  concurrency: number;
  /** Claims of one build before a lost lease fails it instead of queuing it again. */
  maxAttempts: number;
  /** On stop, ms running builds get to finish before they are handed back to the queue. */
  drainMs: number;
  builds: BuildsRepository;
  projects: ProjectsRepository;
  artifacts: ArtifactsRepository;
  events: BuildEventBus;
  log: FastifyBaseLogger;
  /** False while the database is known to be down: workers neither claim nor sweep then (src/db/availability.ts). */
  databaseAvailable?: () => boolean;
  /** Told whenever the number of busy workers changes. */
  onBusyChange?: (busy: number, idle: number) => void;
}

/** Idle workers look for work this often even without a `queued` event (an event from a lost connection, say). */
const IDLE_POLL_MS = 2000;

/**
 * `BUILD_CONCURRENCY` workers in this process. Each loops: claim the oldest queued build (one atomic statement),
 * run it, repeat; with nothing to claim it sleeps until a `queued` event or the idle poll. A sweeper requeues (or
 * fails) builds whose lease expired, wherever they ran. `stop()` stops claiming, gives running builds `drainMs` to
 * finish and hands the rest back to the queue for another process.
 */
export class BuildWorkerPool {
  /** Identifies this process's workers in leases and log lines: host, pid and a random tag. */
  readonly ownerPrefix = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private readonly running = new Map<number, AbortController>();
  private readonly loops: Promise<void>[] = [];
  private readonly stopping = new AbortController();
  private wakeSignal = new AbortController();
  private unsubscribe?: () => void;
  private sweeper?: NodeJS.Timeout;
  /** Set when the drain period has run out: a build claimed after that (a claim already in flight) is released at once. */
  private drainOver = false;

  constructor(private readonly options: WorkerPoolOptions) {}

  get busy(): number {
    return this.running.size;
  }

  start(): void {
    if (this.options.concurrency === 0) return;
    this.unsubscribe = this.options.events.subscribe((event) => {
      if (event.type === 'queued') this.wake();
      else if (event.type === 'changed' && event.status !== 'running') this.running.get(event.build_id)?.abort(new Error(`now ${event.status}`));
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
      for (const controller of this.running.values()) controller.abort(new ShutdownAbort());
    }
    await drained;
    this.unsubscribe?.();
  }

  /** Idle workers look for a queued build now rather than at their next poll. */
  wake(): void {
    this.wakeSignal.abort();
    this.wakeSignal = new AbortController();
  }

  private reportBusy(): void {
    this.options.onBusyChange?.(this.running.size, this.options.concurrency - this.running.size);
  }

  private async workLoop(owner: string): Promise<void> {
    const { builds, log } = this.options;
    while (!this.stopping.signal.aborted) {
      if (this.options.databaseAvailable?.() === false) {
        await this.idle();
        continue;
      }
      let build: BuildRow | undefined;
      try {
        build = await builds.claimNext(owner, this.options.leaseMs);
      } catch (error) {
        log.error({ err: error, owner }, 'build worker could not claim a build');
      }
      if (!build) {
        await this.idle();
        continue;
      }
      await this.run(build, owner);
    }
  }

  private async idle(): Promise<void> {
    const signal = AbortSignal.any([this.wakeSignal.signal, this.stopping.signal]);
    await sleep(IDLE_POLL_MS, undefined, { signal }).catch(() => undefined);
  }

  private async run(build: BuildRow, owner: string): Promise<void> {
    const { builds, events, log } = this.options;
    const controller = new AbortController();
    if (this.drainOver) controller.abort(new ShutdownAbort());
    this.running.set(build.id, controller);
    this.reportBusy();
    events.publish({ type: 'changed', build_id: build.id, status: 'running' });
    try {
      const result = await runBuild(build, owner, controller.signal, this.options);
      if (result === 'aborted' && controller.signal.reason instanceof ShutdownAbort) {
        const released = await builds.release(build.id, owner, `[usine] ${owner} is shutting down: the build goes back to the queue for another worker.\n`);
        if (released) {
          events.publish({ type: 'changed', build_id: build.id, status: 'queued' });
          events.publish({ type: 'queued', build_id: build.id });
        }
      }
    } catch (error) {
      log.error({ err: error, build_id: build.id, owner }, 'build run failed unexpectedly');
    } finally {
      this.running.delete(build.id);
      this.reportBusy();
    }
  }

  private async recoverExpiredLeases(): Promise<void> {
    const { builds, events, log } = this.options;
    if (this.options.databaseAvailable?.() === false) return;
    try {
      const { failed, requeued } = await builds.recoverExpired(this.options.maxAttempts);
      for (const build of [...failed, ...requeued]) {
        log.warn({ build_id: build.id, status: build.status }, 'build lease expired: recovered');
        events.publish({ type: 'changed', build_id: build.id, status: build.status });
      }
      if (requeued.length > 0) events.publish({ type: 'queued', build_id: requeued[0]!.id });
    } catch (error) {
      log.error({ err: error }, 'could not recover builds with expired leases');
    }
  }
}

/** The reason a run is aborted at shutdown, as opposed to a cancel or a lost lease. */
export class ShutdownAbort extends Error {
  constructor() {
    super('shutting down');
  }
}
