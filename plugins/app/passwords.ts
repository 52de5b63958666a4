import { availableParallelism } from 'node:os';
import argon2 from 'argon2';
import fp from 'fastify-plugin';

/** OWASP Password Storage Cheat Sheet: argon2id, 19 MiB, 2 iterations, parallelism 1. */
export const ARGON2_OPTIONS = { type: argon2.argon2id, memoryCost: 19 * 1024, timeCost: 2, parallelism: 1 } as const;

/**
 * At most this many hashes at once, one per core. Argon2 runs on libuv's thread pool (off the event loop), but more
 * hashes than cores at once only make each slower, hold 19 MiB each, take thread-pool slots file I/O needs, and leave
 * the event loop fewer turns on a core, so every other request slows down during a login flood.
 */
const MAX_CONCURRENT_HASHES = Math.max(1, availableParallelism());

/** A counting semaphore: runs `task` once fewer than `limit` others run. */
function limiter(limit: number) {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    else active++;
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
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
    const limit = limiter(MAX_CONCURRENT_HASHES);
    const hash = (password: string) => limit(() => argon2.hash(password, ARGON2_OPTIONS));
    const dummyHash = await hash(`unknown-user-${Math.random()}`);
    const verify = async (stored: string | undefined, password: string) => {
      try {
        const matches = await limit(() => argon2.verify(stored ?? dummyHash, password));
        return matches && stored !== undefined;
      } catch {
        return false; // a malformed stored hash never authenticates
      }
    };
    fastify.decorate('passwords', { hash, verify });
  },
  { name: 'passwords' },
);
