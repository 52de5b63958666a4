import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from '../../src/server.js';
import {
  bearer,
  createScratchDatabase,
  injectAs,
  login,
  testConfig,
  testDb,
  useTestApp,
  waitForBuild,
  type ScratchDatabase,
} from '../helper.js';

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
  queue: { queued: number; running: number } | null;
  jobs: { queued: number; running: number } | null;
  workers: { busy: number; total: number };
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
      // At rest: nothing queued or running, and the default BUILD_CONCURRENCY of 4 workers, all idle.
      queue: { queued: 0, running: 0 },
      jobs: { queued: 0, running: 0 },
      workers: { busy: 0, total: 4 },
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

  it('shows the queue back at zero once triggered builds have run', async () => {
    const project = await injectAs(ctx.app, ctx.adminToken, {
      method: 'POST',
      url: '/projects',
      payload: { name: 'status-queue', repo: 'https://github.com/demo/repo' },
    });
    expect(project.statusCode).toBe(201);
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const build = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/projects/${project.json<{ id: number }>().id}/build` });
      expect(build.statusCode).toBe(201);
      ids.push(build.json<{ id: number }>().id);
    }
    const during = (await ctx.app.inject({ url: '/status' })).json<StatusBody>();
    // Three builds exist and none has been lost: each is queued, running or finished.
    expect(during.queue?.queued).toBeLessThanOrEqual(3);
    expect(during.queue?.running).toBeLessThanOrEqual(3);
    expect(during.workers.busy).toBeLessThanOrEqual(during.workers.total);
    for (const id of ids) await waitForBuild(ctx.app, ctx.adminToken, id);
    const after = (await ctx.app.inject({ url: '/status' })).json<StatusBody>();
    expect(after.queue).toEqual({ queued: 0, running: 0 });
    expect(after.workers).toEqual({ busy: 0, total: 4 });
  });
});

describe(`GET /status without build workers (BUILD_CONCURRENCY=0) (${testDb})`, () => {
  const ctx = useTestApp({ BUILD_CONCURRENCY: '0' });

  it('counts the builds waiting in the queue and reports no workers', async () => {
    const empty = (await ctx.app.inject({ url: '/status' })).json<StatusBody>();
    expect(empty).toMatchObject({ status: 'ok', queue: { queued: 0, running: 0 }, workers: { busy: 0, total: 0 } });
    const projectIds: number[] = [];
    for (const name of ['status-a', 'status-b']) {
      const project = await injectAs(ctx.app, ctx.adminToken, {
        method: 'POST',
        url: '/projects',
        payload: { name, repo: 'https://github.com/demo/repo' },
      });
      expect(project.statusCode).toBe(201);
      projectIds.push(project.json<{ id: number }>().id);
    }
    const triggered: number[] = [];
    for (const projectId of [...projectIds, ...projectIds, projectIds[0]]) {
      const build = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/projects/${projectId}/builds` });
      expect(build.statusCode).toBe(201);
      triggered.push(build.json<{ id: number }>().id);
    }
    // Across projects, and unmoving since nothing takes them.
    const queued = (await ctx.app.inject({ url: '/status' })).json<StatusBody>();
    expect(queued).toMatchObject({ status: 'ok', db: 'ok', queue: { queued: 5, running: 0 }, workers: { busy: 0, total: 0 } });

    const cancel = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/builds/${triggered[0]}/cancel` });
    expect(cancel.statusCode, cancel.body).toBe(200);
    expect((await ctx.app.inject({ url: '/status' })).json<StatusBody>().queue).toEqual({ queued: 4, running: 0 });
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
    expect(response.json<StatusBody>()).toMatchObject({ status: 'ok', db: 'ok', db_dialect: testDb, queue: { queued: 0, running: 0 } });
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
      // The queue figures come from the database: unknown rather than stale. The workers are this process's.
      queue: null,
      jobs: null,
      workers: { busy: 0, total: 4 },
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
