import { createHash } from 'node:crypto';
import { normalizeIP } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler, preHandlerAsyncHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import { rateLimitedError } from '../external/rate-limit.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The strict limits of `POST /login`, on top of the global one (attach both hooks to the route). */
    loginThrottle: {
      /** onRequest: RATE_LIMIT_LOGIN_IP_MAX attempts per client IP per RATE_LIMIT_LOGIN_WINDOW_S. */
      perIp: onRequestAsyncHookHandler;
      /** preHandler (needs the parsed body): RATE_LIMIT_LOGIN_USER_MAX attempts per username per window. */
      perUsername: preHandlerAsyncHookHandler;
    };
  }
}

type Limiter = ReturnType<FastifyInstance['createRateLimit']>;

/** The username as the limit sees it: case-folded, and hashed so that Redis never holds what people typed. */
const usernameKey = (username: string) =>
  createHash('sha256').update(username.normalize('NFKC').toLowerCase()).digest('base64url').slice(0, 32);

/**
 * Brute-force protection for `POST /login`: every attempt (successful or not) counts against the client IP and
 * against the username tried, so neither one IP trying many accounts nor many IPs trying one account get far.
 * Both limits use the rate-limit plugin's store (Redis when REDIS_URL is set, so every replica shares them) and
 * fail closed: when the store does not answer, /login answers 503 rather than allowing unlimited guesses.
 *
 * They are built with `fastify.createRateLimit`, not `fastify.rateLimit()` hooks: the plugin marks a request once
 * any of its hooks has run, so a second hook on the same request (after the global limit) would be skipped.
 */
export default fp(
  async (fastify) => {
    const { RATE_LIMIT_LOGIN_IP_MAX, RATE_LIMIT_LOGIN_USER_MAX, RATE_LIMIT_LOGIN_WINDOW_S } = fastify.config;
    const timeWindow = RATE_LIMIT_LOGIN_WINDOW_S * 1000;

    const byIp = fastify.createRateLimit({
      max: RATE_LIMIT_LOGIN_IP_MAX,
      timeWindow,
      skipOnError: false,
      keyGenerator: (request) => `login-ip:${normalizeIP(request.ip)}`,
    });
    const byUsername = fastify.createRateLimit({
      max: RATE_LIMIT_LOGIN_USER_MAX,
      timeWindow,
      skipOnError: false,
      keyGenerator: (request) => `login-user:${usernameKey((request.body as { username: string }).username)}`,
    });

    async function enforce(limiter: Limiter, request: FastifyRequest, reply: FastifyReply, what: string) {
      let result: Awaited<ReturnType<Limiter>>;
      try {
        result = await limiter(request);
      } catch (error) {
        request.log.error({ err: error }, 'login throttle: the rate-limit store does not answer');
        reply.header('retry-after', 5);
        throw Object.assign(new Error('Logging in is unavailable for a moment; retry shortly'), { statusCode: 503 });
      }
      if (result.isAllowed) return;
      // The headers show the tightest of the limits that apply (the global one set them first).
      const shown = Number(reply.getHeader('ratelimit-remaining'));
      if (result.isExceeded || !Number.isFinite(shown) || result.remaining <= shown) {
        reply.header('ratelimit-limit', result.max);
        reply.header('ratelimit-remaining', result.remaining);
        reply.header('ratelimit-reset', result.ttlInSeconds);
      }
      if (result.isExceeded) {
        request.log.warn({ limit: what }, 'login throttled');
        reply.header('retry-after', result.ttlInSeconds);
        throw rateLimitedError(
          `Too many login attempts ${what}: at most ${result.max} every ${RATE_LIMIT_LOGIN_WINDOW_S} s; retry in ${result.ttlInSeconds} s`,
        );
      }
    }

    fastify.decorate('loginThrottle', {
      perIp: async (request, reply) => enforce(byIp, request, reply, 'from this address'),
      perUsername: async (request, reply) => {
        if (typeof (request.body as { username?: unknown } | undefined)?.username !== 'string') return;
        await enforce(byUsername, request, reply, 'for this username');
      },
    });
  },
  { name: 'login-throttle', dependencies: ['rate-limit'] },
);
