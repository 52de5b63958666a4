import { createHash, randomBytes } from 'node:crypto';
import { eq } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
import { describe, expect, it } from 'vitest';
import { problemOf, testDb, uniqueName, useTestApp, type TestContext } from '../helper.js';

interface TokenPairJson {
  access_token: string;
  token_type: string;
  expires_in: number;
  refresh_token: string;
  refresh_expires_in: number;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

function claimsOf(accessToken: string): Record<string, unknown> {
  const payload = accessToken.split('.')[1];
  if (payload === undefined) throw new Error('not a JWT');
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
}

function expectUnauthorized(response: LightMyRequestResponse, instance: string) {
  expect(response.statusCode, response.body).toBe(401);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = problemOf(response);
  expect(body).toMatchObject({ status: 401, error: 'unauthorized', type: 'urn:usine:problem:unauthorized', instance });
  expect(response.body).not.toMatch(/access_token|refresh_token"/);
  return body;
}

function expectTokenPair(response: LightMyRequestResponse, ctx: TestContext): TokenPairJson {
  expect(response.statusCode, response.body).toBe(200);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  const body = response.json<TokenPairJson>();
  expect(Object.keys(body).sort()).toEqual(['access_token', 'expires_in', 'refresh_expires_in', 'refresh_token', 'token_type']);
  expect(body).toMatchObject({
    token_type: 'bearer',
    expires_in: ctx.config.ACCESS_TOKEN_TTL,
    refresh_expires_in: ctx.config.REFRESH_TOKEN_TTL,
  });
  expect(body.access_token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  expect(body.refresh_token).toMatch(/^[\w-]{43}$/);
  return body;
}

/** Requests and database reads shared by the describe blocks below. */
function tools(ctx: TestContext) {
  const tables = () => ctx.app.database.tables;
  const db = () => ctx.app.database.db;
  return {
    login: async (username = 'admin', password = 'admin123') =>
      expectTokenPair(await ctx.app.inject({ method: 'POST', url: '/login', payload: { username, password } }), ctx),
    refresh: (refresh_token: unknown) =>
      ctx.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token } as object }),
    logout: (accessToken?: string) =>
      ctx.app.inject({
        method: 'POST',
        url: '/logout',
        headers: accessToken === undefined ? {} : { authorization: `Bearer ${accessToken}` },
      }),
    projects: (accessToken: string) =>
      ctx.app.inject({ url: '/projects', headers: { authorization: `Bearer ${accessToken}` } }),
    rows: async () => db().select().from(tables().refresh_tokens),
    rowOf: async (refreshToken: string) => {
      const { refresh_tokens } = tables();
      const rows = await db().select().from(refresh_tokens).where(eq(refresh_tokens.token_hash, sha256(refreshToken)));
      return rows[0];
    },
    familyRows: async (familyId: string) => {
      const { refresh_tokens } = tables();
      return db().select().from(refresh_tokens).where(eq(refresh_tokens.family_id, familyId));
    },
    /** A user written straight to the database (the users API is not what is under test here). */
    createUser: async (role: 'admin' | 'maintainer' | 'viewer' = 'maintainer') => {
      const username = uniqueName('user');
      const password = `pw-${randomBytes(8).toString('hex')}`;
      const { users } = tables();
      const rows = await db()
        .insert(users)
        .values({ username, password_hash: await ctx.app.passwords.hash(password), role })
        .returning({ id: users.id });
      const id = rows[0]?.id;
      if (id === undefined) throw new Error('user not created');
      return { id, username, password };
    },
  };
}

/** These tests log in far more often than the login throttle allows a real client. */
const GENEROUS_LOGIN_LIMITS = { RATE_LIMIT_LOGIN_IP_MAX: '10000', RATE_LIMIT_LOGIN_USER_MAX: '10000' };

