import { availableParallelism } from 'node:os';
import { configDefaults, defineConfig } from 'vitest/config';
import { postgresAnswers, testDatabaseUrl } from './test/pg-available.js';

/**
 * The same test files run twice: once on SQLite and once on PostgreSQL (TEST_DB tells test/helper.ts which).
 * Without a reachable PostgreSQL the second half is skipped loudly, except under CI=true where it fails.
 * Files named `*.pg.test.ts` need PostgreSQL itself (several processes on one database): only the pg half runs them.
 */
export default defineConfig(async () => {
  const url = testDatabaseUrl();
  const pgUp = await postgresAnswers(url);
  if (!pgUp) {
    const message = `PostgreSQL at ${url} does not answer (set TEST_DATABASE_URL)`;
    if (process.env.CI === 'true') throw new Error(`${message}: CI needs both databases.`);
    console.warn(`\n${'!'.repeat(78)}\n!! ${message}.\n!! ONLY THE SQLITE HALF OF THE SUITE RUNS.\n${'!'.repeat(78)}\n`);
  }
  const project = (name: 'sqlite' | 'pg') => ({
    extends: true as const,
    test: {
      name,
      env: { TEST_DB: name },
      ...(name === 'sqlite' ? { exclude: [...configDefaults.exclude, 'test/**/*.pg.test.ts'] } : {}),
    },
  });
  return {
    test: {
      include: ['test/**/*.test.ts'],
      // autoload's import() must go through Vite, or Node meets the .ts route files raw.
      server: { deps: { inline: ['@fastify/autoload'] } },
      // Vitest's default, one worker per core but one, leaves a 2-core machine running one file at a time, while most
      // files spend their time waiting on PostgreSQL, timers and child processes: two at least.
      maxWorkers: Math.max(2, availableParallelism() - 1),
      testTimeout: 30_000,
      hookTimeout: 60_000,
      projects: pgUp ? [project('sqlite'), project('pg')] : [project('sqlite')],
    },
  };
});
