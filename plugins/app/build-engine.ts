import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { createLocalEventBus, createPgEventBus, type BuildEventBus } from '../../src/builds/events.js';
import { JobEngine } from '../../src/builds/job-engine.js';
import { BuildWorkerPool } from '../../src/builds/worker-pool.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Build events heard by this process: its own and, on PostgreSQL, every other replica's (LISTEN/NOTIFY). */
    buildEvents: BuildEventBus;
    /** This process's build workers: the four-step builds' pool, or the job engine's (PIPELINE_ENGINE). */
    buildWorkers: Pick<BuildWorkerPool, 'busy' | 'wake' | 'start' | 'stop' | 'ownerPrefix'>;
    /** The job engine, which runs builds as jobs and owns every change of their status; null with PIPELINE_ENGINE=builds. */
    jobEngine: JobEngine | null;
  }
}

/**
 * The build engine: an event bus and BUILD_CONCURRENCY workers. Workers start once the app is ready, and stop in
 * `preClose` (while the database is still open): they stop claiming, running builds get BUILD_DRAIN_S to finish, and
 * the rest go back to the queue for another process.
 */
export default fp(
  async (fastify) => {
    const { config, database } = fastify;
    const events = database.notifications
      ? await createPgEventBus(database.notifications, (err) => fastify.log.warn({ err }, 'build event bus error'))
      : createLocalEventBus();
    fastify.decorate('buildEvents', events);

    const common = {
      concurrency: config.BUILD_CONCURRENCY,
      timeScale: config.BUILD_TIME_SCALE,
      leaseMs: config.BUILD_LEASE_S * 1000,
      maxAttempts: config.BUILD_MAX_ATTEMPTS,
      drainMs: config.BUILD_DRAIN_S * 1000,
      seed: config.BUILD_SEED,
      artifacts: fastify.artifactsRepository,
      events,
      databaseAvailable: () => fastify.databaseAvailability.available,
      log: fastify.log.child({ component: 'build-workers' }),
      onBusyChange: (busy: number, idle: number) => {
        fastify.metrics?.buildWorkers.set({ state: 'busy' }, busy);
        fastify.metrics?.buildWorkers.set({ state: 'idle' }, idle);
      },
    };
    const jobEngine =
      config.PIPELINE_ENGINE === 'jobs'
        ? new JobEngine({
            ...common,
            jobs: fastify.jobsRepository,
            onJobFinished: (status, duration_s) => fastify.metrics?.jobDuration.observe({ status }, duration_s),
          })
        : null;
    const workers: FastifyInstance['buildWorkers'] =
      jobEngine ??
      new BuildWorkerPool({ ...common, failRate: config.BUILD_FAIL_RATE, builds: fastify.buildsRepository, projects: fastify.projectsRepository });
    fastify.decorate('buildWorkers', workers);
    fastify.decorate('jobEngine', jobEngine);
    fastify.databaseAvailability.on('change', (available) => {
      if (available) workers.wake();
    });

    fastify.addHook('onReady', async () => workers.start());
    fastify.addHook('preClose', async () => workers.stop());
    fastify.addHook('onClose', async () => events.close());
  },
  { name: 'build-engine', dependencies: ['database', 'database-availability', 'repositories'] },
);
