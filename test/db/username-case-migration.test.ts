/**
 * Migration 0006 (usernames unique whatever their case) on a database an older release left with names that differ
 * only in case: the oldest of each group keeps its name, the newer ones are renamed `<name>-<id>`, nobody is lost,
 * and from then on the database refuses a new case-duplicate.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import argon2 from 'argon2';
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
import { bearer, createScratchDatabase, login, testConfig, testDb, type ScratchDatabase } from '../helper.js';

/** The migrations folder as the release before 0006 shipped it. */
function migrationsBefore0006(into: string): string {
  const source = migrationsFolder(testDb);
  const journal = JSON.parse(readFileSync(join(source, 'meta', '_journal.json'), 'utf8')) as { entries: { idx: number; tag: string }[] };
  const entries = journal.entries.filter((entry) => entry.idx <= 5);
  const folder = join(into, 'migrations-upto-0005');
  mkdirSync(join(folder, 'meta'), { recursive: true });
  writeFileSync(join(folder, 'meta', '_journal.json'), JSON.stringify({ ...journal, entries }));
  for (const { tag } of entries) copyFileSync(join(source, `${tag}.sql`), join(folder, `${tag}.sql`));
  return folder;
}

const LONG = `${'L'.repeat(63)}x`;

describe(`migration 0006 on a database with usernames that differ only in case (${testDb})`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'usine-migrate-0006-'));
  let scratch: ScratchDatabase | undefined;
  let app: FastifyInstance | undefined;

  afterAll(async () => {
    await app?.close();
    await scratch?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the oldest spelling, renames the newer ones <name>-<id>, loses no one, and refuses duplicates after', async () => {
    const oldRelease = migrationsBefore0006(dir);
    const hash = await argon2.hash('admin123', { type: argon2.argon2id });
    // In id order: admin 1, Alice 2, alice 3, bob 4, ALICE 5, the long name 6 and its lower-case twin 7.
    const names = ['admin', 'Alice', 'alice', 'bob', 'ALICE', LONG, LONG.toLowerCase()];
    const insert = `insert into users (username, password_hash, role) values ${names
      .map((name) => `('${name}', '${hash}', '${name === 'admin' ? 'admin' : 'viewer'}')`)
      .join(', ')}`;
    let url: string;
    if (testDb === 'sqlite') {
      const file = join(dir, 'usine.db');
      url = `sqlite:${file}`;
      const db = new BetterSqlite3(file);
      try {
        migrateSqlite(drizzleSqlite(db), { migrationsFolder: oldRelease });
        db.exec(insert);
      } finally {
        db.close();
      }
    } else {
      scratch = await createScratchDatabase('pg');
      url = scratch.url;
      const client = postgres(url, { max: 1, onnotice: () => {} });
      try {
        await migratePg(drizzlePg(client), { migrationsFolder: oldRelease });
        await client.unsafe(insert);
      } finally {
        await client.end({ timeout: 5 });
      }
    }

    app = await createServer(testConfig(url), { logger: false });
    await app.ready();
    const token = await login(app, 'admin', 'admin123');
    const listed = await app.inject({ url: '/users?per_page=100', headers: bearer(token) });
    expect(listed.statusCode).toBe(200);
    const users = listed.json<{ items: { id: number; username: string }[] }>().items.map(({ id, username }) => [id, username]);
    const renamedLong = `${LONG.toLowerCase().slice(0, 63 - 1)}-7`;
    expect(renamedLong).toHaveLength(64);
    expect(users).toEqual([
      [1, 'admin'],
      [2, 'Alice'],
      [3, 'alice-3'],
      [4, 'bob'],
      [5, 'ALICE-5'],
      [6, LONG],
      [7, renamedLong],
    ]);

    // A renamed account logs in under its new name, with its old password.
    expect(typeof (await login(app, 'alice-3', 'admin123'))).toBe('string');
    // From now on the database itself refuses a case-duplicate.
    const duplicate = await app.inject({
      method: 'POST',
      url: '/users',
      headers: bearer(token),
      payload: { username: 'BOB', password: 'a-decent-passphrase', role: 'viewer' },
    });
    expect(duplicate.statusCode).toBe(409);
  });
});
