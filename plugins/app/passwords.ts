import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import argon2 from 'argon2';
import fp from 'fastify-plugin';

/**
 * OWASP Password Storage Cheat Sheet: argon2id with 7 MiB, 5 iterations, parallelism 1 — one of the five settings it
 * lists as equally strong (19 MiB × 2 iterations is another). Of those, this one is the fastest on this class of
 * machine (a 7 MiB block stays in the CPU caches: ~18 ms of CPU per hash against ~24 ms for 19 MiB × 2) and holds the
 * least memory while it runs. Hashes stored with other parameters still verify: argon2 reads them from the hash.
 */
export const ARGON2_OPTIONS = { type: argon2.argon2id, memoryCost: 7 * 1024, timeCost: 5, parallelism: 1 } as const;

const CORES = Math.max(1, availableParallelism());

/**
 * Share of time the event loop spends running (event-loop utilisation, over the last EVENT_LOOP_SAMPLE_MS) above
 * which, if it served requests other than the hashing ones meanwhile, it counts as busy with them.
 */
const BUSY_EVENT_LOOP = 0.25;
const EVENT_LOOP_SAMPLE_MS = 100;

/**
 * How many hashes may run at once: one per core while logins are all the event loop does (logins alone get every
 * core), one per core but one while other requests keep it busy, so that a login flood leaves a core to them. Argon2
 * runs on libuv's thread pool (off the event loop), but more hashes than cores at once only make each slower, hold
 * 7 MiB each, take thread-pool slots file I/O needs, and leave the event loop fewer turns on a core. (The pool's
 * threads also run at a lower priority: src/threadpool-priority.ts.)
 */
export function hashConcurrency(eventLoopUtilization: number, otherRequests: number, cores = CORES): number {
  return eventLoopUtilization > BUSY_EVENT_LOOP && otherRequests > 0 ? Math.max(1, cores - 1) : cores;
}

/** A counting semaphore whose limit may change: runs `task` once fewer than `limit()` others run. */
export function limiter(limit: () => number) {
  let active = 0;
  const waiting: (() => void)[] = [];
  /** Starts waiting tasks while there is room (after a task ends, or when the limit grew). */
  const pump = () => {
    while (waiting.length > 0 && active < limit()) {
      active++;
      waiting.shift()?.();
    }
  };
  const run = async <T>(task: () => Promise<T>): Promise<T> => {
    if (active >= limit() || waiting.length > 0) {
      await new Promise<void>((resolve) => {
        waiting.push(resolve);
        pump();
      });
    } else active++;
    try {
      return await task();
    } finally {
      active--;
      pump();
    }
  };
  return Object.assign(run, { pump });
}

export interface Passwords {
  hash(password: string): Promise<string>;
  /**
   * Checks a password against a stored hash. With no hash (unknown user) it verifies against a dummy
   * hash of the same cost, so response time does not reveal which usernames exist.
   */
  verify(hash: string | undefined, password: string): Promise<boolean>;
}

declare module 'fastify' {
  interface FastifyInstance {
    passwords: Passwords;
  }
}

export default fp(
  async (fastify) => {
    let concurrency = CORES;
    const limit = limiter(() => concurrency);
    // Requests received, and hashes asked for (one per login), since the last sample.
    let requests = 0;
    let hashes = 0;
    const countRequest = () => requests++;
    fastify.server.on('request', countRequest);
    let last = performance.eventLoopUtilization();
    const sampler = setInterval(() => {
      const now = performance.eventLoopUtilization();
      concurrency = hashConcurrency(performance.eventLoopUtilization(now, last).utilization, requests - hashes);
      last = now;
      requests = 0;
      hashes = 0;
      limit.pump();
    }, EVENT_LOOP_SAMPLE_MS);
    sampler.unref();
    fastify.addHook('onClose', async () => {
      clearInterval(sampler);
      fastify.server.off('request', countRequest);
    });
    const hashed = <T>(task: () => Promise<T>) => {
      hashes++;
      return limit(task);
    };
    const hash = (password: string) => hashed(() => argon2.hash(password, ARGON2_OPTIONS));
    const dummyHash = await hash(`unknown-user-${Math.random()}`);
    const verify = async (stored: string | undefined, password: string) => {
      try {
        const matches = await hashed(() => argon2.verify(stored ?? dummyHash, password));
        return matches && stored !== undefined;
      } catch {
        return false; // a malformed stored hash never authenticates
      }
    };
    fastify.decorate('passwords', { hash, verify });
  },
  { name: 'passwords' },
);
