/**
 * On PostgreSQL every Drizzle query is a prepared statement (src/db/client.ts `preparing`), on the pool for single
 * statements and in transactions: parsed and planned once per connection, not at every run. pg_prepared_statements
 * lists what the current connection has prepared; one connection per pool makes it the one that ran the query.
 */
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Database } from '../../src/db/client.js';
import { runMigrations } from '../../src/db/migrate.js';
import { step } from '../../src/db/transaction.js';
import { createScratchDatabase, testDb, type ScratchDatabase } from '../helper.js';

describe.skipIf(testDb !== 'pg')('prepared statements (pg)', () => {
  let scratch: ScratchDatabase;
  let database: Database;

  beforeAll(async () => {
    scratch = await createScratchDatabase('pg');
    const config = { dialect: 'pg', url: scratch.url } as const;
    database = createDatabase(config, { poolMax: 1 });
    await runMigrations(database, config);
  });
  afterAll(async () => {
    await database?.close();
    await scratch?.drop();
  });

  const prepared = (rows: unknown) => (rows as { statement: string }[]).map((row) => row.statement);

  it('prepares a query Drizzle sends without a name, once, and reuses it', async () => {
    const { projects } = database.tables;
    for (let run = 0; run < 3; run++) await database.db.select({ id: projects.id }).from(projects).where(eq(projects.name, `p${run}`));
    const statements = prepared(await database.db.execute(sql`select statement from pg_prepared_statements`));
    expect(statements.filter((text) => text.startsWith('select "id" from "projects" where "projects"."name" = $1'))).toHaveLength(1);
  });

  it('prepares the queries of a transaction too', async () => {
    const { builds } = database.tables;
    const statements = await database.transaction(function* (tx) {
      yield* step(tx.select({ id: builds.id }).from(builds).where(eq(builds.id, 1)));
      return prepared(yield* step(tx.execute(sql`select statement from pg_prepared_statements`)));
    });
    expect(statements.some((text) => text.startsWith('select "id" from "builds" where "builds"."id" = $1'))).toBe(true);
  });
});
