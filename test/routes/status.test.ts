import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from '../../src/server.js';
import { bearer, createScratchDatabase, login, testConfig, testDb, useTestApp, type ScratchDatabase } from '../helper.js';

/** Read from disk here, independently of the app's own way of finding it. */
const packageVersion = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;

interface StatusBody {
  status: string;
  version: string;
  uptime_s: number;
  db: string;
  db_dialect: string;
  time: string;
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

function expectRecentUtc(time: string, before: number, after: number) {
  expect(time).toMatch(ISO_UTC);
  const at = Date.parse(time);
  expect(Number.isNaN(at)).toBe(false);
  // A few seconds of slack either side of the request.
  expect(at).toBeGreaterThanOrEqual(before - 3000);
  expect(at).toBeLessThanOrEqual(after + 3000);
}

describe(`GET /status (${testDb})`, () => {
  const ctx = useTestApp();

  it('answers 200 without authentication, with version, uptime, database check and UTC time', async () => {
    const before = Date.now();
    const response = await ctx.app.inject({ method: 'GET', url: '/status' });
    const after = Date.now();
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    const body = response.json<StatusBody>();
    expect(body).toEqual({
      status: 'ok',
      version: packageVersion,
      uptime_s: expect.any(Number) as number,
      db: 'ok',
      db_dialect: testDb,
      time: expect.any(String) as string,
    });
    expect(body.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(Number.isFinite(body.uptime_s)).toBe(true);
    expect(body.uptime_s).toBeGreaterThanOrEqual(0);
    expectRecentUtc(body.time, before, after);
  });

  it('ignores a bad bearer token (the route is public)', async () => {
    const response = await ctx.app.inject({ method: 'GET', url: '/status', headers: bearer('not-a-jwt') });
    expect(response.statusCode).toBe(200);
    expect(response.json<StatusBody>().status).toBe('ok');
  });

  it('reports a growing uptime and a moving clock', async () => {
    const first = (await ctx.app.inject({ url: '/status' })).json<StatusBody>();
    await new Promise((resolve) => setTimeout(resolve, 30));
    const second = (await ctx.app.inject({ url: '/status' })).json<StatusBody>();
    expect(second.uptime_s).toBeGreaterThan(first.uptime_s);
    expect(Date.parse(second.time)).toBeGreaterThan(Date.parse(first.time));
  });
});

describe(`GET /status with the database closed underneath (${testDb})`, () => {
  let scratch: ScratchDatabase;
  let app: FastifyInstance;
  let token: string;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    const config = testConfig(scratch.url);
    app = await createServer(config, { logger: false });
    await app.ready();
    token = await login(app, config.ADMIN_USERNAME, config.ADMIN_PASSWORD);
  });

  afterAll(async () => {
    await app?.close();
    await scratch?.drop();
  });

  it('answers 200 while the database is open', async () => {
    const response = await app.inject({ url: '/status' });
    expect(response.statusCode).toBe(200);
    expect(response.json<StatusBody>()).toMatchObject({ status: 'ok', db: 'ok', db_dialect: testDb });
  });

  it('answers 503 degraded once the database is closed, and the process keeps serving', async () => {
    await app.database.close();

    const before = Date.now();
    const response = await app.inject({ url: '/status' });
    const after = Date.now();
    expect(response.statusCode).toBe(503);
    const body = response.json<StatusBody>();
    expect(body).toEqual({
      status: 'degraded',
      version: packageVersion,
      uptime_s: expect.any(Number) as number,
      db: 'error',
      db_dialect: testDb,
      time: expect.any(String) as string,
    });
    expect(body.uptime_s).toBeGreaterThanOrEqual(0);
    expectRecentUtc(body.time, before, after);

    // Still alive: a second check gives the same answer, and a database-backed route fails cleanly.
    const again = await app.inject({ url: '/status' });
    expect(again.statusCode).toBe(503);
    expect(again.json<StatusBody>().db).toBe('error');

    const list = await app.inject({ url: '/projects', headers: bearer(token) });
    // Both drivers' failures (postgres.js: CONNECTION_ENDED; better-sqlite3: a TypeError) read as the database being down.
    expect(list.statusCode).toBe(503);
    expect(list.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(list.headers['retry-after']).toBeDefined();
    const problem = list.json<{ status: number; error: string; detail: string }>();
    expect(problem).toMatchObject({ status: 503, error: 'service_unavailable' });
    expect(problem.detail).not.toMatch(/select|sqlite|postgres/i);
  });
});
