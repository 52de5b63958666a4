import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

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
  '# HELP nodejs_eventloop_lag_seconds Lag of event loop in seconds.',
  '# TYPE nodejs_eventloop_lag_seconds gauge',
  'nodejs_eventloop_lag_seconds 0.004',
  '',
].join('\n');

const MetricsText = Type.String({
  description:
    'Prometheus text exposition format 0.0.4: `http_request_duration_seconds` (histogram) and `http_requests_total` by ' +
    '`method`, `route` (the route pattern, `not_found` when none matched) and `status_code`; `usine_builds{status}`; ' +
    '`usine_build_queue_depth`; `usine_build_workers{state}`; the default `process_*` and `nodejs_*` figures.',
});

/** `GET /metrics` for Prometheus; absent when METRICS_ENABLED is false (plugins/external/metrics.ts measures). */
const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const metrics = fastify.metrics;
  if (!fastify.config.METRICS_ENABLED || !metrics) return;

  fastify.get(
    '/metrics',
    {
      // A scraper polls it on a schedule: never throttled (nor counted against the other routes' limit).
      config: { rateLimit: false, database: false },
      schema: {
        tags: ['monitoring'],
        operationId: 'getMetrics',
        summary: 'Prometheus metrics',
        description:
          'Metrics in the Prometheus text format, for a scraper: HTTP request durations and counts by route and status, ' +
          'builds by status, build queue depth, build workers, process and event-loop figures. No authentication ' +
          '(keep it reachable only from the monitoring network); METRICS_ENABLED=false removes the route.',
        produces: ['text/plain'],
        response: {
          200: {
            description: 'The metrics, as `text/plain; version=0.0.4; charset=utf-8`',
            // The example sits on the media type: OpenAPI 3.0 schemas take no `examples` array.
            content: { 'text/plain': { schema: MetricsText, example: EXAMPLE } },
          },
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
