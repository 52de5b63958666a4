import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { beforeAll, describe, expect, it } from 'vitest';
import { injectAs, login, problemOf, testDb, uniqueName, useTestApp, type TestContext } from '../helper.js';

interface UserJson {
  id: number;
  username: string;
  role: 'admin' | 'maintainer' | 'viewer';
  created_at: string;
}

interface UserPageJson {
  items: UserJson[];
  page: number;
  per_page: number;
  total: number;
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$/;

const PASSWORD = 'a-decent-passphrase';

/** Usernames are 1–64 of [A-Za-z0-9._-]: uniqueName() fits. */
const newUsername = (prefix = 'user') => uniqueName(prefix);

/** Every response these tests see, to check afterwards that none carried password material. */
function recorder(ctx: TestContext) {
  const seen: LightMyRequestResponse[] = [];
  const as = async (token: string, options: InjectOptions) => {
    const response = await injectAs(ctx.app, token, options);
    seen.push(response);
    return response;
  };
  return {
    seen,
    as,
    admin: (options: InjectOptions) => as(ctx.adminToken, options),
  };
}

function expectProblem(response: LightMyRequestResponse, status: number, error: string) {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(problemOf(response)).toMatchObject({ status, error });
}

function expectValidationError(response: LightMyRequestResponse, path: string) {
  expectProblem(response, 400, 'validation_error');
  expect(problemOf(response).errors?.map((e) => e.path)).toContain(path);
}

/** Every key of a parsed JSON value, at any depth. */
function keysOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(keysOf);
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([key, inner]) => [key, ...keysOf(inner)]);
}

/**
 * No response carries a hash or a password: no `password_hash` or `password` field at any depth, no argon2 string
 * anywhere (headers included). Validation errors may *name* a refused field, as in `/body/password_hash`.
 */
function expectNoPasswordMaterial(responses: LightMyRequestResponse[]) {
  expect(responses.length).toBeGreaterThan(0);
  for (const response of responses) {
    const text = `${JSON.stringify(response.headers)}\n${response.body}`;
    expect(text).not.toContain('$argon2');
    expect(text).not.toContain(PASSWORD);
    if (response.body === '') continue;
    const keys = keysOf(response.json());
    expect(keys).not.toContain('password_hash');
    expect(keys).not.toContain('password');
  }
}

