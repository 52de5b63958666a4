import { describe, expect, it } from 'vitest';
import { bearer, testDb, useTestApp } from './helper.js';

describe(`smoke (${testDb})`, () => {
  const ctx = useTestApp();
  it('serves /status and an authenticated list', async () => {
    const status = await ctx.app.inject({ url: '/status' });
    expect(status.json()).toMatchObject({ status: 'ok', db: 'ok', db_dialect: testDb });
    const list = await ctx.app.inject({ url: '/projects', headers: bearer(ctx.adminToken) });
    expect(list.statusCode).toBe(200);
  });
});
