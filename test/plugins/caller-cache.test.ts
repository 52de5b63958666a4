import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CallerCache, type ActiveCaller } from '../../src/auth/caller-cache.js';
import { createServer } from '../../src/server.js';
import { bearer, createScratchDatabase, testConfig, testDb, uniqueName, type ScratchDatabase } from '../helper.js';

const caller = (id: number, role: ActiveCaller['role'] = 'viewer'): ActiveCaller => ({ id, username: `user-${id}`, role });

describe('CallerCache', () => {
  it('answers a repeated lookup from memory until the TTL is over', async () => {
    let now = 1000;
    const load = vi.fn(async (id: number) => caller(id));
    const cache = new CallerCache({ load, ttlMs: 100, now: () => now });
    expect(await cache.find(1, 'f')).toEqual(caller(1));
    expect(await cache.find(1, 'f')).toEqual(caller(1));
    expect(load).toHaveBeenCalledTimes(1);
    // Another session of the same user is another entry.
    await cache.find(1, 'g');
    expect(load).toHaveBeenCalledTimes(2);
    now += 100;
    await cache.find(1, 'f');
    expect(load).toHaveBeenCalledTimes(3);
  });

  it('never keeps a refusal', async () => {
    const load = vi.fn(async () => undefined);
    const cache = new CallerCache({ load, ttlMs: 60_000 });
    expect(await cache.find(1, 'f')).toBeUndefined();
    expect(await cache.find(1, 'f')).toBeUndefined();
    expect(load).toHaveBeenCalledTimes(2);
  });

  it('forgets everything on invalidate(), and a lookup in flight then does not store its answer', async () => {
    let release: (() => void) | undefined;
    let blocked = false;
    const load = vi.fn(async (id: number) => {
      if (id === 2 && !blocked) {
        blocked = true;
        await new Promise<void>((resolve) => (release = resolve));
      }
      return caller(id);
    });
    const cache = new CallerCache({ load, ttlMs: 60_000 });
    await cache.find(1, 'f');
    cache.invalidate();
    expect(cache.size).toBe(0);
    await cache.find(1, 'f');
    expect(load).toHaveBeenCalledTimes(2);

    // Read before a revocation, answered after it: possibly stale, so not kept.
    const inFlight = cache.find(2, 'f');
    await vi.waitFor(() => expect(release).toBeDefined());
    cache.invalidate();
    release?.();
    await inFlight;
    await cache.find(2, 'f');
    expect(load.mock.calls.filter(([id]) => id === 2)).toHaveLength(2);
  });

  it('forgets everything when the version read from the database moves', async () => {
    let version = 7;
    const load = vi.fn(async (id: number) => caller(id));
    const cache = new CallerCache({ load, ttlMs: 60_000, version: () => version });
    await cache.find(1, 'f');
    await cache.find(1, 'f');
    expect(load).toHaveBeenCalledTimes(1);
    version++;
    await cache.find(1, 'f');
    expect(load).toHaveBeenCalledTimes(2);
  });

  it('reads the version at most every versionCheckMs, or at once on checkVersion()', async () => {
    let now = 0;
    let version = 1;
    const versionReads = vi.fn(() => version);
    const load = vi.fn(async (id: number) => caller(id));
    const cache = new CallerCache({ load, ttlMs: 60_000, version: versionReads, versionCheckMs: 50, now: () => now });
    await cache.find(1, 'f');
    version++;
    now = 49;
    await cache.find(1, 'f');
    expect(versionReads).toHaveBeenCalledTimes(1);
    expect(load).toHaveBeenCalledTimes(1);
    now = 50;
    await cache.find(1, 'f');
    expect(versionReads).toHaveBeenCalledTimes(2);
    expect(load).toHaveBeenCalledTimes(2);
    version++;
    cache.checkVersion();
    await cache.find(1, 'f');
    expect(load).toHaveBeenCalledTimes(3);
  });

  it('asks every time when the TTL is 0 or while disabled, and holds at most maxEntries', async () => {
    const load = vi.fn(async (id: number) => caller(id));
    const off = new CallerCache({ load, ttlMs: 0 });
    await off.find(1, 'f');
    await off.find(1, 'f');
    expect(load).toHaveBeenCalledTimes(2);
    expect(off.enabled).toBe(false);

    const later = new CallerCache({ load, ttlMs: 60_000, maxEntries: 2 }, { enabled: false });
    await later.find(1, 'f');
    expect(later.size).toBe(0);
    later.setEnabled(true);
    for (const id of [1, 2, 3]) await later.find(id, 'f');
    expect(later.size).toBe(2);
  });
});

