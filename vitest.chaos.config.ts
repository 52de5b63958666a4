import { defineConfig } from 'vitest/config';

/**
 * The chaos suite (`npm run test:chaos`): database outage, overload, crashes, fuzzing, limits and races, each against
 * real server processes. The same files run in two projects, `sqlite` and `pg` (TEST_DB tells each file which); a
 * scenario that only makes sense on one database skips itself on the other. The PostgreSQL scenarios start their own
 * server (test/chaos/pg-instance.ts) or use a scratch database on TEST_DATABASE_URL. Files run one after the other:
 * they measure timings and kill processes, and the box has few cores. Each scenario writes its figures to
 * test/artifacts/chaos/*.json; scripts/reliability-report.ts turns them into RELIABILITY.md at the end (global teardown).
 */
export default defineConfig({
  test: {
    include: ['test/chaos/**/*.chaos.ts'],
    // autoload's import() must go through Vite, or Node meets the .ts route files raw.
    server: { deps: { inline: ['@fastify/autoload'] } },
    testTimeout: 300_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
    fileParallelism: false,
    // After the whole suite, passed or failed: RELIABILITY.md from test/artifacts/chaos/*.json.
    globalSetup: ['test/chaos/report-teardown.ts'],
    maxWorkers: 1,
    // A scenario about one database only is named for it: *.pg.chaos.ts (the outage of a PostgreSQL server) runs in
    // the pg project, *.sqlite.chaos.ts (transport-level overload, the database does not matter) in the sqlite one.
    projects: (['sqlite', 'pg'] as const).map((name) => ({
      extends: true as const,
      test: { name, env: { TEST_DB: name }, exclude: [name === 'pg' ? 'test/chaos/**/*.sqlite.chaos.ts' : 'test/chaos/**/*.pg.chaos.ts'] },
    })),
  },
});
