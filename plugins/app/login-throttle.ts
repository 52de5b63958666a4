import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
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
      /**
       * preHandler (needs the parsed body): RATE_LIMIT_LOGIN_USER_MAX attempts per (client IP, username) per window,
       * then a progressive delay for a username tried more than that from all addresses together.
       */
      perUsername: preHandlerAsyncHookHandler;
    };
  }
}

type Limiter = ReturnType<FastifyInstance['createRateLimit']>;

/** The username as the limit sees it: case-folded, and hashed so that Redis never holds what people typed. */
const usernameKey = (username: string) =>
  createHash('sha256').update(username.normalize('NFKC').toLowerCase()).digest('base64url').slice(0, 32);

/** The username counter only counts: its limit is never reached. */
const COUNT_ONLY = 1_000_000_000;
/** Delayed attempts wait 1/32 of RATE_LIMIT_LOGIN_DELAY_MAX_MS, then twice as long each time: the maximum from the 6th. */
const DOUBLINGS = 5;

/**
 * Brute-force protection for `POST /login`, without handing anyone a way to lock a user out:
 *
 * - per client IP: RATE_LIMIT_LOGIN_IP_MAX attempts per window, then 429 (one address trying many accounts);
 * - per (client IP, username): RATE_LIMIT_LOGIN_USER_MAX attempts per window, then 429 (one address guessing one
 *   account). Only that address is refused: the account's owner elsewhere still logs in;
 * - per username, from all addresses together: beyond RATE_LIMIT_LOGIN_USER_MAX attempts in the window, each attempt
 *   waits before its password is checked: 1/32 of RATE_LIMIT_LOGIN_DELAY_MAX_MS (5 s), then twice as long each time.
 *   A delay, not a refusal: a per-username lockout (the previous design) let anyone who knows a username keep its
 *   owner out for good by failing a few logins every window. A distributed guesser is bounded by the per-address
 *   limits times its addresses, and slowed; the owner, at worst, waits the maximum delay once.
 *
 * Every attempt counts, successful or not. All counters use the rate-limit plugin's store (Redis when REDIS_URL is
 * set, so every replica shares them) and fail closed: when the store does not answer, /login answers 503 rather than
 * allowing unlimited guesses. They are built with `fastify.createRateLimit`, not `fastify.rateLimit()` hooks: the
 * plugin marks a request once any of its hooks has run, so a second hook on the same request would be skipped.
 */
export default fp(
  async (fastify) => {
    const { RATE_LIMIT_LOGIN_IP_MAX, RATE_LIMIT_LOGIN_USER_MAX, RATE_LIMIT_LOGIN_WINDOW_S, RATE_LIMIT_LOGIN_DELAY_MAX_MS } = fastify.config;
    const timeWindow = RATE_LIMIT_LOGIN_WINDOW_S * 1000;
    const usernameOf = (request: FastifyRequest) => usernameKey((request.body as { username: string }).username);

    const byIp = fastify.createRateLimit({
      max: RATE_LIMIT_LOGIN_IP_MAX,
      timeWindow,
      skipOnError: false,
      keyGenerator: (request) => `login-ip:${normalizeIP(request.ip)}`,
    });
    const byIpAndUsername = fastify.createRateLimit({
      max: RATE_LIMIT_LOGIN_USER_MAX,
      timeWindow,
      skipOnError: false,
      keyGenerator: (request) => `login-ip-user:${normalizeIP(request.ip)}:${usernameOf(request)}`,
    });
    const byUsername = fastify.createRateLimit({
      max: COUNT_ONLY,
      timeWindow,
      skipOnError: false,
      keyGenerator: (request) => `login-user:${usernameOf(request)}`,
    });

    /** The limiter's answer, or the 503 to send when its store does not answer. */
    async function consult(limiter: Limiter, request: FastifyRequest, reply: FastifyReply) {
      try {
        return await limiter(request);
      } catch (error) {
        request.log.error({ err: error }, 'login throttle: the rate-limit store does not answer');
        reply.header('retry-after', 5);
        throw Object.assign(new Error('Logging in is unavailable for a moment; retry shortly'), { statusCode: 503 });
      }
    }

    async function enforce(limiter: Limiter, request: FastifyRequest, reply: FastifyReply, what: string) {
      const result = await consult(limiter, request, reply);
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

    /** Waits as long as the username's attempts from everywhere in this window call for (nothing, at first). */
    async function slowDown(request: FastifyRequest, reply: FastifyReply) {
      const result = await consult(byUsername, request, reply);
      if (result.isAllowed || RATE_LIMIT_LOGIN_DELAY_MAX_MS === 0) return;
      const beyond = COUNT_ONLY - result.remaining - RATE_LIMIT_LOGIN_USER_MAX;
      if (beyond <= 0) return;
      const delayMs = Math.round(RATE_LIMIT_LOGIN_DELAY_MAX_MS / 2 ** Math.max(0, DOUBLINGS - (beyond - 1)));
      request.log.warn({ delay_ms: delayMs, attempts: RATE_LIMIT_LOGIN_USER_MAX + beyond }, 'login slowed: many attempts on this username');
      await sleep(delayMs);
    }

    fastify.decorate('loginThrottle', {
      perIp: async (request, reply) => enforce(byIp, request, reply, 'from this address'),
      perUsername: async (request, reply) => {
        if (typeof (request.body as { username?: unknown } | undefined)?.username !== 'string') return;
        await enforce(byIpAndUsername, request, reply, 'for this username from this address');
        await slowDown(request, reply);
      },
    });
  },
  { name: 'login-throttle', dependencies: ['rate-limit'] },
);
