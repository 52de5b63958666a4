import rateLimit, { type errorResponseBuilderContext } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Redis } from 'ioredis';

/**
 * The error every 429 is built from: thrown to the root error handler, which turns it into the RFC 9457 problem
 * (`error: rate_limited`) and keeps the `Retry-After` header set here or by the plugin.
 */
export function rateLimitedError(detail: string): Error & { statusCode: number } {
  return Object.assign(new Error(detail), { statusCode: 429 });
}

/** `RateLimit-*` (IETF draft) headers, as @fastify/rate-limit's `enableDraftSpec` writes them. */
export const RATE_LIMIT_HEADERS = ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset'] as const;

const errorResponseBuilder = (_request: FastifyRequest, context: errorResponseBuilderContext) =>
  rateLimitedError(`Too many requests from this client (limit ${context.max} per window); retry in ${context.after}`);

/** The Redis client behind the shared store; small timeouts so that a Redis outage costs requests little time. */
function redisClient(fastify: FastifyInstance, url: string): Redis {
  const client = new Redis(url, {
    connectTimeout: 2_000,
    commandTimeout: 1_000,
    maxRetriesPerRequest: 1,
    // While Redis is down a command fails at once instead of waiting in a queue: no added latency per request.
    enableOfflineQueue: false,
    // Reconnects forever, at most every 2 s: the limit comes back when Redis does.
    retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
  });
  let down = false;
  client.on('error', (error: Error) => {
    if (down) return; // one line per outage, not one per reconnection attempt
    down = true;
    fastify.log.warn({ err: error }, 'rate-limit store (Redis) unreachable: global limit off, /login refused');
  });
  client.on('ready', () => {
    if (down) fastify.log.info('rate-limit store (Redis) reachable again');
    down = false;
  });
  return client;
}

/** Resolves when the client is ready, or after `ms` (start-up does not wait for a Redis that is down). */
function readyWithin(client: Redis, ms: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    client.once('ready', done);
    function done() {
      clearTimeout(timer);
      client.off('ready', done);
      resolve();
    }
  });
}

/**
 * Global rate limit per client IP: RATE_LIMIT_MAX requests per RATE_LIMIT_WINDOW_S, with the standard
 * `RateLimit-Limit/Remaining/Reset` headers and a 429 problem with `Retry-After` beyond it.
 *
 * - It is one root `onRequest` hook, so it runs before authentication (a flood of bad tokens is limited too) and
 *   on unknown routes (404 scans count). Nothing is exempt: `/status` is anonymous and queries the database, and
 *   the Docker HEALTHCHECK calls it twice a minute from 127.0.0.1, far below the limit. A route opts out with
 *   `config: { rateLimit: false }` (meant for liveness/metrics probes) or replaces the global limit with its own
 *   `config: { rateLimit: { max, timeWindow } }`. Limits that must run later (per username on /login) use
 *   `fastify.createRateLimit`, as plugins/app/login-throttle.ts does.
 * - With REDIS_URL the counters live in Redis under RATE_LIMIT_NAMESPACE, shared by every replica. If Redis is
 *   unreachable the global limit fails open (the API keeps answering) while /login fails closed (503).
 * - Client IPs are what TRUST_PROXY lets Fastify believe; IPv6 clients are grouped by /64.
 */
export default fp(
  async (fastify) => {
    const { RATE_LIMIT_MAX, RATE_LIMIT_WINDOW_S, REDIS_URL, RATE_LIMIT_NAMESPACE } = fastify.config;

    const redis = REDIS_URL ? redisClient(fastify, REDIS_URL) : undefined;
    if (redis) {
      fastify.addHook('onClose', async () => {
        await redis.quit().catch(() => redis.disconnect());
      });
      await readyWithin(redis, 2_000);
    }

    await fastify.register(rateLimit, {
      // Applied below as a root hook rather than per route (see above).
      global: false,
      max: RATE_LIMIT_MAX,
      timeWindow: RATE_LIMIT_WINDOW_S * 1000,
      enableDraftSpec: true,
      errorResponseBuilder,
      skipOnError: true,
      ...(redis ? { redis, nameSpace: RATE_LIMIT_NAMESPACE } : {}),
    });

    const globalLimit = fastify.rateLimit();
    fastify.addHook('onRequest', function globalRateLimit(request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) {
      // `false` opts out; an object means the route has its own limiter (added by the plugin) instead.
      if (request.routeOptions.config.rateLimit !== undefined) return done();
      globalLimit.call(this, request, reply).then(() => done(), done);
    });
  },
  { name: 'rate-limit' },
);
