import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { drizzle as drizzleSqlite } from 'drizzle-orm/better-sqlite3';
import { migrate as migrateSqlite } from 'drizzle-orm/better-sqlite3/migrator';
import { drizzle as drizzlePg } from 'drizzle-orm/postgres-js';
import { migrate as migratePg } from 'drizzle-orm/postgres-js/migrator';
import type { FastifyInstance } from 'fastify';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { migrationsFolder } from '../../src/db/migrate.js';
import { createServer } from '../../src/server.js';
import { createScratchDatabase, testConfig, testDb, type ScratchDatabase } from '../helper.js';

/** The migrations folder as it was before 0008_build_status_count (found by tag: others may be numbered before it). */
function migrationsBefore0008(into: string): string {
  const source = migrationsFolder(testDb);
  const journal = JSON.parse(readFileSync(join(source, 'meta', '_journal.json'), 'utf8')) as { entries: { tag: string }[] };
  const last = journal.entries.findIndex((entry) => entry.tag === '0008_build_status_count');
  expect(last).toBeGreaterThan(0);
  const entries = journal.entries.slice(0, last);
  const folder = join(into, 'migrations-before-0008');
  mkdirSync(join(folder, 'meta'), { recursive: true });
  writeFileSync(join(folder, 'meta', '_journal.json'), JSON.stringify({ ...journal, entries }));
  for (const { tag } of entries) copyFileSync(join(source, `${tag}.sql`), join(folder, `${tag}.sql`));
  return folder;
}

describe(`migration 0008 on a database that already has builds (${testDb})`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'usine-migrate-0008-'));
  let scratch: ScratchDatabase | undefined;
  let app: FastifyInstance | undefined;

  afterAll(async () => {
    await app?.close();
    await scratch?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('seeds the build counts from the rows there, and the triggers count on from them', async () => {
    const writes = [
      `insert into projects (name, repo) values ('before-0008', 'https://github.com/usine/old')`,
      `insert into builds (project_id, number, branch, commit_sha, status) values ` +
        `(1, 1, 'main', 'abcdef1', 'success'), (1, 2, 'main', 'abcdef1', 'success'), (1, 3, 'main', 'abcdef1', 'fail'), ` +
        `(1, 4, 'main', 'abcdef1', 'queued'), (1, 5, 'main', 'abcdef1', 'canceled')`,
    ];
    let url: string;
    if (testDb === 'sqlite') {
      const file = join(dir, 'usine.db');
      url = `sqlite:${file}`;
      const db = new BetterSqlite3(file);
      try {
        migrateSqlite(drizzleSqlite(db), { migrationsFolder: migrationsBefore0008(dir) });
        for (const statement of writes) db.exec(statement);
      } finally {
        db.close();
      }
    } else {
      scratch = await createScratchDatabase('pg');
      url = scratch.url;
      const client = postgres(url, { max: 1, onnotice: () => {} });
      try {
        await migratePg(drizzlePg(client), { migrationsFolder: migrationsBefore0008(dir) });
        for (const statement of writes) await client.unsafe(statement);
      } finally {
        await client.end({ timeout: 5 });
      }
    }

    // No workers: the queued build stays queued until canceled below.
    app = await createServer(testConfig(url, { BUILD_CONCURRENCY: '0' }), { logger: false });
    await app.ready();
    expect(await app.buildsRepository.countByStatus()).toEqual({ queued: 1, running: 0, success: 2, fail: 1, canceled: 1 });
    expect(await app.buildsRepository.cancel(4, 'canceled by the test\n', 0)).toBeDefined();
    expect(await app.buildsRepository.countByStatus()).toEqual({ queued: 0, running: 0, success: 2, fail: 1, canceled: 2 });
  });
});
