/**
 * The database circuit (plugins/app/database-availability.ts) on either database: once the database is gone, requests
 * that need it answer 503 problems without reaching it, while probes, /status, the docs and the metrics still answer.
 * test/database-outage.pg.test.ts covers a real PostgreSQL outage and the recovery.
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createServer } from '../src/server.js';
import { bearer, createScratchDatabase, login, problemOf, testConfig, testDb, type ScratchDatabase } from './helper.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe(`database circuit (${testDb})`, () => {
  let app: FastifyInstance | undefined;
  let scratch: ScratchDatabase | undefined;

  afterEach(async () => {
    await app?.close().catch(() => undefined);
    await scratch?.drop();
    app = undefined;
  });

  it('answers 503 service_unavailable with Retry-After once the database is gone; probes, status, docs and metrics still answer', async () => {
    scratch = await createScratchDatabase();
    app = await createServer(testConfig(scratch.url, { DATABASE_PING_INTERVAL_MS: '100', DATABASE_PING_TIMEOUT_MS: '500' }), { logger: false });
    await app.ready();
    const token = await login(app);
    expect((await app.inject({ method: 'GET', url: '/projects', headers: bearer(token) })).statusCode).toBe(200);
    expect(app.databaseAvailability.available).toBe(true);

    await app.database.close();
    for (let waited = 0; waited < 5000 && app.databaseAvailability.available; waited += 20) await sleep(20);
    expect(app.databaseAvailability.available, 'the circuit opened').toBe(false);

    for (const request of [
      { method: 'GET' as const, url: '/projects' },
      { method: 'GET' as const, url: '/me' },
      { method: 'POST' as const, url: '/projects', payload: { name: 'during-outage', repo: 'https://example.com/x.git' } },
      { method: 'POST' as const, url: '/login', payload: { username: 'admin', password: 'admin123' } },
    ]) {
      const response = await app.inject({ ...request, headers: bearer(token) });
      expect(response.statusCode, `${request.method} ${request.url}: ${response.body}`).toBe(503);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(Number(response.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(problemOf(response)).toMatchObject({ status: 503, error: 'service_unavailable', detail: 'The database is unavailable; retry shortly' });
    }

    expect((await app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
    const ready = await app.inject({ method: 'GET', url: '/health/ready' });
    expect(ready.statusCode).toBe(503);
    expect(problemOf(ready).detail).toMatch(/database does not answer/);
    const status = await app.inject({ method: 'GET', url: '/status' });
    expect(status.statusCode).toBe(503);
    expect(status.json()).toMatchObject({ status: 'degraded', db: 'error', queue: null });
    expect((await app.inject({ method: 'GET', url: '/apidocs/json' })).statusCode).toBe(200);
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.body).toMatch(/^usine_build_queue_depth nan$/im);
    expect((await app.inject({ method: 'GET', url: '/no-such-route' })).statusCode).toBe(404);
  });
});
