import underPressure from '@fastify/under-pressure';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

type PressureHandler = (request: FastifyRequest, reply: FastifyReply, type: string, value: number | undefined) => Promise<void> | void;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** @fastify/under-pressure's per-route handler; `NEVER_SHED` exempts a route (the health probes). */
    pressureHandler?: PressureHandler;
  }
}

/** Route `config: { pressureHandler: NEVER_SHED }`: the route is served even when the process is overloaded. */
export const NEVER_SHED: PressureHandler = () => undefined;

const MEASURE: Record<string, (value: number) => string> = {
  eventLoopDelay: (value) => `event loop delay ${Math.round(value)} ms`,
  heapUsedBytes: (value) => `heap used ${Math.round(value / 1024 / 1024)} MiB`,
  rssBytes: (value) => `resident memory ${Math.round(value / 1024 / 1024)} MiB`,
};

/**
 * Load shedding: while the event loop delay (or, when configured, the heap or RSS) is over its threshold, every
 * request but the health probes gets a 503 `service_unavailable` problem with `Retry-After`, built by the root error
 * handler like any other problem. Sampled every UNDER_PRESSURE_SAMPLE_INTERVAL_MS; a threshold of 0 turns its check
 * off; the event loop delay counts from the second sample after the app is ready. No status route is exposed: `/health/*` and `/status` are Usine's own.
 */
export default fp(
  async (fastify) => {
    const c = fastify.config;
    // The event loop delay is sampled from the moment the plugin is registered: the first samples after the start
    // measure the start itself (routes compiled, migrations run), not the load. A process that has just become ready
    // would shed its first requests for that (a fresh replica answering 503 right after its readiness probe passed),
    // so the delay is not acted on until two samples have been taken entirely after `ready`.
    let readyAt: number | undefined;
    fastify.addHook('onReady', async () => {
      readyAt = performance.now();
    });
    const measuresTheStart = () => readyAt === undefined || performance.now() - readyAt < 2 * c.UNDER_PRESSURE_SAMPLE_INTERVAL_MS;
    await fastify.register(underPressure, {
      maxEventLoopDelay: c.UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS,
      maxHeapUsedBytes: c.UNDER_PRESSURE_MAX_HEAP_USED_MB * 1024 * 1024,
      maxRssBytes: c.UNDER_PRESSURE_MAX_RSS_MB * 1024 * 1024,
      sampleInterval: c.UNDER_PRESSURE_SAMPLE_INTERVAL_MS,
      exposeStatusRoute: false,
      pressureHandler: async (request, reply, type, value) => {
        if (type === 'eventLoopDelay' && measuresTheStart()) return;
        const measure = value === undefined ? type : (MEASURE[type]?.(value) ?? `${type} ${value}`);
        request.log.warn({ pressure: type, value }, 'overloaded: request shed');
        reply.header('retry-after', String(c.UNDER_PRESSURE_RETRY_AFTER_S));
        // Rejected: under-pressure hands the error to the root error handler, which makes the problem body.
        throw fastify.httpErrors.serviceUnavailable(`The server is overloaded (${measure}); retry shortly`);
      },
    });
  },
  { name: 'under-pressure', dependencies: ['sensible'] },
);