describe(`users: management by an admin (${testDb})`, () => {
  const ctx = useTestApp();
  const api = recorder(ctx);

  const createUser = (payload: Record<string, unknown>) => api.admin({ method: 'POST', url: '/users', payload });
  const getUser = (id: number) => api.admin({ url: `/users/${id}` });
  const patchUser = (id: number, payload: unknown) => api.admin({ method: 'PATCH', url: `/users/${id}`, payload: payload as object });
  const allUsers = async () => {
    const response = await api.admin({ url: '/users', query: { per_page: '100' } });
    expect(response.statusCode).toBe(200);
    return response.json<UserPageJson>().items;
  };

  async function created(payload: Record<string, unknown>): Promise<UserJson> {
    const response = await createUser(payload);
    expect(response.statusCode, response.body).toBe(201);
    return response.json<UserJson>();
  }

  it('creates a viewer by default: 201, Location, exactly id, username, role and created_at', async () => {
    const username = newUsername('alice');
    const before = Date.now();
    const response = await createUser({ username, password: PASSWORD });
    expect(response.statusCode, response.body).toBe(201);
    const body = response.json<UserJson>();
    expect(body).toEqual({ id: expect.any(Number), username, role: 'viewer', created_at: expect.stringMatching(ISO_UTC) });
    expect(response.headers.location).toBe(`/users/${body.id}`);
    expect(Math.abs(Date.parse(body.created_at) - before)).toBeLessThan(120_000);

    const fetched = await getUser(body.id);
    expect(fetched.statusCode).toBe(200);
    expect(fetched.json()).toEqual(body);
  });

  it.each(['viewer', 'maintainer', 'admin'] as const)('creates a %s who can log in and is that role', async (role) => {
    const user = await created({ username: newUsername(role), password: PASSWORD, role });
    expect(user.role).toBe(role);
    const token = await login(ctx.app, user.username, PASSWORD);
    const me = await api.as(token, { url: '/me' });
    expect(me.statusCode).toBe(200);
    expect(me.json()).toEqual(user);
  });

  it('lists users oldest first, paginated with total and Link header', async () => {
    for (let i = 0; i < 3; i++) await created({ username: newUsername(`page${i}`), password: PASSWORD });
    const everyone = await allUsers();
    expect(everyone.length).toBeGreaterThanOrEqual(4);
    const ids = everyone.map((u) => u.id);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    expect(everyone[0]).toMatchObject({ username: ctx.config.ADMIN_USERNAME, role: 'admin' });
    for (const user of everyone) expect(Object.keys(user).sort()).toEqual(['created_at', 'id', 'role', 'username']);

    const response = await api.admin({ url: '/users', query: { per_page: '2', page: '2' } });
    expect(response.statusCode).toBe(200);
    const page = response.json<UserPageJson>();
    expect(page).toMatchObject({ page: 2, per_page: 2, total: everyone.length });
    expect(page.items.map((u) => u.id)).toEqual(ids.slice(2, 4));
    const links = Object.fromEntries(
      String(response.headers.link)
        .split(',')
        .map((part) => /<([^>]*)>; rel="(\w+)"/.exec(part) ?? [])
        .map(([, target = '', rel = '']) => [rel, Object.fromEntries(new URL(target, 'http://x').searchParams)]),
    );
    expect(links.first).toEqual({ page: '1', per_page: '2' });
    expect(links.prev).toEqual({ page: '1', per_page: '2' });
    expect(links.last).toEqual({ page: String(Math.ceil(everyone.length / 2)), per_page: '2' });
  });

  it.each([
    ['per_page', '101'],
    ['per_page', '0'],
    ['page', '0'],
  ])('refuses %s=%s with 400', async (param, value) => {
    expectValidationError(await api.admin({ url: '/users', query: { [param]: value } }), `/querystring/${param}`);
  });

  it('answers 404 for an unknown user and 400 for a malformed id', async () => {
    expectProblem(await getUser(2147483000), 404, 'not_found');
    expectProblem(await patchUser(2147483000, { role: 'viewer' }), 404, 'not_found');
    expectProblem(await patchUser(2147483000, { password: PASSWORD }), 404, 'not_found');
    expectProblem(await api.admin({ method: 'DELETE', url: '/users/2147483000' }), 404, 'not_found');
    expectValidationError(await api.admin({ url: '/users/abc' }), '/params/id');
    expectValidationError(await api.admin({ method: 'DELETE', url: '/users/0' }), '/params/id');
  });

  it('changes a role, and the change shows in GET', async () => {
    const user = await created({ username: newUsername('promo'), password: PASSWORD });
    const response = await patchUser(user.id, { role: 'maintainer' });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toEqual({ ...user, role: 'maintainer' });
    expect((await getUser(user.id)).json()).toEqual({ ...user, role: 'maintainer' });
  });

  it('changes a password: the old one stops working, the new one works, nothing else changes', async () => {
    const user = await created({ username: newUsername('pw'), password: PASSWORD, role: 'maintainer' });
    const response = await patchUser(user.id, { password: 'another-decent-one' });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toEqual(user);
    await expect(login(ctx.app, user.username, PASSWORD)).rejects.toThrow(/401/);
    expect(await login(ctx.app, user.username, 'another-decent-one')).toBeTruthy();
  });

  it('ends every session of the user when the password changes (refresh and access tokens)', async () => {
    const user = await created({ username: newUsername('sess'), password: PASSWORD, role: 'maintainer' });
    const session = await ctx.app.inject({ method: 'POST', url: '/login', payload: { username: user.username, password: PASSWORD } });
    const { access_token, refresh_token } = session.json<{ access_token: string; refresh_token: string }>();
    expect((await ctx.app.inject({ url: '/me', headers: { authorization: `Bearer ${access_token}` } })).statusCode).toBe(200);
    expect((await patchUser(user.id, { password: 'brand-new-secret' })).statusCode).toBe(200);
    expect((await ctx.app.inject({ url: '/me', headers: { authorization: `Bearer ${access_token}` } })).statusCode).toBe(401);
    const refresh = await ctx.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token } });
    expect(refresh.statusCode).toBe(401);
    expect(await login(ctx.app, user.username, 'brand-new-secret')).toBeTruthy();
  });

  it('keeps sessions when only the role changes', async () => {
    const user = await created({ username: newUsername('keep'), password: PASSWORD });
    const token = await login(ctx.app, user.username, PASSWORD);
    expect((await patchUser(user.id, { role: 'maintainer' })).statusCode).toBe(200);
    const me = await ctx.app.inject({ url: '/me', headers: { authorization: `Bearer ${token}` } });
    expect(me.statusCode).toBe(200);
    expect(me.json<UserJson>().role).toBe('maintainer');
  });

  it('changes password and role together', async () => {
    const user = await created({ username: newUsername('both'), password: PASSWORD });
    const response = await patchUser(user.id, { password: 'yet-another-one', role: 'admin' });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<UserJson>().role).toBe('admin');
    expect(await login(ctx.app, user.username, 'yet-another-one')).toBeTruthy();
  });

  it('refuses an empty PATCH', async () => {
    const user = await created({ username: newUsername('empty'), password: PASSWORD });
    expectProblem(await patchUser(user.id, {}), 400, 'validation_error');
  });

  it('deletes a user: 204 without a body, then 404, and the user can no longer log in', async () => {
    const user = await created({ username: newUsername('gone'), password: PASSWORD });
    const response = await api.admin({ method: 'DELETE', url: `/users/${user.id}` });
    expect(response.statusCode, response.body).toBe(204);
    expect(response.body).toBe('');
    expectProblem(await getUser(user.id), 404, 'not_found');
    expectProblem(await api.admin({ method: 'DELETE', url: `/users/${user.id}` }), 404, 'not_found');
    await expect(login(ctx.app, user.username, PASSWORD)).rejects.toThrow(/401/);
    expect((await allUsers()).map((u) => u.id)).not.toContain(user.id);
  });

  it('frees the username of a deleted user', async () => {
    const username = newUsername('reuse');
    const first = await created({ username, password: PASSWORD });
    expect((await api.admin({ method: 'DELETE', url: `/users/${first.id}` })).statusCode).toBe(204);
    const second = await created({ username, password: PASSWORD });
    expect(second.id).not.toBe(first.id);
  });

  describe('usernames', () => {
    it('answers 409 conflict for a username that exists, and the loser changes nothing', async () => {
      const username = newUsername('dup');
      const first = await created({ username, password: PASSWORD, role: 'viewer' });
      const second = await createUser({ username, password: 'a-different-passphrase', role: 'admin' });
      expectProblem(second, 409, 'conflict');
      expect((await getUser(first.id)).json()).toEqual(first);
      expect(await login(ctx.app, username, PASSWORD)).toBeTruthy();
      expect((await allUsers()).filter((u) => u.username === username)).toHaveLength(1);
    });

    it('lets exactly one of 5 simultaneous creations of a username win', async () => {
      const username = newUsername('race');
      const responses = await Promise.all(Array.from({ length: 5 }, () => createUser({ username, password: PASSWORD })));
      const codes = responses.map((r) => r.statusCode).sort();
      expect(codes).toEqual([201, 409, 409, 409, 409]);
      expect((await allUsers()).filter((u) => u.username === username)).toHaveLength(1);
    });

    it('accepts 64 characters of letters, digits, dot, underscore and hyphen', async () => {
      const username = `A.b_c-9${uniqueName('x')}`.padEnd(64, 'z');
      expect(username).toHaveLength(64);
      expect((await created({ username, password: PASSWORD })).username).toBe(username);
    });

    it.each([
      ['empty', ''],
      ['65 characters', 'u'.repeat(65)],
      ['a space', 'two words'],
      ['a slash', 'a/b'],
      ['an @', 'me@example.com'],
      ['a non-ASCII letter', 'zoë'],
      ['a newline', 'line\nbreak'],
    ])('refuses a username with %s', async (_label, username) => {
      expectValidationError(await createUser({ username, password: PASSWORD }), '/body/username');
    });

    it('refuses a missing or non-string username', async () => {
      expectValidationError(await createUser({ password: PASSWORD }), '/body/username');
      expectValidationError(await createUser({ username: 42, password: PASSWORD }), '/body/username');
    });
  });

  describe('password policy', () => {
    it('accepts exactly 8 and exactly 1024 characters', async () => {
      await created({ username: newUsername('min'), password: '12345678' });
      await created({ username: newUsername('max'), password: 'p'.repeat(1024) });
    });

    it.each([
      ['7 characters', '1234567'],
      ['1025 characters', 'p'.repeat(1025)],
      ['nothing', ''],
    ])('refuses %s at creation, pointing at /body/password, and creates nothing', async (_label, password) => {
      const username = newUsername('weak');
      expectValidationError(await createUser({ username, password }), '/body/password');
      expect((await allUsers()).map((u) => u.username)).not.toContain(username);
    });

    it('refuses a missing or non-string password', async () => {
      expectValidationError(await createUser({ username: newUsername('nopw') }), '/body/password');
      expectValidationError(await createUser({ username: newUsername('numpw'), password: 12345678 }), '/body/password');
    });

    it.each([
      ['the same', (u: string) => u],
      ['upper-cased', (u: string) => u.toUpperCase()],
      ['mixed-case', (u: string) => u.replace(/^./, (c) => c.toUpperCase())],
    ])('refuses the username as password (%s) at creation, and creates nothing', async (_label, asPassword) => {
      const username = newUsername('samepw');
      const response = await createUser({ username, password: asPassword(username) });
      expectValidationError(response, '/body/password');
      expect(problemOf(response).errors?.find((e) => e.path === '/body/password')?.message).toMatch(/username/);
      expect((await allUsers()).map((u) => u.username)).not.toContain(username);
    });

    it('applies the same policy on PATCH, and the old password keeps working', async () => {
      const user = await created({ username: newUsername('keep'), password: PASSWORD });
      expectValidationError(await patchUser(user.id, { password: 'short' }), '/body/password');
      expectValidationError(await patchUser(user.id, { password: user.username.toUpperCase() }), '/body/password');
      expectValidationError(await patchUser(user.id, { password: 'x'.repeat(1025) }), '/body/password');
      expect(await login(ctx.app, user.username, PASSWORD)).toBeTruthy();
    });
  });

  describe('roles', () => {
    it.each(['superuser', 'Admin', 'ADMIN', '', 7, null])('refuses the role %j', async (role) => {
      const username = newUsername('badrole');
      expectValidationError(await createUser({ username, password: PASSWORD, role }), '/body/role');
      const user = await created({ username, password: PASSWORD });
      expectValidationError(await patchUser(user.id, { role }), '/body/role');
      expect((await getUser(user.id)).json<UserJson>().role).toBe('viewer');
    });
  });

  describe('mass assignment is refused', () => {
    it.each([
      ['id', 4242],
      ['password_hash', '$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaA'],
      ['created_at', '2020-01-01T00:00:00.000Z'],
      ['is_admin', true],
    ])('POST /users with %s: 400 pointing at it, nothing created', async (field, value) => {
      const username = newUsername('mass');
      expectValidationError(await createUser({ username, password: PASSWORD, [field]: value }), `/body/${field}`);
      expect((await allUsers()).map((u) => u.username)).not.toContain(username);
    });

    it.each([
      ['id', 4242],
      ['username', 'renamed'],
      ['password_hash', '$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaA'],
      ['created_at', '2020-01-01T00:00:00.000Z'],
    ])('PATCH /users/:id with %s (even beside a valid role): 400, nothing changed', async (field, value) => {
      const user = await created({ username: newUsername('massp'), password: PASSWORD });
      expectValidationError(await patchUser(user.id, { role: 'admin', [field]: value }), `/body/${field}`);
      expectValidationError(await patchUser(user.id, { [field]: value }), `/body/${field}`);
      expect((await getUser(user.id)).json()).toEqual(user);
      expect(await login(ctx.app, user.username, PASSWORD)).toBeTruthy();
    });

    it('a maintainer can set no role anywhere: /users is 403, /me is read-only, and the role stays', async () => {
      const user = await created({ username: newUsername('climber'), password: PASSWORD, role: 'maintainer' });
      const token = await login(ctx.app, user.username, PASSWORD);
      expectProblem(await api.as(token, { method: 'PATCH', url: `/users/${user.id}`, payload: { role: 'admin' } }), 403, 'forbidden');
      expectProblem(
        await api.as(token, { method: 'POST', url: '/users', payload: { username: newUsername('sock'), password: PASSWORD, role: 'admin' } }),
        403,
        'forbidden',
      );
      for (const method of ['PATCH', 'PUT', 'POST'] as const) {
        const response = await api.as(token, { method, url: '/me', payload: { role: 'admin' } });
        expect(response.statusCode, `${method} /me`).toBe(405);
      }
      // Role fields elsewhere are unknown fields.
      expectValidationError(
        await api.as(token, { method: 'POST', url: '/projects', payload: { name: uniqueName('p'), repo: 'https://github.com/d/r', role: 'admin' } }),
        '/body/role',
      );
      expect((await getUser(user.id)).json<UserJson>().role).toBe('maintainer');
      expect((await api.as(token, { url: '/me' })).json<UserJson>().role).toBe('maintainer');
    });
  });

  describe('tokens follow the database at once', () => {
    it("a deleted user's still-valid access token is refused with 401 on its next request", async () => {
      const user = await created({ username: newUsername('doomed'), password: PASSWORD, role: 'maintainer' });
      const token = await login(ctx.app, user.username, PASSWORD);
      expect((await api.as(token, { url: '/me' })).statusCode).toBe(200);
      expect((await api.admin({ method: 'DELETE', url: `/users/${user.id}` })).statusCode).toBe(204);
      expectProblem(await api.as(token, { url: '/me' }), 401, 'unauthorized');
      expectProblem(await api.as(token, { url: '/projects' }), 401, 'unauthorized');
      expectProblem(
        await api.as(token, { method: 'POST', url: '/projects', payload: { name: uniqueName('ghost'), repo: 'https://github.com/d/r' } }),
        401,
        'unauthorized',
      );
    });

    it('a maintainer demoted to viewer gets 403 on writes at once, and still reads', async () => {
      const user = await created({ username: newUsername('demoted'), password: PASSWORD, role: 'maintainer' });
      const token = await login(ctx.app, user.username, PASSWORD);
      const project = await api.as(token, { method: 'POST', url: '/projects', payload: { name: uniqueName('before'), repo: 'https://github.com/d/r' } });
      expect(project.statusCode, project.body).toBe(201);
      const projectId = project.json<{ id: number }>().id;

      expect((await patchUser(user.id, { role: 'viewer' })).statusCode).toBe(200);

      const name = uniqueName('after');
      expectProblem(await api.as(token, { method: 'POST', url: '/projects', payload: { name, repo: 'https://github.com/d/r' } }), 403, 'forbidden');
      expectProblem(await api.as(token, { method: 'POST', url: `/projects/${projectId}/builds` }), 403, 'forbidden');
      expectProblem(await api.as(token, { method: 'PATCH', url: `/projects/${projectId}`, payload: { name } }), 403, 'forbidden');
      expect((await api.as(token, { url: '/me' })).json<UserJson>().role).toBe('viewer');
      expect((await api.as(token, { url: `/projects/${projectId}` })).statusCode).toBe(200);
      const found = await api.admin({ url: '/projects', query: { q: name } });
      expect(found.json<{ total: number }>().total).toBe(0);
    });

    it('a viewer promoted to maintainer can write at once with the same token', async () => {
      const user = await created({ username: newUsername('promoted'), password: PASSWORD });
      const token = await login(ctx.app, user.username, PASSWORD);
      const payload = { name: uniqueName('promo'), repo: 'https://github.com/d/r' };
      expectProblem(await api.as(token, { method: 'POST', url: '/projects', payload }), 403, 'forbidden');
      expect((await patchUser(user.id, { role: 'maintainer' })).statusCode).toBe(200);
      expect((await api.as(token, { method: 'POST', url: '/projects', payload })).statusCode).toBe(201);
    });
  });

  it('never shows a password hash (or a password) in any response of this file', () => {
    expectNoPasswordMaterial(api.seen);
  });
});

