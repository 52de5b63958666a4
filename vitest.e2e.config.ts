import { defineConfig } from 'vitest/config';
import { postgresAnswers, testDatabaseUrl } from './test/pg-available.js';

/**
 * The browser tests (`npm run test:e2e`): headless Chromium drives the Swagger UI at /apidocs of a listening server.
 * Separate from `npm test` (whose `test/**\/*.test.ts` does not match `*.e2e.ts`), so a machine without Chromium still
 * passes the main suite. Like the main suite, the files run on SQLite and, when it answers, on PostgreSQL
 * (TEST_DATABASE_URL); under CI=true a silent PostgreSQL is an error.
 */
export default defineConfig(async () => {
  const url = testDatabaseUrl();
  const pgUp = await postgresAnswers(url);
  if (!pgUp) {
    const message = `PostgreSQL at ${url} does not answer (set TEST_DATABASE_URL)`;
    if (process.env.CI === 'true') throw new Error(`${message}: CI needs both databases.`);
    console.warn(`\n!! ${message}: the browser tests run on SQLite only.\n`);
  }
  const project = (name: 'sqlite' | 'pg') => ({ extends: true as const, test: { name: `e2e-${name}`, env: { TEST_DB: name } } });
  return {
    test: {
      include: ['test/e2e/**/*.e2e.ts'],
      // autoload's import() must go through Vite, or Node meets the .ts route files raw.
      server: { deps: { inline: ['@fastify/autoload'] } },
      testTimeout: 90_000,
      hookTimeout: 60_000,
      // One browser at a time: the projects' files do not compete for CPU and their screenshots stay comparable.
      fileParallelism: false,
      projects: pgUp ? [project('sqlite'), project('pg')] : [project('sqlite')],
    },
  };
});
