import argon2 from 'argon2';
import fp from 'fastify-plugin';

/** OWASP Password Storage Cheat Sheet: argon2id, 19 MiB, 2 iterations, parallelism 1. */
export const ARGON2_OPTIONS = { type: argon2.argon2id, memoryCost: 19 * 1024, timeCost: 2, parallelism: 1 } as const;

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
    const hash = (password: string) => argon2.hash(password, ARGON2_OPTIONS);
    const dummyHash = await hash(`unknown-user-${Math.random()}`);
    const verify = async (stored: string | undefined, password: string) => {
      try {
        const matches = await argon2.verify(stored ?? dummyHash, password);
        return matches && stored !== undefined;
      } catch {
        return false; // a malformed stored hash never authenticates
      }
    };
    fastify.decorate('passwords', { hash, verify });
  },
  { name: 'passwords' },
);