describe(`users: the last admin (${testDb})`, () => {
  const ctx = useTestApp();
  const api = recorder(ctx);

  const adminIds = async (token: string) => {
    const response = await api.as(token, { url: '/users', query: { per_page: '100' } });
    expect(response.statusCode, response.body).toBe(200);
    return response
      .json<UserPageJson>()
      .items.filter((u) => u.role === 'admin')
      .map((u) => u.id);
  };

  /** A new admin, created by `token`'s admin and logged in. */
  async function newAdmin(token: string) {
    const username = newUsername('admin');
    const response = await api.as(token, { method: 'POST', url: '/users', payload: { username, password: PASSWORD, role: 'admin' } });
    expect(response.statusCode, response.body).toBe(201);
    return { id: response.json<UserJson>().id, token: await login(ctx.app, username, PASSWORD) };
  }

  let seeded: { id: number; token: string };
  /** The one admin left by the concurrent tests. */
  let survivor: { id: number; token: string };

  beforeAll(async () => {
    const me = await api.admin({ url: '/me' });
    seeded = { id: me.json<UserJson>().id, token: ctx.adminToken };
    survivor = seeded;
  });

  it('the seeded admin is the only admin', async () => {
    expect(await adminIds(ctx.adminToken)).toEqual([seeded.id]);
  });

  it('refuses to delete the only admin (409 conflict), who stays', async () => {
    expectProblem(await api.admin({ method: 'DELETE', url: `/users/${seeded.id}` }), 409, 'conflict');
    expect(await adminIds(ctx.adminToken)).toEqual([seeded.id]);
  });

  it.each(['maintainer', 'viewer'])('refuses to demote the only admin to %s (409 conflict), who stays admin', async (role) => {
    const response = await api.admin({ method: 'PATCH', url: `/users/${seeded.id}`, payload: { role } });
    expectProblem(response, 409, 'conflict');
    expect(problemOf(response).detail).toMatch(/last admin/i);
    expect(await adminIds(ctx.adminToken)).toEqual([seeded.id]);
  });

  it('still lets the only admin "change" to admin (nothing is lost)', async () => {
    const response = await api.admin({ method: 'PATCH', url: `/users/${seeded.id}`, payload: { role: 'admin' } });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<UserJson>().role).toBe('admin');
  });

  it('with two admins, either can be demoted or deleted, until one is left', async () => {
    const second = await newAdmin(ctx.adminToken);
    const demote = await api.admin({ method: 'PATCH', url: `/users/${second.id}`, payload: { role: 'maintainer' } });
    expect(demote.statusCode, demote.body).toBe(200);
    expect(await adminIds(ctx.adminToken)).toEqual([seeded.id]);

    const third = await newAdmin(ctx.adminToken);
    expect((await api.admin({ method: 'DELETE', url: `/users/${third.id}` })).statusCode).toBe(204);
    expect(await adminIds(ctx.adminToken)).toEqual([seeded.id]);

    // An admin may remove themself while another admin remains.
    const fourth = await newAdmin(ctx.adminToken);
    expect((await api.as(fourth.token, { method: 'DELETE', url: `/users/${fourth.id}` })).statusCode).toBe(204);
    expectProblem(await api.as(fourth.token, { url: '/me' }), 401, 'unauthorized');
    expect(await adminIds(ctx.adminToken)).toEqual([seeded.id]);
  });

  it('two admins deleting each other at the same time: exactly one succeeds, one admin remains (5 rounds)', async () => {
    for (let round = 0; round < 5; round++) {
      const other = await newAdmin(survivor.token);
      const [first, second] = await Promise.all([
        api.as(survivor.token, { method: 'DELETE', url: `/users/${other.id}` }),
        api.as(other.token, { method: 'DELETE', url: `/users/${survivor.id}` }),
      ]);
      const codes = [first.statusCode, second.statusCode];
      expect(codes.filter((c) => c === 204), `round ${round}: ${codes.join(', ')}`).toHaveLength(1);
      // The loser is refused by the guard, or (if it arrived late) as a user who no longer exists.
      for (const loser of [first, second].filter((r) => r.statusCode !== 204)) {
        expect([409, 401], loser.body).toContain(loser.statusCode);
      }
      survivor = first.statusCode === 204 ? survivor : other;
      expect(await adminIds(survivor.token), `round ${round}`).toEqual([survivor.id]);
    }
  });

  it('two admins demoting each other at the same time: exactly one succeeds, one admin remains (5 rounds)', async () => {
    for (let round = 0; round < 5; round++) {
      const other = await newAdmin(survivor.token);
      const [first, second] = await Promise.all([
        api.as(survivor.token, { method: 'PATCH', url: `/users/${other.id}`, payload: { role: 'viewer' } }),
        api.as(other.token, { method: 'PATCH', url: `/users/${survivor.id}`, payload: { role: 'viewer' } }),
      ]);
      const codes = [first.statusCode, second.statusCode];
      expect(codes.filter((c) => c === 200), `round ${round}: ${codes.join(', ')}`).toHaveLength(1);
      // The loser is refused by the guard, or (if it arrived late) for no longer being an admin.
      for (const loser of [first, second].filter((r) => r.statusCode !== 200)) {
        expect([409, 403], loser.body).toContain(loser.statusCode);
      }
      survivor = first.statusCode === 200 ? survivor : other;
      expect(await adminIds(survivor.token), `round ${round}`).toEqual([survivor.id]);
    }
  });

  it('never shows a password hash (or a password) in any response of this file', () => {
    expectNoPasswordMaterial(api.seen);
  });
});

