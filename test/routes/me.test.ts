import { beforeAll, describe, expect, it } from 'vitest';
import { injectAs, login, problemOf, testDb, uniqueName, useTestApp } from '../helper.js';

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$/;
const PASSWORD = 'a-decent-passphrase';

describe(`GET /me (${testDb})`, () => {
  const ctx = useTestApp();
  const users: Record<'maintainer' | 'viewer', { id: number; username: string; token: string }> = {} as never;

  beforeAll(async () => {
    for (const role of ['maintainer', 'viewer'] as const) {
      const username = uniqueName(role);
      const response = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: '/users', payload: { username, password: PASSWORD, role } });
      expect(response.statusCode, response.body).toBe(201);
      users[role] = { id: response.json<{ id: number }>().id, username, token: await login(ctx.app, username, PASSWORD) };
    }
  });

  it('shows the admin exactly id, username, role and created_at', async () => {
    const response = await injectAs(ctx.app, ctx.adminToken, { url: '/me' });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.json()).toEqual({
      id: expect.any(Number),
      username: ctx.config.ADMIN_USERNAME,
      role: 'admin',
      created_at: expect.stringMatching(ISO_UTC),
    });
  });

  it.each(['maintainer', 'viewer'] as const)('shows a %s themself, as GET /users/:id does', async (role) => {
    const { id, username, token } = users[role];
    const response = await injectAs(ctx.app, token, { url: '/me' });
    expect(response.statusCode, response.body).toBe(200);
    const body = response.json();
    expect(body).toEqual({ id, username, role, created_at: expect.stringMatching(ISO_UTC) });
    const asAdmin = await injectAs(ctx.app, ctx.adminToken, { url: `/users/${id}` });
    expect(asAdmin.json()).toEqual(body);
  });

  it('is not cached', async () => {
    const response = await injectAs(ctx.app, users.viewer.token, { url: '/me' });
    expect(response.headers['cache-control']).toMatch(/no-store/);
  });

  it('never carries password material', async () => {
    for (const token of [ctx.adminToken, users.maintainer.token, users.viewer.token]) {
      const response = await injectAs(ctx.app, token, { url: '/me' });
      expect(Object.keys(response.json()).sort()).toEqual(['created_at', 'id', 'role', 'username']);
      expect(response.body).not.toContain('$argon2');
    }
  });

  it('follows a role change at once, with the same token', async () => {
    const patch = await injectAs(ctx.app, ctx.adminToken, { method: 'PATCH', url: `/users/${users.viewer.id}`, payload: { role: 'maintainer' } });
    expect(patch.statusCode).toBe(200);
    expect((await injectAs(ctx.app, users.viewer.token, { url: '/me' })).json()).toMatchObject({ role: 'maintainer' });
    await injectAs(ctx.app, ctx.adminToken, { method: 'PATCH', url: `/users/${users.viewer.id}`, payload: { role: 'viewer' } });
    expect((await injectAs(ctx.app, users.viewer.token, { url: '/me' })).json()).toMatchObject({ role: 'viewer' });
  });

  it('answers 401 unauthorized without a token or with a bad one', async () => {
    for (const headers of [{}, { authorization: 'Bearer nonsense' }, { authorization: `Basic ${Buffer.from('admin:admin123').toString('base64')}` }]) {
      const response = await ctx.app.inject({ url: '/me', headers });
      expect(response.statusCode).toBe(401);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(problemOf(response)).toMatchObject({ status: 401, error: 'unauthorized', instance: '/me' });
    }
  });

  it('is read-only: no other method changes the caller', async () => {
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'] as const) {
      const response = await injectAs(ctx.app, users.viewer.token, { method, url: '/me', payload: { role: 'admin', username: 'root' } });
      // A known path with a method it does not serve: 405, and Allow says what it does serve.
      expect(response.statusCode, `${method} /me`).toBe(405);
      expect(response.headers.allow, `${method} /me`).toBe('GET, HEAD, OPTIONS');
    }
    expect((await injectAs(ctx.app, users.viewer.token, { url: '/me' })).json()).toMatchObject({ role: 'viewer', username: users.viewer.username });
  });
});
