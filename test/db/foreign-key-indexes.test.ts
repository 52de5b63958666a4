/**
 * A foreign key's `on delete` runs one lookup per deleted parent row: without an index on the referencing column that
 * lookup scans the table, and deleting a project (its builds go by cascade, each clearing `retry_of` in the builds
 * that retried it) grows with the square of its builds (migration 0010). Every foreign key's column must lead an index
 * (a new one without fails here); the delete must keep the data right.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { eq, sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { bearer, testDb, uniqueName, useTestApp } from '../helper.js';

const ctx = useTestApp({ BUILD_CONCURRENCY: '0' });

/** Foreign keys (`table.column`) whose column does not lead any index of its table, as the database's catalog says. */
async function unindexedForeignKeys(): Promise<string[]> {
  const { database } = ctx.app;
  if (database.dialect === 'sqlite') {
    const client = (database.db as unknown as { $client: BetterSqlite3.Database }).$client;
    const tables = client.prepare("select name from sqlite_master where type = 'table' and name not like 'sqlite_%'").pluck().all() as string[];
    return tables.flatMap((table) => {
      const leading = new Set(
        (client.pragma(`index_list("${table}")`) as { name: string }[]).map(
          (index) => (client.pragma(`index_info("${index.name}")`) as { seqno: number; name: string }[]).find((c) => c.seqno === 0)?.name,
        ),
      );
      return (client.pragma(`foreign_key_list("${table}")`) as { from: string }[])
        .filter((key) => !leading.has(key.from))
        .map((key) => `${table}.${key.from}`);
    });
  }
  const rows = await database.db.execute(sql`
    select c.conrelid::regclass::text || '.' || a.attname as key
    from pg_constraint c join pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
    where c.contype = 'f' and c.connamespace = 'public'::regnamespace
      and not exists (select 1 from pg_index i where i.indrelid = c.conrelid and i.indkey[0] = c.conkey[1])`);
  return [...rows].map((row) => (row as { key: string }).key);
}

describe(`foreign keys (${testDb})`, () => {
  it('each lead an index of their table, so a cascading delete looks each row up instead of scanning', async () => {
    expect(await unindexedForeignKeys()).toEqual([]);
  });

  it('delete a project whose builds retried one another, and leave other projects’ retries alone', async () => {
    const create = async () => {
      const response = await ctx.app.inject({
        method: 'POST',
        url: '/projects',
        headers: bearer(ctx.adminToken),
        payload: { name: uniqueName('fk'), repo: 'https://github.com/usine/fk' },
      });
      return (response.json() as { id: number }).id;
    };
    const [doomed, kept] = [await create(), await create()];
    const trigger = async (project: number) =>
      (
        (await ctx.app.inject({ method: 'POST', url: `/projects/${project}/build`, headers: bearer(ctx.adminToken) })).json() as {
          id: number;
        }
      ).id;
    const first = await trigger(doomed);
    const keptBuild = await trigger(kept);
    const { builds } = ctx.app.database.tables;
    // Retries chained inside the doomed project, and one build of the kept project that retried a doomed build.
    await ctx.app.database.db.update(builds).set({ retry_of: first }).where(eq(builds.id, keptBuild));
    for (let i = 0; i < 20; i++) {
      const retry = await trigger(doomed);
      await ctx.app.database.db.update(builds).set({ retry_of: first }).where(eq(builds.id, retry));
    }

    const deleted = await ctx.app.inject({ method: 'DELETE', url: `/projects/${doomed}`, headers: bearer(ctx.adminToken) });
    expect(deleted.statusCode).toBe(204);
    const survivor = await ctx.app.inject({ url: `/builds/${keptBuild}`, headers: bearer(ctx.adminToken) });
    expect(survivor.statusCode).toBe(200);
    expect(survivor.json()).toMatchObject({ id: keptBuild, retry_of: null });
  });
});
