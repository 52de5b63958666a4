/**
 * Migration 0006 (usernames unique whatever their case) on a database an older release left with names that differ
 * only in case: the oldest of each group keeps its name, the newer ones are renamed `<name>-<id>`, nobody is lost,
 * and from then on the database refuses a new case-duplicate.
 */
import argon2 from 'argon2';
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { createServer } from '../../src/server.js';
import { bearer, login, testConfig, testDb } from '../helper.js';
import { databaseAsReleasedBefore, type OldReleaseDatabase } from './old-release.js';

const LONG = `${'L'.repeat(63)}x`;

describe(`migration 0006 on a database with usernames that differ only in case (${testDb})`, () => {
  let old: OldReleaseDatabase | undefined;
  let app: FastifyInstance | undefined;

  afterAll(async () => {
    await app?.close();
    await old?.drop();
  });

  it('keeps the oldest spelling, renames the newer ones <name>-<id>, loses no one, and refuses duplicates after', async () => {
    const hash = await argon2.hash('admin123', { type: argon2.argon2id });
    // In id order: admin 1, Alice 2, alice 3, bob 4, ALICE 5, the long name 6 and its lower-case twin 7.
    const names = ['admin', 'Alice', 'alice', 'bob', 'ALICE', LONG, LONG.toLowerCase()];
    const insert = `insert into users (username, password_hash, role) values ${names
      .map((name) => `('${name}', '${hash}', '${name === 'admin' ? 'admin' : 'viewer'}')`)
      .join(', ')}`;
    old = await databaseAsReleasedBefore('0006_username_case', [insert]);

    app = await createServer(testConfig(old.url), { logger: false });
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
