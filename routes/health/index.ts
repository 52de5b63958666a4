import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { sql } from 'drizzle-orm';
import type { BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import type { Database } from '../../src/db/client.js';
import { migrationsFolder } from '../../src/db/migrate.js';
import { withTimeout } from '../../src/timeout.js';
import { problemResponses } from '../../src/schemas/responses.js';
import { NEVER_SHED } from '../../plugins/external/under-pressure.js';

/** How long the readiness probe waits for the database before calling it unreachable. */
const PING_TIMEOUT_MS = 2000;

const LiveBody = Type.Object(
  { status: Type.Literal('ok', { description: 'Always `ok`: the process answers', examples: ['ok'] }) },
  { description: 'The process is alive', examples: [{ status: 'ok' }] },
);

const Check = (description: string) => Type.Literal('ok', { description, examples: ['ok'] });

const ReadyBody = Type.Object(
  {
    status: Type.Literal('ok', { description: 'Always `ok` with a 200: every check passed', examples: ['ok'] }),
    checks: Type.Object(
      {
        database: Check('The database answered a query'),
        migrations: Check("Every migration this version ships is applied (the drizzle journal's latest is recorded)"),
        lifecycle: Check('The process is not shutting down'),
      },
      { description: 'Each readiness check and its result' },
    ),
  },
  {
    description: 'The process can take traffic',
    examples: [{ status: 'ok', checks: { database: 'ok', migrations: 'ok', lifecycle: 'ok' } }],
  },
);

/** `when` of the newest migration in drizzle/<dialect>/meta/_journal.json: what "migrations applied" means. */
function latestShippedMigration(dialect: Database['dialect']): number {
  const journal = JSON.parse(readFileSync(join(migrationsFolder(dialect), 'meta', '_journal.json'), 'utf8')) as {
    entries: { when: number }[];
  };
  return Math.max(0, ...journal.entries.map((entry) => entry.when));
}

/** `created_at` of the newest migration recorded in the database (drizzle's own table); a query, so also a ping. */
async function latestAppliedMigration(database: Database): Promise<number> {
  if (database.dialect === 'sqlite') {
    const db = database.db as unknown as BetterSQLite3Database;
    const row = db.get<{ latest: number | null }>(sql`select max(created_at) as latest from __drizzle_migrations`);
    return Number(row?.latest ?? 0);
  }
  const rows = (await database.db.execute(sql`select max(created_at) as latest from drizzle.__drizzle_migrations`)) as unknown as {
    latest: string | number | null;
  }[];
  return Number(rows[0]?.latest ?? 0);
}

/** Kubernetes-style probes. Never rate limited, never shed under load: a busy process must not look dead. */
const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const shipped = latestShippedMigration(fastify.database.dialect);
  const probeConfig = { rateLimit: false as const, pressureHandler: NEVER_SHED, database: false };

  fastify.get(
    '/health/live',
    {
      config: probeConfig,
      schema: {
        tags: ['monitoring'],
        operationId: 'getLiveness',
        summary: 'Liveness probe',
        description:
          'Answers 200 `{"status":"ok"}` as long as the process can answer at all; it does not touch the database, so a ' +
          'database outage does not get the process restarted. No authentication, no rate limit.',
        response: { 200: LiveBody },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  fastify.get(
    '/health/ready',
    {
      config: probeConfig,
      schema: {
        tags: ['monitoring'],
        operationId: 'getReadiness',
        summary: 'Readiness probe',
        description:
          'Answers 200 when this process should receive traffic: the database answers a query, the migrations this ' +
          'version ships are applied, and the process is not shutting down. Otherwise 503 `service_unavailable` with ' +
          '`Retry-After`, the detail naming the failed check (from SIGTERM on, while in-flight requests finish, it is ' +
          'always 503). No authentication, no rate limit.',
        response: { 200: ReadyBody, ...problemResponses(503) },
      },
    },
    async () => {
      if (fastify.lifecycle.shuttingDown) {
        throw fastify.httpErrors.serviceUnavailable('Not ready: the process is shutting down');
      }
      if (!fastify.databaseAvailability.available) {
        throw fastify.httpErrors.serviceUnavailable('Not ready: the database does not answer');
      }
      let applied: number;
      try {
        applied = await withTimeout(latestAppliedMigration(fastify.database), PING_TIMEOUT_MS);
      } catch (error) {
        fastify.log.warn({ err: error }, 'readiness: the database does not answer');
        throw fastify.httpErrors.serviceUnavailable('Not ready: the database does not answer');
      }
      if (applied < shipped) {
        throw fastify.httpErrors.serviceUnavailable('Not ready: the database migrations are not all applied');
      }
      return { status: 'ok' as const, checks: { database: 'ok' as const, migrations: 'ok' as const, lifecycle: 'ok' as const } };
    },
  );
};

export default routes;
