import { randomBytes } from 'node:crypto';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createServer } from '../../src/server.js';
import {
  bearer,
  createScratchDatabase,
  login,
  problemOf,
  testConfig,
  testDb,
  useTestApp,
  type ScratchDatabase,
} from '../helper.js';

/** A fresh client address per test, so that tests sharing an app do not share a budget. */
let lastOctet = 0;
const nextIp = () => `198.51.100.${++lastOctet}`;

const from = (ip: string, options: InjectOptions = {}): InjectOptions => ({ ...options, remoteAddress: ip });

const wrongLogin = (username: string, ip: string): InjectOptions =>
  from(ip, { method: 'POST', url: '/login', payload: { username, password: 'not-the-password' } });

function expectRateLimited(response: LightMyRequestResponse, limit: number): void {
  expect(response.statusCode, response.body).toBe(429);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = problemOf(response);
  expect(body).toMatchObject({ status: 429, error: 'rate_limited', type: 'urn:usine:problem:rate_limited', title: 'Too Many Requests' });
  expect(body.detail).toMatch(/retry in/i);
  const retryAfter = Number(response.headers['retry-after']);
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(response.headers['ratelimit-limit']).toBe(String(limit));
  expect(response.headers['ratelimit-remaining']).toBe('0');
  expect(Number(response.headers['ratelimit-reset'])).toBe(retryAfter);
  expect(response.headers['x-request-id']).toBeTruthy();
}

describe(`rate limit: global, per client (${testDb})`, () => {
  const ctx = useTestApp({ RATE_LIMIT_MAX: '5', RATE_LIMIT_WINDOW_S: '60' });

  it('sends RateLimit-Limit/Remaining/Reset on every response, counting down', async () => {
    const ip = nextIp();
    for (let i = 1; i <= 5; i++) {
      const response = await ctx.app.inject(from(ip, { url: '/status' }));
      expect(response.statusCode).toBe(200);
      expect(response.headers['ratelimit-limit']).toBe('5');
      expect(response.headers['ratelimit-remaining']).toBe(String(5 - i));
      const reset = Number(response.headers['ratelimit-reset']);
      expect(reset).toBeGreaterThanOrEqual(1);
      expect(reset).toBeLessThanOrEqual(60);
      // The old X-RateLimit-* names are not sent alongside the standard ones.
      expect(response.headers['x-ratelimit-limit']).toBeUndefined();
    }
  });

  it('answers 429 rate_limited with Retry-After beyond the limit, and only to that client', async () => {
    const ip = nextIp();
    for (let i = 0; i < 5; i++) expect((await ctx.app.inject(from(ip, { url: '/status' }))).statusCode).toBe(200);
    expectRateLimited(await ctx.app.inject(from(ip, { url: '/status' })), 5);
    expectRateLimited(await ctx.app.inject(from(ip, { url: '/projects', headers: bearer(ctx.adminToken) })), 5);

    const other = await ctx.app.inject(from(nextIp(), { url: '/status' }));
    expect(other.statusCode).toBe(200);
    expect(other.headers['ratelimit-remaining']).toBe('4');
  });

  it('counts requests with bad tokens (it runs before authentication) and requests to unknown routes', async () => {
    const ip = nextIp();
    for (let i = 0; i < 3; i++) {
      const response = await ctx.app.inject(from(ip, { url: '/projects', headers: bearer('not-a-token') }));
      expect(response.statusCode).toBe(401);
      expect(response.headers['ratelimit-remaining']).toBe(String(4 - i));
    }
    for (let i = 0; i < 2; i++) expect((await ctx.app.inject(from(ip, { url: `/scan/${i}` }))).statusCode).toBe(404);
    expectRateLimited(await ctx.app.inject(from(ip, { url: '/projects', headers: bearer('not-a-token') })), 5);
    expectRateLimited(await ctx.app.inject(from(ip, { url: '/wp-admin' })), 5);
  });

  it('ignores X-Forwarded-For unless TRUST_PROXY says so (a client cannot reset its budget with it)', async () => {
    const ip = nextIp();
    for (let i = 0; i < 5; i++) {
      const response = await ctx.app.inject(from(ip, { url: '/status', headers: { 'x-forwarded-for': `203.0.113.${i}` } }));
      expect(response.statusCode).toBe(200);
    }
    expectRateLimited(await ctx.app.inject(from(ip, { url: '/status', headers: { 'x-forwarded-for': '203.0.113.99' } })), 5);
  });
});