/**
 * Two app instances on one database stand for two processes (on SQLite, a file both open): each has its own cache,
 * and a change made through one, or by raw SQL, must reach the other's.
 */
describe(`caller cache across app instances (${testDb})`, () => {
  let scratch: ScratchDatabase | undefined;
  let dir: string | undefined;
  let a: FastifyInstance;
  let b: FastifyInstance;

  beforeAll(async () => {
    let url: string;
    if (testDb === 'sqlite') {
      dir = mkdtempSync(join(tmpdir(), 'usine-caller-cache-'));
      url = `sqlite:${join(dir, 'usine.db')}`;
    } else {
      scratch = await createScratchDatabase();
      url = scratch.url;
    }
    // A long TTL: whatever ends a cached answer here is an invalidation, not its age.
    a = await createServer(testConfig(url, { AUTH_CACHE_TTL_MS: '60000' }), { logger: false });
    await a.ready();
    b = await createServer(testConfig(url, { AUTH_CACHE_TTL_MS: '60000' }), { logger: false });
    await b.ready();
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await scratch?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const login = async (app: FastifyInstance, username = 'admin', password = 'admin123') => {
    const response = await app.inject({ method: 'POST', url: '/login', payload: { username, password } });
    expect(response.statusCode, response.body).toBe(200);
    return response.json<{ access_token: string }>().access_token;
  };
  const status = async (app: FastifyInstance, token: string, url = '/projects') =>
    (await app.inject({ url, headers: bearer(token) })).statusCode;
  /**
   * What an instance must do before it can count on a change made elsewhere (another instance, raw SQL): SQLite
   * reads its counter now instead of within 50 ms; PostgreSQL waits for the notification.
   */
  const heard = (app: FastifyInstance) => app.callerCache.sync();

  async function createUser(role: 'admin' | 'maintainer' | 'viewer') {
    const username = uniqueName('cached');
    const password = 'a-long-enough-password';
    const response = await a.inject({
      method: 'POST',
      url: '/users',
      headers: bearer(await login(a)),
      payload: { username, password, role },
    });
    expect(response.statusCode, response.body).toBe(201);
    return { id: response.json<{ id: number }>().id, username, password };
  }

  it('serves repeated requests of a session without asking the database', async () => {
    const token = await login(b);
    const lookups = vi.spyOn(b.refreshTokensRepository, 'findActiveCaller');
    try {
      for (let i = 0; i < 5; i++) expect(await status(b, token)).toBe(200);
      expect(lookups.mock.calls.length).toBeLessThanOrEqual(1);
    } finally {
      lookups.mockRestore();
    }
  });

  it('a logout through one instance ends the session in the other', async () => {
    const token = await login(a);
    expect(await status(b, token)).toBe(200);
    expect(await status(b, token)).toBe(200);
    expect((await a.inject({ method: 'POST', url: '/logout', headers: bearer(token) })).statusCode).toBe(204);
    expect(await status(a, token)).toBe(401);
    await heard(b);
    expect(await status(b, token)).toBe(401);
  });

  it('a user deleted or demoted through one instance loses access in the other', async () => {
    const doomed = await createUser('viewer');
    const demoted = await createUser('admin');
    const doomedToken = await login(a, doomed.username, doomed.password);
    const demotedToken = await login(a, demoted.username, demoted.password);
    expect(await status(b, doomedToken)).toBe(200);
    expect(await status(b, demotedToken, '/users')).toBe(200);

    const admin = bearer(await login(a));
    expect((await a.inject({ method: 'DELETE', url: `/users/${doomed.id}`, headers: admin })).statusCode).toBe(204);
    const patch = await a.inject({ method: 'PATCH', url: `/users/${demoted.id}`, headers: admin, payload: { role: 'viewer' } });
    expect(patch.statusCode, patch.body).toBe(200);
    expect(await status(a, doomedToken)).toBe(401);
    expect(await status(a, demotedToken, '/users')).toBe(403);

    await heard(b);
    expect(await status(b, doomedToken)).toBe(401);
    expect(await status(b, demotedToken, '/users')).toBe(403);
  });

  it('a change made with raw SQL, bypassing the repositories, is seen too', async () => {
    const user = await createUser('admin');
    const token = await login(a, user.username, user.password);
    expect(await status(a, token, '/users')).toBe(200);
    expect(await status(b, token, '/users')).toBe(200);

    const { users } = a.database.tables;
    await a.database.db.update(users).set({ role: 'maintainer' }).where(eq(users.id, user.id));
    await heard(a);
    await heard(b);
    expect(await status(a, token, '/users')).toBe(403);
    expect(await status(b, token, '/users')).toBe(403);
  });
});
