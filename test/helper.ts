import { randomBytes } from 'node:crypto';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import postgres from 'postgres';
import { afterAll, beforeAll } from 'vitest';
import type { components } from '../clients/typescript/usine.js';
import { loadConfig, type Config } from '../src/config.js';
import { createServer } from '../src/server.js';
import { testDatabaseUrl } from './pg-available.js';

export type TestDb = 'sqlite' | 'pg';
export const testDb: TestDb = process.env.TEST_DB === 'pg' ? 'pg' : 'sqlite';

/** A fresh, empty database for one test file: SQLite in memory, or a new PostgreSQL database. */
export interface ScratchDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function createScratchDatabase(db: TestDb = testDb): Promise<ScratchDatabase> {
  if (db === 'sqlite') return { url: ':memory:', drop: async () => {} };
  const server = new URL(testDatabaseUrl());
  const name = `usine_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(server.toString(), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = new URL(server);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const dropper = postgres(server.toString(), { max: 1, onnotice: () => {} });
      await dropper.unsafe(`drop database if exists ${name} with (force)`);
      await dropper.end();
    },
  };
}

/**
 * Rate limits so high that no test is throttled by accident (a file's tests share one app and one client IP);
 * the rate-limit tests pass their own small values.
 */
export const UNTHROTTLED: Record<string, string> = {
  RATE_LIMIT_MAX: '100000',
  RATE_LIMIT_LOGIN_IP_MAX: '100000',
  RATE_LIMIT_LOGIN_USER_MAX: '100000',
};

/** Builds run instantly unless a test asks for time (BUILD_TIME_SCALE), so files that trigger builds stay fast. */
export const INSTANT_BUILDS: Record<string, string> = { BUILD_TIME_SCALE: '0' };

export function testConfig(databaseUrl: string, env: Record<string, string> = {}): Config {
  return loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', DATABASE_URL: databaseUrl, ...UNTHROTTLED, ...INSTANT_BUILDS, ...env });
}

export interface TestContext {
  app: FastifyInstance;
  config: Config;
  databaseUrl: string;
  /** A bearer token for the seeded admin. */
  adminToken: string;
}

/**
 * Builds the app on a scratch database before the file's tests and tears both down after.
 * Read the returned object's fields inside tests (they are filled in by beforeAll).
 */
export function useTestApp(env: Record<string, string> = {}): TestContext {
  const context = {} as TestContext;
  let scratch: ScratchDatabase | undefined;
  beforeAll(async () => {
    scratch = await createScratchDatabase();
    context.databaseUrl = scratch.url;
    context.config = testConfig(scratch.url, env);
    context.app = await createServer(context.config, { logger: false });
    await context.app.ready();
    context.adminToken = await login(context.app, context.config.ADMIN_USERNAME, context.config.ADMIN_PASSWORD);
  });
  afterAll(async () => {
    await context.app?.close();
    await scratch?.drop();
  });
  return context;
}

export async function login(app: FastifyInstance, username = 'admin', password = 'admin123'): Promise<string> {
  const response = await app.inject({ method: 'POST', url: '/login', payload: { username, password } });
  if (response.statusCode !== 200) throw new Error(`login failed: ${response.statusCode} ${response.body}`);
  return (response.json() as { access_token: string }).access_token;
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** `app.inject` with the given token. */
export function injectAs(app: FastifyInstance, token: string, options: InjectOptions): Promise<LightMyRequestResponse> {
  return app.inject({ ...options, headers: { ...bearer(token), ...options.headers } });
}

export const uniqueName = (prefix = 'proj') => `${prefix}-${randomBytes(5).toString('hex')}`;

/** Asserts nothing itself: returns the parsed problem body for expect() calls. */
export function problemOf(response: LightMyRequestResponse) {
  return response.json() as { type: string; title: string; status: number; detail: string; error: string; instance?: string; errors?: { path: string; message: string }[] };
}

/** A build as the API answers it: the generated client's type, so a contract change breaks the tests' build. */
export type BuildJson = components['schemas']['Build'];

export const TERMINAL_STATUSES = ['success', 'fail', 'canceled'];

/**
 * Polls `GET /builds/:id` until the build reaches a terminal status (or `until` says so) and returns it; throws
 * after `timeoutMs` with the last state seen.
 */
export async function waitForBuild<T extends { status: string } = { id: number; status: string; logs: string; [key: string]: unknown }>(
  app: FastifyInstance,
  token: string,
  id: number,
  { timeoutMs = 15_000, until = (build: T) => TERMINAL_STATUSES.includes(build.status) } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await injectAs(app, token, { method: 'GET', url: `/builds/${id}` });
    if (response.statusCode !== 200) throw new Error(`GET /builds/${id}: ${response.statusCode} ${response.body}`);
    const build = response.json<T>();
    if (until(build)) return build;
    if (Date.now() > deadline) throw new Error(`build ${id} still ${build.status} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
