import type { FastifyInstance } from 'fastify';
import postgres, { type Sql } from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../../src/db/client.js';
import { createServer } from '../../src/server.js';
import { testDatabaseUrl } from '../pg-available.js';
import { bearer, createScratchDatabase, login, testConfig, type ScratchDatabase } from '../helper.js';

/**
 * Connections of the single-statement pool open on `url`'s database: not LISTEN's own (the driver keeps it outside the
 * pool), nor the transaction pool's (`usine-transactions`, half as many again: src/db/client.ts).
 */
async function poolConnections(url: string): Promise<number> {
  const name = new URL(url).pathname.slice(1);
  const admin = postgres(testDatabaseUrl(), { max: 1, onnotice: () => {} });
  try {
    const [row] = await admin<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity
      where datname = ${name} and pid <> pg_backend_pid() and query not ilike 'listen%' and application_name = 'usine'`;
    return row!.n;
  } finally {
    await admin.end();
  }
}

describe('DATABASE_POOL_MAX (PostgreSQL)', () => {
  const opened: Array<{ app: FastifyInstance; scratch: ScratchDatabase }> = [];
  afterAll(async () => {
    for (const { app, scratch } of opened) {
      await app.close();
      await scratch.drop();
    }
  });

  /** The connections a process holds after 60 concurrent reads (idle connections stay open for a minute). */
  async function connectionsUnderLoad(poolMax: string): Promise<number> {
    const scratch = await createScratchDatabase('pg');
    const app = await createServer(testConfig(scratch.url, { DATABASE_POOL_MAX: poolMax, BUILD_CONCURRENCY: '0', AUTH_CACHE_TTL_MS: '0' }), { logger: false });
    opened.push({ app, scratch });
    await app.ready();
    const token = await login(app);
    const responses = await Promise.all(Array.from({ length: 60 }, () => app.inject({ method: 'GET', url: '/projects', headers: bearer(token) })));
    expect(responses.every((response) => response.statusCode === 200)).toBe(true);
    return poolConnections(scratch.url);
  }

  it('caps the connections one process opens, however many requests wait', async () => {
    expect(await connectionsUnderLoad('2')).toBeLessThanOrEqual(2);
    expect(await connectionsUnderLoad('8')).toBeGreaterThan(2);
  });

  it('sends no query to a connection that is still busy: waiting queries queue in the driver (src/db/client.ts)', async () => {
    const scratch = await createScratchDatabase('pg');
    const database = createDatabase({ dialect: 'pg', url: scratch.url }, { poolMax: 1 });
    try {
      // drizzle() hands back its driver as $client; AppDb, typed for both dialects, leaves it out.
      const client = (database.db as unknown as { $client: Sql }).$client;
      await client`select 1`;
      // postgres.js sets a query's `state` (the backend it went to) when it writes the query to a connection.
      const busy = client`select pg_sleep(0.3)`;
      const waiting = client<{ n: number }[]>`select 1 as n`;
      const settled = Promise.all([busy, waiting]);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect((busy as unknown as { state?: unknown }).state, 'the first query was sent').toBeTruthy();
      expect((waiting as unknown as { state?: unknown }).state, 'the second waits for the connection').toBeFalsy();
      const [, rows] = await settled;
      expect(rows[0]!.n).toBe(1);
    } finally {
      await database.close();
      await scratch.drop();
    }
  });
});
