import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from '../src/server.js';
import {
  bearer,
  createScratchDatabase,
  injectAs,
  problemOf,
  testConfig,
  testDb,
  uniqueName,
  useTestApp,
  type ScratchDatabase,
} from './helper.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Every problem response: the RFC 9457 media type and members, consistent with the status line. */
function expectProblem(response: LightMyRequestResponse, status: number, error: string): void {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json(?:;|$)/);
  const body = problemOf(response);
  expect(body.status).toBe(status);
  expect(body.error).toBe(error);
  expect(body.type).toEqual(expect.any(String));
  expect(body.type.length).toBeGreaterThan(0);
  expect(body.title).toEqual(expect.any(String));
  expect(body.title.length).toBeGreaterThan(0);
  expect(body.detail).toEqual(expect.any(String));
  expect(body.detail.length).toBeGreaterThan(0);
}

const longBody = (bytes: number) => JSON.stringify({ username: 'admin', password: 'p'.repeat(bytes) });

describe(`errors (${testDb})`, () => {
  const ctx = useTestApp();

  it('answers an unknown route with a full 404 problem', async () => {
    const response = await ctx.app.inject({ method: 'GET', url: '/no/such/route?x=1' });
    expectProblem(response, 404, 'not_found');
    const body = problemOf(response);
    expect(body.instance).toBe('/no/such/route');
    expect(body.detail).toContain('/no/such/route');
    expect(Object.keys(body).sort()).toEqual(['detail', 'error', 'instance', 'status', 'title', 'type']);
  });

  it('answers a malformed percent-encoding in the path with a 400 problem, request id included', async () => {
    const response = await injectAs(ctx.app, ctx.adminToken, { url: '/projects/%E0%A4%A', headers: { 'x-request-id': 'bad-url-1' } });
    expectProblem(response, 400, 'validation_error');
    expect(problemOf(response).detail).toContain('percent-encoding');
    expect(response.headers['x-request-id']).toBe('bad-url-1');
  });

  it('answers a path segment over 200 characters with a 414 problem', async () => {
    const response = await injectAs(ctx.app, ctx.adminToken, { url: `/builds/1/artifacts/${'a'.repeat(201)}` });
    expectProblem(response, 414, 'validation_error');
    expect(problemOf(response).detail).toContain('200 characters');
  });

  it('answers an unknown method on a known path with a 404 problem too', async () => {
    expectProblem(await ctx.app.inject({ method: 'DELETE', url: '/status' }), 404, 'not_found');
  });

  it('answers broken JSON with 400 validation_error', async () => {
    const response = await ctx.app.inject({
      method: 'POST',
      url: '/login',
      headers: { 'content-type': 'application/json' },
      payload: '{"username":',
    });
    expectProblem(response, 400, 'validation_error');
    expect(problemOf(response).instance).toBe('/login');
  });

  it('answers a text/plain body with 415 unsupported_media_type', async () => {
    const response = await injectAs(ctx.app, ctx.adminToken, {
      method: 'POST',
      url: '/projects',
      headers: { 'content-type': 'text/plain' },
      payload: JSON.stringify({ name: uniqueName('Plain'), repo: 'https://github.com/demo/repo' }),
    });
    expectProblem(response, 415, 'unsupported_media_type');
  });

  it.each(['application/x-www-form-urlencoded', 'application/xml', 'multipart/form-data; boundary=x'])(
    'answers a %s body with 415',
    async (type) => {
      const response = await ctx.app.inject({ method: 'POST', url: '/login', headers: { 'content-type': type }, payload: 'username=admin' });
      expectProblem(response, 415, 'unsupported_media_type');
    },
  );

  it('answers an empty body sent as application/json with 400', async () => {
    const response = await ctx.app.inject({
      method: 'POST',
      url: '/login',
      headers: { 'content-type': 'application/json' },
      payload: '',
    });
    expectProblem(response, 400, 'validation_error');
  });

  it('answers a missing body on POST /login with 400', async () => {
    expectProblem(await ctx.app.inject({ method: 'POST', url: '/login' }), 400, 'validation_error');
  });

  it('lists every failing field of a body', async () => {
    const response = await injectAs(ctx.app, ctx.adminToken, {
      method: 'POST',
      url: '/projects',
      payload: { name: '', repo: 'ftp://x/y' },
    });
    expectProblem(response, 400, 'validation_error');
    const errors = problemOf(response).errors ?? [];
    expect(new Set(errors.map((e) => e.path))).toEqual(new Set(['/body/name', '/body/repo']));
    for (const error of errors) expect(error.message.length).toBeGreaterThan(0);
  });

  it('lists missing fields and unknown fields alike', async () => {
    const response = await ctx.app.inject({ method: 'POST', url: '/login', payload: { user: 'admin' } });
    expectProblem(response, 400, 'validation_error');
    const paths = (problemOf(response).errors ?? []).map((e) => e.path).sort();
    expect(paths).toEqual(['/body/password', '/body/user', '/body/username']);
  });

  it('accepts a Content-Type with different case and parameters', async () => {
    const login = await ctx.app.inject({
      method: 'POST',
      url: '/login',
      headers: { 'content-type': 'Application/JSON; charset=utf-8' },
      payload: JSON.stringify({ username: ctx.config.ADMIN_USERNAME, password: ctx.config.ADMIN_PASSWORD }),
    });
    expect(login.statusCode, login.body).toBe(200);
    expect(login.json<{ token_type: string }>().token_type).toBe('bearer');

    const name = uniqueName('CaseType');
    const created = await ctx.app.inject({
      method: 'POST',
      url: '/projects',
      headers: { ...bearer(ctx.adminToken), 'content-type': 'APPLICATION/json;charset=UTF-8' },
      payload: JSON.stringify({ name, repo: 'https://github.com/demo/repo' }),
    });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json<{ name: string }>().name).toBe(name);
  });

  it('serves every kind of problem as application/problem+json', async () => {
    const responses = await Promise.all([
      ctx.app.inject({ url: '/nowhere' }),
      ctx.app.inject({ url: '/projects' }),
      injectAs(ctx.app, ctx.adminToken, { url: '/projects/999999' }),
      injectAs(ctx.app, ctx.adminToken, { url: '/projects/abc' }),
      injectAs(ctx.app, ctx.adminToken, { url: '/projects', query: { per_page: '1000' } }),
      ctx.app.inject({ method: 'POST', url: '/login', payload: { username: 'admin', password: 'wrong-password' } }),
      ctx.app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'text/plain' }, payload: 'x' }),
      ctx.app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/json' }, payload: '[' }),
    ]);
    expect(responses.map((r) => r.statusCode)).toEqual([404, 401, 404, 400, 400, 401, 415, 400]);
    for (const response of responses) {
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      const body = problemOf(response);
      expect(body.status).toBe(response.statusCode);
      expect(body.type).toBe(`urn:usine:problem:${body.error}`);
    }
  });

  it('echoes a client x-request-id and generates one when absent', async () => {
    const sent = await ctx.app.inject({ url: '/status', headers: { 'x-request-id': 'client-req-42' } });
    expect(sent.headers['x-request-id']).toBe('client-req-42');

    const first = await ctx.app.inject({ url: '/status' });
    const second = await ctx.app.inject({ url: '/nowhere' });
    expect(first.headers['x-request-id']).toMatch(UUID);
    expect(second.headers['x-request-id']).toMatch(UUID);
    expect(first.headers['x-request-id']).not.toBe(second.headers['x-request-id']);
  });
});