describe(`POST /token/refresh and POST /logout (${testDb})`, () => {
  const ctx = useTestApp(GENEROUS_LOGIN_LIMITS);
  const t = tools(ctx);

  describe('login', () => {
    it('returns an opaque refresh token, stored only as its SHA-256', async () => {
      const before = Date.now();
      const pair = await t.login();
      // Not a JWT: no dots, no JSON header.
      expect(pair.refresh_token.split('.')).toHaveLength(1);
      expect(() => JSON.parse(Buffer.from(pair.refresh_token, 'base64url').toString('utf8'))).toThrow();
      expect(Buffer.from(pair.refresh_token, 'base64url')).toHaveLength(32);
      expect(pair.refresh_token).not.toBe(pair.access_token);

      const row = await t.rowOf(pair.refresh_token);
      expect(row).toBeDefined();
      expect(row?.token_hash).toMatch(/^[0-9a-f]{64}$/);
      expect(row?.token_hash).not.toBe(pair.refresh_token);
      expect(row?.family_id).toBe(claimsOf(pair.access_token).fid);
      expect(row?.used_at).toBeNull();
      expect(row?.revoked_at).toBeNull();
      const expires = row?.expires_at.getTime() ?? 0;
      expect(expires).toBeGreaterThanOrEqual(before + ctx.config.REFRESH_TOKEN_TTL * 1000 - 1000);
      expect(expires).toBeLessThanOrEqual(Date.now() + ctx.config.REFRESH_TOKEN_TTL * 1000 + 1000);

      // The clear token appears nowhere in the table.
      const everything = JSON.stringify(await t.rows());
      expect(everything).not.toContain(pair.refresh_token);
    });

    it('starts a new family (session) on every login', async () => {
      const [a, b] = [await t.login(), await t.login()];
      const [fa, fb] = [claimsOf(a.access_token).fid, claimsOf(b.access_token).fid];
      expect(fa).not.toBe(fb);
      expect((await t.rowOf(a.refresh_token))?.family_id).toBe(fa);
      expect((await t.rowOf(b.refresh_token))?.family_id).toBe(fb);
      expect(a.refresh_token).not.toBe(b.refresh_token);
    });
  });

  describe('refresh', () => {
    it('answers 200 with new, distinct tokens of the same family; the new access token works', async () => {
      const first = await t.login();
      const second = expectTokenPair(await t.refresh(first.refresh_token), ctx);
      expect(second.refresh_token).not.toBe(first.refresh_token);
      expect(second.access_token).not.toBe(first.access_token);

      const [c1, c2] = [claimsOf(first.access_token), claimsOf(second.access_token)];
      expect(c2).toMatchObject({ sub: c1.sub, username: 'admin', role: 'admin', typ: 'access', fid: c1.fid });
      expect(c2.jti).not.toBe(c1.jti);

      expect((await t.projects(second.access_token)).statusCode).toBe(200);
      // Rotation does not end the session: the previous access token lives until it expires.
      expect((await t.projects(first.access_token)).statusCode).toBe(200);

      const used = await t.rowOf(first.refresh_token);
      expect(used?.used_at).toBeInstanceOf(Date);
      expect(used?.revoked_at).toBeNull();
      const next = await t.rowOf(second.refresh_token);
      expect(next).toMatchObject({ family_id: c1.fid, used_at: null, revoked_at: null });

      // And the chain goes on.
      const third = expectTokenPair(await t.refresh(second.refresh_token), ctx);
      expect((await t.projects(third.access_token)).statusCode).toBe(200);
      expect(await t.familyRows(String(c1.fid))).toHaveLength(3);
    });

    it("issues the access token for the user's current username and role", async () => {
      const user = await t.createUser('maintainer');
      const pair = await t.login(user.username, user.password);
      expect(claimsOf(pair.access_token)).toMatchObject({ username: user.username, role: 'maintainer' });

      const { users } = ctx.app.database.tables;
      const renamed = uniqueName('renamed');
      await ctx.app.database.db.update(users).set({ role: 'viewer', username: renamed }).where(eq(users.id, user.id));

      const next = expectTokenPair(await t.refresh(pair.refresh_token), ctx);
      expect(claimsOf(next.access_token)).toMatchObject({ sub: String(user.id), username: renamed, role: 'viewer' });
    });

    it('reuse of a rotated token: 401, and the whole family (refresh and access tokens) is revoked', async () => {
      const bystander = await t.login();
      const first = await t.login();
      const second = expectTokenPair(await t.refresh(first.refresh_token), ctx);
      const third = expectTokenPair(await t.refresh(second.refresh_token), ctx);
      expect((await t.projects(third.access_token)).statusCode).toBe(200);

      // An attacker (or a confused client) presents the first, already rotated, token.
      const reuse = expectUnauthorized(await t.refresh(first.refresh_token), '/token/refresh');
      expect(reuse.detail).toMatch(/already used/i);

      // The newest token of the family is dead too, and so are all its access tokens.
      expectUnauthorized(await t.refresh(third.refresh_token), '/token/refresh');
      for (const pair of [first, second, third]) expectUnauthorized(await t.projects(pair.access_token), '/projects');
      const family = await t.familyRows(String(claimsOf(first.access_token).fid));
      expect(family).toHaveLength(3);
      for (const row of family) expect(row.revoked_at).toBeInstanceOf(Date);

      // Presenting it yet again changes nothing and still answers 401.
      expectUnauthorized(await t.refresh(first.refresh_token), '/token/refresh');

      // Another session of the same user is untouched.
      expect((await t.projects(bystander.access_token)).statusCode).toBe(200);
      expectTokenPair(await t.refresh(bystander.refresh_token), ctx);
    });

    it('refuses an unknown refresh token with 401 and revokes nothing', async () => {
      const pair = await t.login();
      const body = expectUnauthorized(await t.refresh(randomBytes(32).toString('base64url')), '/token/refresh');
      expect(body.detail).not.toMatch(/already used/i);
      expect((await t.projects(pair.access_token)).statusCode).toBe(200);
    });

    it('refuses an access token presented as a refresh token', async () => {
      const pair = await t.login();
      expectUnauthorized(await t.refresh(pair.access_token), '/token/refresh');
      // Nothing was revoked by it.
      expect((await t.projects(pair.access_token)).statusCode).toBe(200);
      expectTokenPair(await t.refresh(pair.refresh_token), ctx);
    });

    it('refuses a refresh token presented as a bearer access token', async () => {
      const pair = await t.login();
      expectUnauthorized(await t.projects(pair.refresh_token), '/projects');
      expectUnauthorized(await t.logout(pair.refresh_token), '/logout');
      // …and the refresh token still does its own job.
      expectTokenPair(await t.refresh(pair.refresh_token), ctx);
    });

    it('of 10 concurrent refreshes with the same token exactly one succeeds; the others count as reuse', async () => {
      const pair = await t.login();
      const responses = await Promise.all(Array.from({ length: 10 }, () => t.refresh(pair.refresh_token)));
      const ok = responses.filter((r) => r.statusCode === 200);
      expect(ok).toHaveLength(1);
      for (const response of responses.filter((r) => r.statusCode !== 200)) expectUnauthorized(response, '/token/refresh');

      const fid = String(claimsOf(pair.access_token).fid);
      const family = await t.familyRows(fid);
      // Exactly one successor was issued.
      expect(family).toHaveLength(2);
      // A second presentation of a used token is reuse (RFC 9700 §4.14.2), concurrent or not: the family is gone,
      // including the token the winner received (even if it was written after the revocation).
      const winner = ok[0]?.json<TokenPairJson>();
      expect(winner).toBeDefined();
      expectUnauthorized(await t.refresh(winner?.refresh_token), '/token/refresh');
      expectUnauthorized(await t.projects(winner?.access_token ?? ''), '/projects');
    });

    it('a token added to a family after it was revoked is dead too (a refresh racing a logout)', async () => {
      const pair = await t.login();
      const fid = String(claimsOf(pair.access_token).fid);
      expect((await t.logout(pair.access_token)).statusCode).toBe(204);
      const late = randomBytes(32).toString('base64url');
      const admin = await ctx.app.usersRepository.findByUsername('admin');
      const stored = await ctx.app.refreshTokensRepository.create({
        user_id: admin?.id ?? 0,
        family_id: fid,
        token_hash: sha256(late),
        expires_at: new Date(Date.now() + 60_000),
      });
      expect(stored).toBe(true);
      expectUnauthorized(await t.refresh(late), '/token/refresh');
      expect((await t.rowOf(late))?.used_at).toBeNull();
    });

    it("a deleted user's refresh and access tokens stop working (rows cascade away)", async () => {
      const user = await t.createUser('viewer');
      const pair = await t.login(user.username, user.password);
      const next = expectTokenPair(await t.refresh(pair.refresh_token), ctx);
      expect((await t.projects(next.access_token)).statusCode).toBe(200);

      const { users } = ctx.app.database.tables;
      await ctx.app.database.db.delete(users).where(eq(users.id, user.id));
      // Raw SQL bypasses the repositories, so it reaches authentication's cache the way another process's change
      // does, within milliseconds: sync() waits for it (SQLite: reads the change counter now; PostgreSQL: waits for
      // the notification). test/plugins/caller-cache.test.ts covers both paths.
      await ctx.app.callerCache.sync();

      expect(await t.familyRows(String(claimsOf(pair.access_token).fid))).toEqual([]);
      expectUnauthorized(await t.refresh(next.refresh_token), '/token/refresh');
      expectUnauthorized(await t.projects(next.access_token), '/projects');
      expectUnauthorized(await t.logout(next.access_token), '/logout');
    });

    describe('validation', () => {
      const pathsOf = (response: LightMyRequestResponse) => {
        expect(response.statusCode).toBe(400);
        expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
        const body = problemOf(response);
        expect(body).toMatchObject({ status: 400, error: 'validation_error', instance: '/token/refresh' });
        return (body.errors ?? []).map((e) => e.path).sort();
      };
      const post = (payload: unknown) => ctx.app.inject({ method: 'POST', url: '/token/refresh', payload: payload as object });

      it('reports a missing refresh_token', async () => {
        expect(pathsOf(await post({}))).toEqual(['/body/refresh_token']);
      });

      it('refuses an empty or non-string refresh_token without coercing it', async () => {
        expect(pathsOf(await post({ refresh_token: '' }))).toEqual(['/body/refresh_token']);
        expect(pathsOf(await post({ refresh_token: 12345 }))).toEqual(['/body/refresh_token']);
        expect(pathsOf(await post({ refresh_token: ['x'] }))).toEqual(['/body/refresh_token']);
      });

      it('refuses an extra field, and does not echo the token back', async () => {
        const pair = await t.login();
        const response = await post({ refresh_token: pair.refresh_token, access_token: pair.access_token });
        expect(pathsOf(response)).toEqual(['/body/access_token']);
        expect(response.body).not.toContain(pair.refresh_token);
        // The refused request did not use the token.
        expectTokenPair(await t.refresh(pair.refresh_token), ctx);
      });

      it('refuses a body that is not a JSON object', async () => {
        const response = await ctx.app.inject({
          method: 'POST',
          url: '/token/refresh',
          headers: { 'content-type': 'application/json' },
          payload: '"a-token"',
        });
        expect(response.statusCode).toBe(400);
        expect(problemOf(response).error).toBe('validation_error');
      });

      it('refuses a missing body', async () => {
        const response = await ctx.app.inject({ method: 'POST', url: '/token/refresh' });
        expect(response.statusCode).toBe(400);
        expect(problemOf(response).error).toBe('validation_error');
      });
    });
  });

  describe('logout', () => {
    it("answers 204 with no body and ends the caller's session only", async () => {
      const other = await t.login();
      const session = await t.login();
      const rotated = expectTokenPair(await t.refresh(session.refresh_token), ctx);

      const response = await t.logout(rotated.access_token);
      expect(response.statusCode).toBe(204);
      expect(response.body).toBe('');
      expect(response.headers['content-type']).toBeUndefined();

      // The session's refresh token and every access token of the session are dead.
      const body = expectUnauthorized(await t.refresh(rotated.refresh_token), '/token/refresh');
      expect(body.detail).not.toMatch(/already used/i);
      expectUnauthorized(await t.projects(rotated.access_token), '/projects');
      expectUnauthorized(await t.projects(session.access_token), '/projects');
      for (const row of await t.familyRows(String(claimsOf(session.access_token).fid))) {
        expect(row.revoked_at).toBeInstanceOf(Date);
      }
      // Logging out twice is refused: the token is no longer valid.
      expectUnauthorized(await t.logout(rotated.access_token), '/logout');

      // Another login of the same user keeps working, access and refresh.
      expect((await t.projects(other.access_token)).statusCode).toBe(200);
      const next = expectTokenPair(await t.refresh(other.refresh_token), ctx);
      expect((await t.projects(next.access_token)).statusCode).toBe(200);
    });

    it('needs a bearer access token', async () => {
      expectUnauthorized(await t.logout(), '/logout');
      expectUnauthorized(await t.logout('garbage'), '/logout');
    });

    it('logging out one session after a refresh of another leaves the other alive', async () => {
      const a = await t.login();
      const b = await t.login();
      expect((await t.logout(a.access_token)).statusCode).toBe(204);
      expectUnauthorized(await t.refresh(a.refresh_token), '/token/refresh');
      expectTokenPair(await t.refresh(b.refresh_token), ctx);
    });
  });
});

