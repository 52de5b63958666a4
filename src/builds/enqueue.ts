import type { FastifyInstance } from 'fastify';
import { defaultPipeline } from '../pipelines/default.js';
import { resolvePipeline } from '../pipelines/resolve.js';
import type { BuildRow, NewBuild } from '../repositories/builds.js';
import type { JobPlan } from '../repositories/jobs.js';

export interface Enqueued {
  build: BuildRow;
  /** True when an Idempotency-Key named a build created earlier: that build is answered, nothing new is queued. */
  replayed: boolean;
}

/** Seconds a client is asked to wait when its project's queue is full: roughly one simulated build. */
const QUEUE_FULL_RETRY_AFTER_S = 10;

/**
 * Queues a build (trigger or retry) and wakes the workers of every process. Refusals become problem responses:
 * a missing project is 404, a full queue 429 (with Retry-After), an Idempotency-Key reused (by the same user: keys
 * are per user) for a different branch or commit 409. `setHeader` lets the 429 carry its Retry-After through the error handler.
 */
export async function enqueueBuild(
  fastify: FastifyInstance,
  build: NewBuild,
  options: {
    idempotency?: { key: string; userId: number };
    requested?: { branch?: string; commit_sha?: string };
    setHeader: (name: string, value: string) => void;
    /** The jobs to run: a retried build's own; by default the project's pipeline as it is now. */
    jobs?: JobPlan[];
  },
): Promise<Enqueued> {
  const { config, buildsRepository, jobsRepository, httpErrors } = fastify;
  // The build's jobs are written with it, in its transaction: the snapshot it keeps, whatever the pipeline becomes.
  const plans = options.jobs ?? (await pipelineJobs(fastify, build.project_id));
  const result = await buildsRepository.create(
    build,
    { queueLimit: config.BUILD_QUEUE_LIMIT, idempotency: options.idempotency, idempotencyTtlS: config.IDEMPOTENCY_TTL_S },
    (tx, buildId) => jobsRepository.planSteps(tx, buildId, plans),
  );
  switch (result.outcome) {
    case 'project_missing':
      throw httpErrors.notFound(`Project ${build.project_id} does not exist`);
    case 'queue_full':
      options.setHeader('retry-after', String(QUEUE_FULL_RETRY_AFTER_S));
      throw httpErrors.tooManyRequests(
        `Project ${build.project_id} already has ${result.queued} queued builds (the limit is ${config.BUILD_QUEUE_LIMIT}): ` +
          'wait for some to start, or cancel some',
      );
    case 'replayed': {
      const { branch, commit_sha } = options.requested ?? {};
      if ((branch !== undefined && branch !== result.build.branch) || (commit_sha !== undefined && commit_sha !== result.build.commit_sha)) {
        throw httpErrors.conflict(
          `Idempotency-Key "${options.idempotency?.key}" was first used for build ${result.build.id} ` +
            `(${result.build.branch} @ ${result.build.commit_sha}); use a new key for a different build`,
        );
      }
      return { build: result.build, replayed: true };
    }
    case 'created':
      fastify.buildEvents.publish({ type: 'queued', build_id: result.build.id });
      return { build: result.build, replayed: false };
  }
}

/** The project's pipeline (its own definition, or the default one) resolved to the jobs a new build runs. */
async function pipelineJobs(fastify: FastifyInstance, projectId: number): Promise<JobPlan[]> {
  const failRate = fastify.config.BUILD_FAIL_RATE;
  const definition = (await fastify.pipelinesRepository.get(projectId)) ?? defaultPipeline(failRate);
  return resolvePipeline(definition, { defaultFailRate: failRate });
}