describe(`errors: body limit (${testDb})`, () => {
  const ctx = useTestApp({ BODY_LIMIT: '2048' });

  it('answers a body over BODY_LIMIT with 413 payload_too_large', async () => {
    const payload = longBody(4096);
    expect(Buffer.byteLength(payload)).toBeGreaterThan(4096);
    const response = await ctx.app.inject({
      method: 'POST',
      url: '/login',
      headers: { 'content-type': 'application/json' },
      payload,
    });
    expectProblem(response, 413, 'payload_too_large');
  });

  it('also on an authenticated route', async () => {
    const response = await injectAs(ctx.app, ctx.adminToken, {
      method: 'POST',
      url: '/projects',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ name: uniqueName('Big'), repo: `https://github.com/${'a'.repeat(4000)}` }),
    });
    expectProblem(response, 413, 'payload_too_large');
  });

  it('still accepts a body under the limit', async () => {
    const payload = JSON.stringify({ username: ctx.config.ADMIN_USERNAME, password: ctx.config.ADMIN_PASSWORD });
    expect(Buffer.byteLength(payload)).toBeLessThan(2048);
    const response = await ctx.app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/json' }, payload });
    expect(response.statusCode).toBe(200);
  });
});

describe(`errors: unexpected failures (${testDb})`, () => {
  let app: FastifyInstance;
  let scratch: ScratchDatabase;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    app = await createServer(testConfig(scratch.url), { logger: false });
    app.get('/boom', async () => {
      throw new Error('secret SQL select * from users where password_hash = $1');
    });
    app.get('/boom-typed', async () => {
      const error = new Error('connection string postgres://usine:secret@db/usine') as Error & { statusCode: number };
      error.statusCode = 500;
      throw error;
    });
    app.get('/boom-object', async () => {
      throw Object.assign(new Error('select password_hash from users'), { code: 'SQLITE_ERROR', sql: 'select secret' });
    });
    await app.ready();
  });

  afterAll(async () => {
    await app?.close();
    await scratch?.drop();
  });

  it.each(['/boom', '/boom-typed', '/boom-object'])('turns an error thrown by %s into a bare 500 internal_error', async (url) => {
    const response = await app.inject({ url });
    expectProblem(response, 500, 'internal_error');
    const lower = response.body.toLowerCase();
    for (const leak of ['secret', 'select', 'password', 'stack', 'error:', '.ts:', 'node_modules']) {
      expect(lower, `body leaks ${leak}`).not.toContain(leak);
    }
    expect(Object.keys(response.json() as object).sort()).toEqual(['detail', 'error', 'instance', 'status', 'title', 'type']);
  });

  it('puts the request id in the detail of a 5xx', async () => {
    const response = await app.inject({ url: '/boom', headers: { 'x-request-id': 'trace-me-123' } });
    expect(response.statusCode).toBe(500);
    expect(response.headers['x-request-id']).toBe('trace-me-123');
    expect(problemOf(response).detail).toContain('trace-me-123');

    const generated = await app.inject({ url: '/boom' });
    const id = generated.headers['x-request-id'];
    expect(id).toMatch(UUID);
    expect(problemOf(generated).detail).toContain(String(id));
  });
});
