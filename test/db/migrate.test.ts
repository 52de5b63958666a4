import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { migrationsFolder } from '../../src/db/migrate.js';
import { createServer } from '../../src/server.js';
import { bearer, createScratchDatabase, login, testConfig, testDb, uniqueName, type ScratchDatabase } from '../helper.js';
import { databaseAsReleasedBefore, type OldReleaseDatabase } from './old-release.js';

/** How many migrations drizzle-kit generated for a dialect, as its journal lists them. */
function journalEntries(dialect: 'sqlite' | 'pg'): number {
  const journal = JSON.parse(readFileSync(join(migrationsFolder(dialect), 'meta', '_journal.json'), 'utf8')) as {
    entries: unknown[];
  };
  return journal.entries.length;
}

const start = (url: string) => createServer(testConfig(url), { logger: false }).then(async (app) => {
  await app.ready();
  return app;
});

async function createProject(app: FastifyInstance, name: string): Promise<number> {
  const token = await login(app);
  const response = await app.inject({
    method: 'POST',
    url: '/projects',
    headers: bearer(token),
    payload: { name, repo: 'https://github.com/usine/migrate-test' },
  });
  expect(response.statusCode).toBe(201);
  return (response.json() as { id: number }).id;
}

async function projectNames(app: FastifyInstance): Promise<string[]> {
  const response = await app.inject({ url: '/projects?per_page=100', headers: bearer(await login(app)) });
  expect(response.statusCode).toBe(200);
  return (response.json() as { items: { name: string }[] }).items.map((p) => p.name);
}

describe('migration journals', () => {
  it('list at least the initial migration, the same ones for both dialects', () => {
    expect(journalEntries('sqlite')).toBeGreaterThanOrEqual(1);
    expect(journalEntries('pg')).toBe(journalEntries('sqlite'));
  });
});

describe(`migration 0005 on a database that already has projects (${testDb})`, () => {
  let old: OldReleaseDatabase | undefined;
  let app: FastifyInstance | undefined;

  afterAll(async () => {
    await app?.close();
    await old?.drop();
  });

  it('seeds the project counter from the rows there, and the total counts on from it', async () => {
    const names = Array.from({ length: 7 }, () => uniqueName('before-0005'));
    // Seven rows, one deleted: the seed is a count, not the highest id.
    const writes = [
      `insert into projects (name, repo) values ${names.map((name) => `('${name}', 'https://github.com/usine/old')`).join(', ')}`,
      `delete from projects where name = '${names[0]}'`,
    ];
    old = await databaseAsReleasedBefore('0005_project_count', writes);
    expect(old.objects).not.toContain('project_count');

    app = await start(old.url);
    const total = async () => {
      const response = await app!.inject({ url: '/projects?per_page=1', headers: bearer(await login(app!)) });
      expect(response.statusCode).toBe(200);
      return response.json<{ total: number }>().total;
    };
    expect(await total()).toBe(6);
    await createProject(app, uniqueName('after-0005'));
    expect(await total()).toBe(7);
  });
});