describe(`rate limit: behind a trusted proxy (${testDb})`, () => {
  const ctx = useTestApp({ RATE_LIMIT_MAX: '2', TRUST_PROXY: '127.0.0.1' });

  it('limits each forwarded client separately', async () => {
    const forwarded = (client: string) => ({ url: '/status', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': client } });
    for (let i = 0; i < 2; i++) expect((await ctx.app.inject(forwarded('203.0.113.1'))).statusCode).toBe(200);
    expectRateLimited(await ctx.app.inject(forwarded('203.0.113.1')), 2);
    expect((await ctx.app.inject(forwarded('203.0.113.2'))).statusCode).toBe(200);
  });
});

describe(`rate limit: the window (${testDb})`, () => {
  const ctx = useTestApp({ RATE_LIMIT_MAX: '2', RATE_LIMIT_WINDOW_S: '1' });

  it('gives the budget back when the window is over', async () => {
    const ip = nextIp();
    for (let i = 0; i < 2; i++) expect((await ctx.app.inject(from(ip, { url: '/status' }))).statusCode).toBe(200);
    const limited = await ctx.app.inject(from(ip, { url: '/status' }));
    expectRateLimited(limited, 2);
    expect(limited.headers['retry-after']).toBe('1');
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const again = await ctx.app.inject(from(ip, { url: '/status' }));
    expect(again.statusCode).toBe(200);
    expect(again.headers['ratelimit-remaining']).toBe('1');
  });
});

describe(`rate limit: login throttle (${testDb})`, () => {
  const ctx = useTestApp({
    RATE_LIMIT_MAX: '1000',
    RATE_LIMIT_LOGIN_IP_MAX: '5',
    RATE_LIMIT_LOGIN_USER_MAX: '3',
    RATE_LIMIT_LOGIN_WINDOW_S: '300',
    RATE_LIMIT_LOGIN_DELAY_MAX_MS: '20',
  });

  it('refuses one address guessing one username, whatever its case, but only that address', async () => {
    const ip = nextIp();
    for (let i = 0; i < 3; i++) expect((await ctx.app.inject(wrongLogin('ghost', ip))).statusCode).toBe(401);
    const limited = await ctx.app.inject(wrongLogin('ghost', ip));
    expectRateLimited(limited, 3);
    expect(problemOf(limited).detail).toMatch(/username from this address/);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(200);
    expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(300);
    expectRateLimited(await ctx.app.inject(wrongLogin('GHOST', ip)), 3);
    // Another address may still try that username.
    expect((await ctx.app.inject(wrongLogin('ghost', nextIp()))).statusCode).toBe(401);
  });

  it("an attacker's failures do not stop the real user logging in from another address", async () => {
    const attacker = nextIp();
    for (let i = 0; i < 3; i++) expect((await ctx.app.inject(wrongLogin('admin', attacker))).statusCode).toBe(401);
    expectRateLimited(await ctx.app.inject(wrongLogin('admin', attacker)), 3);
    // More attackers, each under its own limit: the username is slowed down, never locked.
    for (let i = 0; i < 6; i++) expect((await ctx.app.inject(wrongLogin('admin', nextIp()))).statusCode).toBe(401);
    const right = await ctx.app.inject(
      from(nextIp(), { method: 'POST', url: '/login', payload: { username: 'admin', password: ctx.config.ADMIN_PASSWORD } }),
    );
    expect(right.statusCode, right.body).toBe(200);
    expect(right.json()).toHaveProperty('access_token');
  });

  it('stops one address trying many usernames', async () => {
    const ip = nextIp();
    for (let i = 0; i < 5; i++) {
      const response = await ctx.app.inject(wrongLogin(`user-${i}`, ip));
      expect(response.statusCode).toBe(401);
    }
    const limited = await ctx.app.inject(wrongLogin('user-x', ip));
    expectRateLimited(limited, 5);
    expect(problemOf(limited).detail).toMatch(/address/);
    // Malformed attempts count too: the per-address limit runs before the body is read.
    expectRateLimited(await ctx.app.inject(from(ip, { method: 'POST', url: '/login', payload: {} })), 5);
    // Another address may still try.
    expect((await ctx.app.inject(wrongLogin('user-x', nextIp()))).statusCode).toBe(401);
  });

  it('shows the tightest applicable limit in the RateLimit headers', async () => {
    const response = await ctx.app.inject(wrongLogin('someone', nextIp()));
    expect(response.statusCode).toBe(401);
    expect(response.headers['ratelimit-limit']).toBe('3');
    expect(response.headers['ratelimit-remaining']).toBe('2');
  });

  it('keeps every other route answering for the throttled client', async () => {
    const ip = nextIp();
    for (let i = 0; i < 6; i++) await ctx.app.inject(wrongLogin('admin', ip));
    expect((await ctx.app.inject(wrongLogin('admin', ip))).statusCode).toBe(429);
    expect((await ctx.app.inject(from(ip, { url: '/status' }))).statusCode).toBe(200);
    const projects = await ctx.app.inject(from(ip, { url: '/projects', headers: bearer(ctx.adminToken) }));
    expect(projects.statusCode).toBe(200);
    expect(projects.headers['ratelimit-limit']).toBe('1000');
  });
});

describe(`rate limit: a username tried from many addresses is slowed, not locked (${testDb})`, () => {
  let app: FastifyInstance;
  let scratch: ScratchDatabase;
  const lines: string[] = [];

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    const config = testConfig(scratch.url, {
      LOG_LEVEL: 'warn',
      RATE_LIMIT_LOGIN_IP_MAX: '100',
      RATE_LIMIT_LOGIN_USER_MAX: '3',
      RATE_LIMIT_LOGIN_DELAY_MAX_MS: '64',
    });
    app = await createServer(config, { logStream: { write: (line: string) => void lines.push(line) } });
    await app.ready();
  });

  afterAll(async () => {
    await app?.close();
    await scratch?.drop();
  });

  it('delays each attempt beyond RATE_LIMIT_LOGIN_USER_MAX longer than the one before, up to the maximum, and refuses none', async () => {
    for (let i = 0; i < 11; i++) expect((await app.inject(wrongLogin('target', nextIp()))).statusCode).toBe(401);
    const delays = lines
      .map((line) => JSON.parse(line) as { msg: string; delay_ms?: number; attempts?: number })
      .filter((line) => line.msg.startsWith('login slowed'));
    // Attempts 4 to 11 waited: 1/32 of the maximum (64 ms here), doubling, then the maximum.
    expect(delays.map((line) => line.attempts)).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    expect(delays.map((line) => line.delay_ms)).toEqual([2, 4, 8, 16, 32, 64, 64, 64]);
    // The right password, from yet another address, still logs in.
    const right = await app.inject(from(nextIp(), { method: 'POST', url: '/login', payload: { username: 'admin', password: 'admin123' } }));
    expect(right.statusCode).toBe(200);
  });
});

