import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { RequestMetrics, type CollectedMetric } from '../../src/http/request-metrics.js';
import { JOB_STATUSES, type JobStatus } from '../../src/pipelines/progress.js';
import { BUILD_STATUSES, type BuildStatusValue } from '../../src/schemas/build.js';

/** The route label of a request that matched no route: one series for every unknown path (bounded cardinality). */
export const NOT_FOUND_ROUTE = 'not_found';

/** Seconds; from 5 ms (a cached read) to 10 s (beyond the request timeout's useful range). */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface Metrics {
  /** Every metric this app exposes (its own and the process ones): what `GET /metrics` serves. */
  registry: Registry;
  /** Build workers by state (`busy`, `idle`), for the build engine to set. */
  buildWorkers: Gauge<'state'>;
  /** Simulated seconds each finished job ran, by status, for the job engine to observe. */
  jobDuration: Histogram<'status'>;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Present only when METRICS_ENABLED is true. */
    metrics?: Metrics;
  }
}

/**
 * Default series that tell which Node runs here: its version, and V8's heap spaces (their names change with V8
 * releases, e.g. `shared`, `trusted`), which date the engine closely enough to look up its known vulnerabilities.
 * They are served only to a scraper that proved it holds METRICS_TOKEN, never on an open scrape.
 */
export const REVEALING_METRICS = [
  'nodejs_version_info',
  'nodejs_heap_space_size_total_bytes',
  'nodejs_heap_space_size_used_bytes',
  'nodejs_heap_space_size_available_bytes',
] as const;

interface ProcessRegistries {
  /** Figures anyone may see: CPU, memory, handles, GC, event-loop lag. */
  anonymous: Registry;
  /** REVEALING_METRICS. */
  revealing: Registry;
}

let processRegistries: ProcessRegistries | undefined;

/**
 * Process figures (`process_*`, `nodejs_*`: CPU, memory, handles, GC, event-loop lag) are the same for every app in
 * the process, and collecting them starts process-wide monitors (an event-loop delay histogram, a GC observer) that
 * never stop: they are registered once per process in registries of their own, not once per app.
 */
function processMetrics(): ProcessRegistries {
  if (!processRegistries) {
    const anonymous = new Registry();
    const revealing = new Registry();
    collectDefaultMetrics({ register: anonymous });
    for (const name of REVEALING_METRICS) {
      const metric = anonymous.getSingleMetric(name);
      if (!metric) continue;
      anonymous.removeSingleMetric(name);
      revealing.registerMetric(metric);
    }
    processRegistries = { anonymous, revealing };
  }
  return processRegistries;
}

