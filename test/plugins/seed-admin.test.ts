import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from '../../src/server.js';
import { injectAs, login, testConfig, testDb } from '../helper.js';
import { createPersistentDatabase, type PersistentDatabase } from '../persistent-database.js';

describe(`the bootstrap admin (${testDb})`, () => {
  let database: PersistentDatabase;
  let app: FastifyInstance | undefined;
  const start = async () => {
    app = await createServer(testConfig(database.url), { logger: false });
    await app.ready();
    return app;
  };

  beforeAll(async () => {
    database = await createPersistentDatabase();
  });
  afterAll(async () => {
    await app?.close();
    await database?.drop();
  });

  it('is seeded into a new database, and stays deleted across a restart once another admin removed it', async () => {
    const first = await start();
    const adminToken = await login(first, 'admin', 'admin123');
    const created = await injectAs(first, adminToken, {
      method: 'POST',
      url: '/users',
      payload: { username: 'root2', password: 'another-admin-password', role: 'admin' },
    });
    expect(created.statusCode, created.body).toBe(201);
    const rootToken = await login(first, 'root2', 'another-admin-password');
    const me = await injectAs(first, adminToken, { method: 'GET', url: '/me' });
    const deleted = await injectAs(first, rootToken, { method: 'DELETE', url: `/users/${me.json<{ id: number }>().id}` });
    expect(deleted.statusCode, deleted.body).toBe(204);
    await first.close();

    const second = await start();
    const refused = await second.inject({ method: 'POST', url: '/login', payload: { username: 'admin', password: 'admin123' } });
    expect(refused.statusCode).toBe(401);
    const users = await injectAs(second, await login(second, 'root2', 'another-admin-password'), { method: 'GET', url: '/users' });
    expect(users.json<{ items: { username: string }[] }>().items.map((user) => user.username)).toEqual(['root2']);
  });
});