describe(`rate limit: the defaults stop a login flood (${testDb})`, () => {
  let app: FastifyInstance;
  let scratch: ScratchDatabase;
  let token: string;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    // The real defaults, not the test helper's unthrottled ones.
    app = await createServer(loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', DATABASE_URL: scratch.url }), { logger: false });
    await app.ready();
    token = await login(app);
  });

  afterAll(async () => {
    await app?.close();
    await scratch?.drop();
  });

  it('answers 429 long before 100 attempts, while other routes keep answering', async () => {
    const ip = '192.0.2.10';
    const statuses: number[] = [];
    for (let i = 0; i < 100; i++) statuses.push((await app.inject(wrongLogin('admin', ip))).statusCode);
    const first429 = statuses.indexOf(429);
    expect(first429).toBeGreaterThan(0);
    expect(first429).toBeLessThanOrEqual(20);
    expect(statuses.slice(0, first429).every((status) => status === 401)).toBe(true);
    expect(statuses.slice(first429).every((status) => status === 429)).toBe(true);

    expect((await app.inject(from(ip, { url: '/status' }))).statusCode).toBe(200);
    expect((await app.inject(from(ip, { url: '/projects', headers: bearer(token) }))).statusCode).toBe(200);
  });
});

const redisUrl = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

async function redisAnswers(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 1_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

const redisUp = await redisAnswers(redisUrl);
if (!redisUp) {
  const message = `Redis at ${redisUrl} does not answer (set TEST_REDIS_URL)`;
  if (process.env.CI === 'true') throw new Error(`${message}: CI needs it for the shared rate-limit tests.`);
  console.warn(`\n!! ${message}: THE SHARED (REDIS) RATE-LIMIT TESTS ARE SKIPPED.\n`);
}

describe.runIf(redisUp)(`rate limit: shared by replicas through Redis (${testDb})`, () => {
  const namespace = `usine-test:${randomBytes(6).toString('hex')}:`;
  let scratch: ScratchDatabase;
  let replicas: FastifyInstance[] = [];
  let redis: Redis;

  beforeAll(async () => {
    redis = new Redis(redisUrl);
    scratch = await createScratchDatabase();
    const env = {
      REDIS_URL: redisUrl,
      RATE_LIMIT_NAMESPACE: namespace,
      RATE_LIMIT_MAX: '6',
      RATE_LIMIT_LOGIN_IP_MAX: '100',
      RATE_LIMIT_LOGIN_USER_MAX: '2',
      RATE_LIMIT_LOGIN_DELAY_MAX_MS: '10',
    };
    // Two app instances, as two replicas behind a load balancer: same Redis, same namespace.
    replicas = [];
    for (let i = 0; i < 2; i++) {
      const app = await createServer(testConfig(scratch.url, env), { logger: false });
      await app.ready();
      replicas.push(app);
    }
  });

  afterAll(async () => {
    for (const app of replicas) await app.close();
    const keys = await redis.keys(`${namespace}*`);
    if (keys.length > 0) await redis.del(...keys);
    expect(await redis.keys(`${namespace}*`)).toEqual([]);
    redis.disconnect();
    await scratch?.drop();
  });

  it('hits 429 at the combined limit when requests are split across two instances', async () => {
    const ip = '198.18.0.1';
    for (let i = 0; i < 6; i++) {
      const response = await replicas[i % 2]!.inject(from(ip, { url: '/status' }));
      expect(response.statusCode, `request ${i + 1}`).toBe(200);
      expect(response.headers['ratelimit-remaining']).toBe(String(5 - i));
    }
    expectRateLimited(await replicas[0]!.inject(from(ip, { url: '/status' })), 6);
    expectRateLimited(await replicas[1]!.inject(from(ip, { url: '/status' })), 6);
    // The counters live in Redis, under the namespace.
    expect((await redis.keys(`${namespace}*`)).length).toBeGreaterThan(0);
  });

  it('shares the per-(address, username) login budget too', async () => {
    expect((await replicas[0]!.inject(wrongLogin('admin', '198.18.0.2'))).statusCode).toBe(401);
    expect((await replicas[1]!.inject(wrongLogin('admin', '198.18.0.2'))).statusCode).toBe(401);
    expectRateLimited(await replicas[0]!.inject(wrongLogin('admin', '198.18.0.2')), 2);
    expectRateLimited(await replicas[1]!.inject(wrongLogin('Admin', '198.18.0.2')), 2);
    // Another address is not refused: the username is slowed down across replicas, never locked.
    expect((await replicas[1]!.inject(wrongLogin('admin', '198.18.0.3'))).statusCode).toBe(401);
    // What people typed as usernames is not kept in Redis.
    expect((await redis.keys(`${namespace}*`)).some((key) => key.toLowerCase().includes('admin'))).toBe(false);
  });
});

describe(`rate limit: Redis unreachable (${testDb})`, () => {
  let app: FastifyInstance;
  let scratch: ScratchDatabase;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    // Nothing listens on port 1: the store is down from the start.
    app = await createServer(testConfig(scratch.url, { REDIS_URL: 'redis://127.0.0.1:1', RATE_LIMIT_MAX: '5' }), { logger: false });
    await app.ready();
  });

  afterAll(async () => {
    await app?.close();
    await scratch?.drop();
  });

  it('keeps the API answering (the global limit fails open)', async () => {
    const ip = nextIp();
    for (let i = 0; i < 7; i++) expect((await app.inject(from(ip, { url: '/status' }))).statusCode).toBe(200);
  });

  it('refuses logins with 503 rather than allowing unlimited guesses (the login limit fails closed)', async () => {
    const response = await app.inject(wrongLogin('admin', nextIp()));
    expect(response.statusCode, response.body).toBe(503);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(problemOf(response).error).toBe('service_unavailable');
    expect(response.headers['retry-after']).toBe('5');
  });
});