// Each half is dialect-specific: it is registered only in its own project, so nothing shows as skipped.
if (testDb === 'pg') describe('PostgreSQL migrations', () => {
  let scratch: ScratchDatabase | undefined;
  let sql: postgres.Sql | undefined;
  const apps: FastifyInstance[] = [];

  afterAll(async () => {
    await Promise.allSettled(apps.map((app) => app.close()));
    await sql?.end({ timeout: 5 });
    await scratch?.drop();
  });

  it('four replicas starting together on an empty database all come up, migrating once', async () => {
    scratch = await createScratchDatabase('pg');
    sql = postgres(scratch.url, { max: 1, onnotice: () => {} });
    const [{ exists } = { exists: true }] = await sql<{ exists: boolean }[]>`
      select exists (select 1 from information_schema.tables where table_name = 'users') as exists`;
    expect(exists).toBe(false);

    const started = await Promise.allSettled([1, 2, 3, 4].map(() => start(scratch!.url)));
    for (const result of started) if (result.status === 'fulfilled') apps.push(result.value);
    const failures = started.flatMap((result) => (result.status === 'rejected' ? [String(result.reason)] : []));
    expect(failures).toEqual([]);
    expect(apps).toHaveLength(4);

    const admins = await sql<{ username: string; role: string }[]>`select username, role from users`;
    expect(admins).toEqual([{ username: 'admin', role: 'admin' }]);

    const migrations = await sql<{ hash: string }[]>`select hash from drizzle.__drizzle_migrations`;
    expect(migrations).toHaveLength(journalEntries('pg'));
    expect(new Set(migrations.map((m) => m.hash)).size).toBe(migrations.length);

    // The advisory lock was released by every replica.
    const locks = await sql<{ count: number }[]>`
      select count(*)::int as count from pg_locks
      where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())`;
    expect(locks[0]?.count).toBe(0);

    // Every replica serves requests against the one schema.
    for (const app of apps) {
      const status = await app.inject({ url: '/status' });
      expect(status.json()).toMatchObject({ status: 'ok', db: 'ok', db_dialect: 'pg' });
    }
  });

  it('a later start re-applies nothing and keeps the data', async () => {
    expect(apps).toHaveLength(4);
    const name = uniqueName('migrate-pg');
    await createProject(apps[0]!, name);
    await Promise.all(apps.splice(0).map((app) => app.close()));

    const again = await start(scratch!.url);
    apps.push(again);
    expect(await projectNames(again)).toContain(name);
    const migrations = await sql!<{ count: number }[]>`select count(*)::int as count from drizzle.__drizzle_migrations`;
    expect(migrations[0]?.count).toBe(journalEntries('pg'));
    const users = await sql!<{ count: number }[]>`select count(*)::int as count from users`;
    expect(users[0]?.count).toBe(1);
  });
});

if (testDb === 'sqlite') describe('SQLite migrations on a file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'usine-migrate-'));
  const file = join(dir, 'nested', 'dir', 'usine.db');
  const url = `sqlite:${file}`;
  const apps: FastifyInstance[] = [];

  afterAll(async () => {
    await Promise.allSettled(apps.map((app) => app.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  const migrationRows = () => {
    const db = new BetterSqlite3(file, { readonly: true });
    try {
      return db.prepare('select hash, created_at from __drizzle_migrations order by id').all() as { hash: string; created_at: number }[];
    } finally {
      db.close();
    }
  };

  it('creates the missing folders and the database file, then migrates it', async () => {
    expect(existsSync(join(dir, 'nested'))).toBe(false);
    const app = await start(url);
    apps.push(app);
    expect(statSync(join(dir, 'nested', 'dir')).isDirectory()).toBe(true);
    expect(statSync(file).isFile()).toBe(true);
    expect(migrationRows()).toHaveLength(journalEntries('sqlite'));
    const status = await app.inject({ url: '/status' });
    expect(status.json()).toMatchObject({ status: 'ok', db: 'ok', db_dialect: 'sqlite' });
  });

  it('a second start on the same file re-applies nothing and keeps the data', async () => {
    expect(apps).toHaveLength(1);
    const first = apps[0]!;
    const name = uniqueName('migrate-sqlite');
    const id = await createProject(first, name);
    const before = migrationRows();
    await first.close();
    apps.length = 0;

    const second = await start(url);
    apps.push(second);
    expect(migrationRows()).toEqual(before);
    expect(await projectNames(second)).toEqual([name]);
    const project = await second.inject({ url: `/projects/${id}`, headers: bearer(await login(second)) });
    expect(project.statusCode).toBe(200);
    expect(project.json()).toMatchObject({ id, name });

    const db = new BetterSqlite3(file, { readonly: true });
    try {
      expect(db.prepare('select username, role from users').all()).toEqual([{ username: 'admin', role: 'admin' }]);
    } finally {
      db.close();
    }
  });
});