/**
 * The guard itself, without HTTP in between: on PostgreSQL the two statements run on two pooled connections at
 * once, so without the `for update` lock both would count two admins and both succeed.
 */
describe(`users repository: the last-admin guard under concurrency (${testDb})`, () => {
  const ctx = useTestApp();
  const ROUNDS = 20;
  /** Never verified: these users only exist to be raced over. */
  const FAKE_HASH = 'not-a-real-hash';

  const adminCount = async () => (await ctx.app.usersRepository.list({ page: 1, perPage: 100 })).items.filter((u) => u.role === 'admin').length;

  async function soleAdminId(): Promise<number> {
    const { items } = await ctx.app.usersRepository.list({ page: 1, perPage: 100 });
    const admins = items.filter((u) => u.role === 'admin');
    expect(admins).toHaveLength(1);
    return admins[0]?.id ?? 0;
  }

  const addAdmin = async () => {
    const user = await ctx.app.usersRepository.create({ username: newUsername('racer'), password_hash: FAKE_HASH, role: 'admin' });
    expect(user).toBeDefined();
    return user?.id ?? 0;
  };

  it(`mutual deletes: exactly one wins, ${ROUNDS} rounds`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const [a, b] = [await soleAdminId(), await addAdmin()];
      const outcomes = await Promise.all([ctx.app.usersRepository.delete(a), ctx.app.usersRepository.delete(b)]);
      expect(outcomes.filter((o) => o.ok), `round ${round}`).toHaveLength(1);
      expect(outcomes.find((o) => !o.ok)).toEqual({ ok: false, reason: 'last_admin' });
      expect(await adminCount()).toBe(1);
    }
  });

  it(`a delete racing a demotion: exactly one wins, ${ROUNDS} rounds`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const [a, b] = [await soleAdminId(), await addAdmin()];
      const outcomes = await Promise.all([ctx.app.usersRepository.delete(a), ctx.app.usersRepository.update(b, { role: 'viewer' })]);
      expect(outcomes.filter((o) => o.ok), `round ${round}`).toHaveLength(1);
      expect(outcomes.find((o) => !o.ok)).toEqual({ ok: false, reason: 'last_admin' });
      expect(await adminCount()).toBe(1);
    }
  });

  it('three admins, three simultaneous deletes: exactly two win', async () => {
    const ids = [await soleAdminId(), await addAdmin(), await addAdmin()];
    const outcomes = await Promise.all(ids.map((id) => ctx.app.usersRepository.delete(id)));
    expect(outcomes.filter((o) => o.ok)).toHaveLength(2);
    expect(await adminCount()).toBe(1);
  });

  it('tells a missing user from a protected one, and leaves non-admins unguarded', async () => {
    expect(await ctx.app.usersRepository.delete(2147483000)).toEqual({ ok: false, reason: 'not_found' });
    expect(await ctx.app.usersRepository.update(2147483000, { role: 'viewer' })).toEqual({ ok: false, reason: 'not_found' });
    expect(await ctx.app.usersRepository.delete(await soleAdminId())).toEqual({ ok: false, reason: 'last_admin' });
    const viewer = await ctx.app.usersRepository.create({ username: newUsername('plain'), password_hash: FAKE_HASH, role: 'viewer' });
    const maintainer = await ctx.app.usersRepository.update(viewer?.id ?? 0, { role: 'maintainer' });
    expect(maintainer).toMatchObject({ ok: true, value: { role: 'maintainer' } });
    expect(await ctx.app.usersRepository.update(viewer?.id ?? 0, { role: 'viewer' })).toMatchObject({ ok: true });
    expect(await ctx.app.usersRepository.delete(viewer?.id ?? 0)).toEqual({ ok: true, value: viewer?.id });
  });
});
