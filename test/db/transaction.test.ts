import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Database } from '../../src/db/client.js';
import { runMigrations } from '../../src/db/migrate.js';
import { step } from '../../src/db/transaction.js';
import { createScratchDatabase, testDb, uniqueName, type ScratchDatabase } from '../helper.js';

/** Transaction scripts (src/db/transaction.ts): all of a script's writes, or none. */
describe(`transaction scripts (${testDb})`, () => {
  let scratch: ScratchDatabase;
  let database: Database;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    const config = testDb === 'pg' ? ({ dialect: 'pg', url: scratch.url } as const) : ({ dialect: 'sqlite', path: ':memory:' } as const);
    database = createDatabase(config);
    await runMigrations(database, config);
  });
  afterAll(async () => {
    await database?.close();
    await scratch?.drop();
  });

  const projectNamed = async (name: string) => {
    const { projects } = database.tables;
    return database.db.select().from(projects).where(eq(projects.name, name));
  };

  it('commits every write of a script and returns its result, each query answering with its rows', async () => {
    const name = uniqueName('tx');
    const { projects } = database.tables;
    const result = await database.transaction(function* (tx) {
      const inserted = yield* step(tx.insert(projects).values({ name, repo: 'https://example.com/a.git' }).returning());
      const read = yield* step(tx.select({ repo: projects.repo }).from(projects).where(eq(projects.name, name)));
      return { id: inserted[0]?.id, repo: read[0]?.repo };
    });
    expect(result.repo).toBe('https://example.com/a.git');
    expect((await projectNamed(name)).map((project) => project.id)).toEqual([result.id]);
  });

  it('rolls every write back when the script throws', async () => {
    const name = uniqueName('tx');
    const { projects } = database.tables;
    await expect(
      database.transaction(function* (tx) {
        yield* step(tx.insert(projects).values({ name, repo: 'https://example.com/b.git' }).returning());
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect(await projectNamed(name)).toEqual([]);
  });

  it('rolls back when a query fails (a unique name taken), and leaves the database usable', async () => {
    const name = uniqueName('tx');
    const other = uniqueName('tx');
    const { projects } = database.tables;
    await database.db.insert(projects).values({ name, repo: 'https://example.com/c.git' });
    await expect(
      database.transaction(function* (tx) {
        yield* step(tx.insert(projects).values({ name: other, repo: 'https://example.com/d.git' }).returning());
        yield* step(tx.insert(projects).values({ name, repo: 'https://example.com/e.git' }).returning());
      }),
    ).rejects.toThrow();
    expect(await projectNamed(other)).toEqual([]);
    expect(await projectNamed(name)).toHaveLength(1);
  });
});