/**
 * Prometheus metrics, kept in a registry per app instance (never prom-client's global one), so several apps in one
 * process (tests) each count their own requests and never clash with "metric already registered":
 *
 * - `http_request_duration_seconds` (histogram) and `http_requests_total` (counter) by `method`, `route`,
 *   `status_code`, observed when each response is sent. `route` is the route pattern (`/projects/:id`), never the raw
 *   path, and `not_found` for requests that matched no route.
 * - `usine_builds{status}` for every status (zeros included) and `usine_build_queue_depth`, read at scrape time from
 *   build_status_count, which triggers keep (migration 0008): a scrape reads at most 16 small rows, never counts the
 *   builds table, so its cost does not grow with the builds kept. Counters in each process would have been cheaper
 *   still, but they count only what that process did and restart at zero; these are the database's exact figures,
 *   the same from every replica, whoever wrote the builds.
 * - `usine_build_workers{state}`: this process's build workers, busy and idle (set by plugins/app/build-engine.ts).
 * - `usine_jobs{status}` for every job status (zeros included; current attempts only), `usine_job_queue_depth` and
 *   `usine_jobs_running`, read the same way from job_status_count (migration 0012); `usine_job_duration_seconds`, a
 *   histogram of the simulated seconds the jobs this process ran lasted.
 * - the default process metrics, without REVEALING_METRICS unless METRICS_TOKEN is set.
 *
 * With METRICS_ENABLED=false nothing is measured and routes/metrics registers no route.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    if (!fastify.config.METRICS_ENABLED) return;

    const registry = new Registry();
    const http = new RequestMetrics(DURATION_BUCKETS);
    const served = (metric: { name: string; get(): CollectedMetric }) =>
      // prom-client's Registry renders any object with a name and a get() like its own metrics; its type names only those.
      registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
    served({
      name: 'http_request_duration_seconds',
      get: () =>
        http.durationHistogram(
          'http_request_duration_seconds',
          'Time to answer HTTP requests, in seconds, by method, route pattern (not_found: no route matched) and status code',
        ),
    });
    served({
      name: 'http_requests_total',
      get: () => http.requestCounter('http_requests_total', 'HTTP requests answered, by method, route pattern (not_found: no route matched) and status code'),
    });

    fastify.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
      // A live log stream lasts as long as its build: its length would swamp the latency histogram.
      const streamed = String(reply.getHeader('content-type') ?? '').startsWith('text/event-stream');
      http.record(request.method, request.routeOptions.url ?? NOT_FOUND_ROUTE, reply.statusCode, streamed ? undefined : reply.elapsedTime / 1000);
      done();
    });

    // Both build gauges are read in the same scrape: they share one in-flight query.
    let pending: Promise<Record<BuildStatusValue, number> | undefined> | undefined;
    const countBuilds = () =>
      (pending ??= fastify.buildsRepository
        .countByStatus()
        .catch((error: unknown) => {
          fastify.log.warn({ err: error }, 'metrics: counting builds by status failed');
          return undefined;
        })
        .finally(() => {
          pending = undefined;
        }));
    // While the database is known to be down, a scrape answers at once, without these two series' figures.
    const buildCounts = () => (fastify.databaseAvailability?.available === false ? Promise.resolve(undefined) : countBuilds());

    new Gauge({
      name: 'usine_builds',
      help: 'Builds in the database, by status (queued, running, success, fail, canceled)',
      labelNames: ['status'] as const,
      registers: [registry],
      async collect() {
        const counts = await buildCounts();
        // A failed query leaves no series rather than stale ones.
        this.reset();
        if (counts) for (const status of BUILD_STATUSES) this.set({ status }, counts[status]);
      },
    });
    new Gauge({
      name: 'usine_build_queue_depth',
      help: 'Builds waiting to run (status queued)',
      registers: [registry],
      async collect() {
        const counts = await buildCounts();
        // A metric without labels always has a sample: NaN says "unknown" when the query failed.
        this.set(counts ? counts.queued : NaN);
      },
    });
    const buildWorkers = new Gauge({
      name: 'usine_build_workers',
      help:
        'Build workers of this process by state: busy (running a build) and idle (BUILD_CONCURRENCY in all)',
      labelNames: ['state'] as const,
      registers: [registry],
    });
    buildWorkers.set({ state: 'busy' }, 0);
    buildWorkers.set({ state: 'idle' }, 0);

    // Jobs: how many are in each status (current attempts), claimable (queued) and running included, read at scrape
    // time from job_status_count, which triggers keep (migration 0012) as build_status_count is kept for builds: the
    // three job gauges share one in-flight query of a few rows per scrape; and how long finished jobs ran.
    let pendingJobs: Promise<Record<JobStatus, number> | undefined> | undefined;
    const jobCounts = () =>
      fastify.databaseAvailability?.available === false
        ? Promise.resolve(undefined)
        : (pendingJobs ??= fastify.jobsRepository
            .countByStatus()
            .catch((error: unknown) => {
              fastify.log.warn({ err: error }, 'metrics: counting jobs failed');
              return undefined;
            })
            .finally(() => {
              pendingJobs = undefined;
            }));
    new Gauge({
      name: 'usine_jobs',
      help: `Jobs in the database, current attempts only (a retried job counts once, as its latest attempt), by status (${JOB_STATUSES.join(', ')})`,
      labelNames: ['status'] as const,
      registers: [registry],
      async collect() {
        const counts = await jobCounts();
        // A failed query leaves no series rather than stale ones.
        this.reset();
        if (counts) for (const status of JOB_STATUSES) this.set({ status }, counts[status]);
      },
    });
    new Gauge({
      name: 'usine_job_queue_depth',
      help: 'Jobs whose needs are met, waiting for a worker (status queued)',
      registers: [registry],
      async collect() {
        this.set((await jobCounts())?.queued ?? NaN);
      },
    });
    new Gauge({
      name: 'usine_jobs_running',
      help: 'Jobs running now, on any replica',
      registers: [registry],
      async collect() {
        this.set((await jobCounts())?.running ?? NaN);
      },
    });
    const jobDuration = new Histogram({
      name: 'usine_job_duration_seconds',
      help: 'Simulated seconds finished jobs ran, by status (success, fail), observed by the process that ran them',
      labelNames: ['status'] as const,
      buckets: [0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600],
      registers: [registry],
    });

    const { anonymous, revealing } = processMetrics();
    // With a token every reader is a scraper that holds it (routes/metrics checks it): the revealing series may go.
    const registries = fastify.config.METRICS_TOKEN === undefined ? [anonymous, registry] : [anonymous, revealing, registry];
    fastify.decorate('metrics', { registry: Registry.merge(registries), buildWorkers, jobDuration });
  },
  { name: 'metrics' },
);
