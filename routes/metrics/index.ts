import { createHash, timingSafeEqual } from 'node:crypto';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { onRequestHookHandler } from 'fastify';
import { problemResponses } from '../../src/schemas/responses.js';

const EXAMPLE = [
  '# HELP http_request_duration_seconds Time to answer HTTP requests, in seconds, by method, route pattern (not_found: no route matched) and status code',
  '# TYPE http_request_duration_seconds histogram',
  'http_request_duration_seconds_bucket{le="0.005",method="GET",route="/projects/:id",status_code="200"} 3',
  'http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/projects/:id",status_code="200"} 4',
  'http_request_duration_seconds_sum{method="GET",route="/projects/:id",status_code="200"} 0.0192',
  'http_request_duration_seconds_count{method="GET",route="/projects/:id",status_code="200"} 4',
  '# HELP usine_builds Builds in the database, by status (queued, running, success, fail, canceled)',
  '# TYPE usine_builds gauge',
  'usine_builds{status="queued"} 0',
  'usine_builds{status="success"} 12',
  'usine_builds{status="fail"} 5',
  '# HELP usine_build_queue_depth Builds waiting to run (status queued)',
  '# TYPE usine_build_queue_depth gauge',
  'usine_build_queue_depth 0',
  '# HELP usine_jobs Jobs in the database, current attempts only (a retried job counts once, as its latest attempt), by status (created, queued, running, success, fail, canceled, skipped, manual)',
  '# TYPE usine_jobs gauge',
  'usine_jobs{status="queued"} 1',
  'usine_jobs{status="success"} 46',
  'usine_jobs{status="fail"} 3',
  '# HELP nodejs_eventloop_lag_seconds Lag of event loop in seconds.',
  '# TYPE nodejs_eventloop_lag_seconds gauge',
  'nodejs_eventloop_lag_seconds 0.004',
  '',
].join('\n');

const MetricsText = Type.String({
  description:
    'Prometheus text exposition format 0.0.4: `http_request_duration_seconds` (histogram) and `http_requests_total` by ' +
    '`method`, `route` (the route pattern, `not_found` when none matched) and `status_code`; `usine_builds{status}`; ' +
    '`usine_build_queue_depth`; `usine_build_workers{state}`; `usine_jobs{status}` (current attempts: a retried job ' +
    'counts once), `usine_job_queue_depth`, `usine_jobs_running` and `usine_job_duration_seconds{status}` (histogram, ' +
    'simulated seconds); the default `process_*` and `nodejs_*` figures (`nodejs_version_info` and the per-space ' +
    '`nodejs_heap_space_size_*` only when METRICS_TOKEN is set).',
});

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * The hook that lets through only `Authorization: Bearer <token>` (the scheme in any case, as RFC 9110 allows). Both
 * sides are hashed before the constant-time comparison, so that neither the token's length nor a matching prefix
 * shows in the time taken. The rate limit runs before (a root hook): guesses are throttled like any request.
 */
function requireToken(token: string, unauthorized: (detail: string) => Error): onRequestHookHandler {
  const expected = digest(token);
  return (request, _reply, done) => {
    const header = request.headers.authorization;
    if (header === undefined) return done(unauthorized('This server protects its metrics: send Authorization: Bearer <METRICS_TOKEN>'));
    const space = header.indexOf(' ');
    const presented = space === 6 && header.slice(0, 6).toLowerCase() === 'bearer' ? header.slice(7) : undefined;
    if (presented === undefined || !timingSafeEqual(digest(presented), expected)) {
      return done(unauthorized('The metrics token is not valid'));
    }
    done();
  };
}

/** `GET /metrics` for Prometheus; absent when METRICS_ENABLED is false (plugins/external/metrics.ts measures). */
const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const metrics = fastify.metrics;
  const { METRICS_ENABLED, METRICS_TOKEN } = fastify.config;
  if (!METRICS_ENABLED || !metrics) return;

  fastify.get(
    '/metrics',
    {
      // Under the global limit, like every route: an open scrape costs little now (no count over builds), but its
      // text is the largest answer an anonymous client can ask for, and token guesses must be throttled. A scraper
      // every 15 s uses 4 of the RATE_LIMIT_MAX requests per minute its address is allowed.
      config: { database: false },
      ...(METRICS_TOKEN === undefined ? {} : { onRequest: requireToken(METRICS_TOKEN, (detail) => fastify.httpErrors.unauthorized(detail)) }),
      schema: {
        tags: ['monitoring'],
        operationId: 'getMetrics',
        summary: 'Prometheus metrics',
        description:
          'Metrics in the Prometheus text format, for a scraper: HTTP request durations and counts by route and status, ' +
          'builds and jobs by status (both counted by the database, the same figures from every replica), build and ' +
          'job queue depth, build workers, job durations, process and event-loop figures. Without METRICS_TOKEN ' +
          'no authentication (keep it reachable only from the monitoring network) and no series that reveals the ' +
          'Node version; with it, `Authorization: Bearer <METRICS_TOKEN>` is required (401 otherwise) and those series ' +
          'are included. Rate limited like every route. METRICS_ENABLED=false removes the route.',
        produces: ['text/plain'],
        response: {
          200: {
            description: 'The metrics, as `text/plain; version=0.0.4; charset=utf-8`',
            // The example sits on the media type: OpenAPI 3.0 schemas take no `examples` array.
            content: { 'text/plain': { schema: MetricsText, example: EXAMPLE } },
          },
          ...problemResponses(429),
          // Documented by the servers that send it: an open scrape (no token) never answers 401.
          ...(METRICS_TOKEN === undefined
            ? {}
            : { 401: { ...problemResponses(401)[401], description: 'No `Authorization: Bearer` header, or not METRICS_TOKEN (`unauthorized`)' } }),
        },
      },
    },
    async (_request, reply) => {
      const text = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).send(text);
    },
  );
};

export default routes;
