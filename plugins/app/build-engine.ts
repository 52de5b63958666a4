import fp from 'fastify-plugin';
import { createLocalEventBus, createPgEventBus, type BuildEventBus } from '../../src/builds/events.js';
import { JobEngine } from '../../src/builds/job-engine.js';
import { defaultPipeline } from '../../src/pipelines/default.js';
import { resolvePipeline } from '../../src/pipelines/resolve.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Build events heard by this process: its own and, on PostgreSQL, every other replica's (LISTEN/NOTIFY). */
    buildEvents: BuildEventBus;
    /** The job engine: this process's workers, and the one owner of every change of a build's or a job's status. */
    jobEngine: JobEngine;
  }
}

/**
 * The build engine: an event bus and BUILD_CONCURRENCY workers that claim jobs. Workers start once the app is ready,
 * and stop in `preClose` (while the database is still open): they stop claiming, running jobs get BUILD_DRAIN_S to
 * finish, and the rest go back to the queue for another process.
 */
export default fp(
  async (fastify) => {
    const { config, database } = fastify;
    const events = database.notifications
      ? await createPgEventBus(database.notifications, (err) => fastify.log.warn({ err }, 'build event bus error'))
      : createLocalEventBus();
    fastify.decorate('buildEvents', events);

    const engine = new JobEngine({
      concurrency: config.BUILD_CONCURRENCY,
      timeScale: config.BUILD_TIME_SCALE,
      leaseMs: config.BUILD_LEASE_S * 1000,
      maxAttempts: config.BUILD_MAX_ATTEMPTS,
      drainMs: config.BUILD_DRAIN_S * 1000,
      seed: config.BUILD_SEED,
      jobs: fastify.jobsRepository,
      events,
      databaseAvailable: () => fastify.databaseAvailability.available,
      log: fastify.log.child({ component: 'build-workers' }),
      onBusyChange: (busy, idle) => {
        fastify.metrics?.buildWorkers.set({ state: 'busy' }, busy);
        fastify.metrics?.buildWorkers.set({ state: 'idle' }, idle);
      },
      onJobFinished: (status, duration_s) => fastify.metrics?.jobDuration.observe({ status }, duration_s),
    });
    fastify.decorate('jobEngine', engine);
    fastify.databaseAvailability.on('change', (available) => {
      if (available) engine.wake();
    });

    fastify.addHook('onReady', async () => {
      // Builds an earlier version queued without jobs get the default pipeline's, before any worker looks for work.
      const plans = resolvePipeline(defaultPipeline(config.BUILD_FAIL_RATE), { defaultFailRate: config.BUILD_FAIL_RATE });
      try {
        const adopted = await fastify.jobsRepository.adoptJobless(plans);
        if (adopted.length > 0) fastify.log.warn({ builds: adopted.length }, 'builds queued before builds ran as jobs now run the default pipeline');
      } catch (err) {
        fastify.log.error({ err }, 'could not plan jobs for the builds queued before builds ran as jobs; the next start tries again');
      }
      engine.start();
    });
    fastify.addHook('preClose', async () => engine.stop());
    fastify.addHook('onClose', async () => events.close());
  },
  { name: 'build-engine', dependencies: ['database', 'database-availability', 'repositories'] },
);