describe(`refresh token expiry (REFRESH_TOKEN_TTL=60, ${testDb})`, () => {
  const ctx = useTestApp({ ...GENEROUS_LOGIN_LIMITS, REFRESH_TOKEN_TTL: '60' });
  const t = tools(ctx);

  it('reports and stores the configured lifetime', async () => {
    const before = Date.now();
    const pair = await t.login();
    expect(pair.refresh_expires_in).toBe(60);
    const expires = (await t.rowOf(pair.refresh_token))?.expires_at.getTime() ?? 0;
    expect(expires).toBeGreaterThanOrEqual(before + 59_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 61_000);
  });

  it('refuses an expired refresh token with 401, without revoking the session', async () => {
    const pair = await t.login();
    const { refresh_tokens } = ctx.app.database.tables;
    await ctx.app.database.db
      .update(refresh_tokens)
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where(eq(refresh_tokens.token_hash, sha256(pair.refresh_token)));

    const body = expectUnauthorized(await t.refresh(pair.refresh_token), '/token/refresh');
    expect(body.detail).not.toMatch(/already used/i);
    expect((await t.rowOf(pair.refresh_token))?.used_at).toBeNull();
    // Expiry is not theft: nothing is revoked. But a session that can no longer be refreshed is over, and its access
    // tokens end with it (src/repositories/refresh-tokens.ts, findActiveCaller).
    for (const row of await t.familyRows(String(claimsOf(pair.access_token).fid))) expect(row.revoked_at).toBeNull();
    expectUnauthorized(await t.projects(pair.access_token), '/projects');
  });

  it('an access token lives on while its session has a refresh token left that has not expired', async () => {
    const pair = await t.login();
    const next = expectTokenPair(await t.refresh(pair.refresh_token), ctx);
    const { refresh_tokens } = ctx.app.database.tables;
    await ctx.app.database.db
      .update(refresh_tokens)
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where(eq(refresh_tokens.token_hash, sha256(pair.refresh_token)));
    await ctx.app.callerCache.sync();
    expect((await t.projects(pair.access_token)).statusCode).toBe(200);
    expect((await t.projects(next.access_token)).statusCode).toBe(200);
  });

  it('a token that expires after it was used still counts as reuse', async () => {
    const pair = await t.login();
    const next = expectTokenPair(await t.refresh(pair.refresh_token), ctx);
    const { refresh_tokens } = ctx.app.database.tables;
    await ctx.app.database.db
      .update(refresh_tokens)
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where(eq(refresh_tokens.token_hash, sha256(pair.refresh_token)));
    expectUnauthorized(await t.refresh(pair.refresh_token), '/token/refresh');
    expectUnauthorized(await t.refresh(next.refresh_token), '/token/refresh');
  });
});
