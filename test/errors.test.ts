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

  it('answers a path segment over 200 characters with a 414 uri_too_long problem', async () => {
    const response = await injectAs(ctx.app, ctx.adminToken, { url: `/builds/1/artifacts/${'a'.repeat(201)}` });
    expectProblem(response, 414, 'uri_too_long');
    expect(problemOf(response).detail).toContain('200 characters');
  });

  it('answers a wrong method on a known path with 405 and the methods that exist in Allow', async () => {
    const response = await ctx.app.inject({ method: 'DELETE', url: '/status' });
    expectProblem(response, 405, 'method_not_allowed');
    expect(response.headers.allow).toBe('GET, HEAD, OPTIONS');
    expect(problemOf(response).instance).toBe('/status');

    const project = await injectAs(ctx.app, ctx.adminToken, { method: 'PUT', url: '/projects/1?x=1', payload: {} });
    expectProblem(project, 405, 'method_not_allowed');
    expect(project.headers.allow).toBe('GET, HEAD, PATCH, DELETE, OPTIONS');

    const trigger = await ctx.app.inject({ method: 'GET', url: '/projects/1/build' });
    expectProblem(trigger, 405, 'method_not_allowed');
    expect(trigger.headers.allow).toBe('POST, OPTIONS');
  });

  it('still answers 404, without Allow, on a path no method has', async () => {
    for (const method of ['GET', 'DELETE', 'OPTIONS'] as const) {
      const response = await ctx.app.inject({ method, url: '/no/such/path' });
      expectProblem(response, 404, 'not_found');
      expect(response.headers.allow).toBeUndefined();
    }
  });

  it('answers HEAD where GET exists, and OPTIONS on a known path with 204 and Allow', async () => {
    const head = await ctx.app.inject({ method: 'HEAD', url: '/status' });
    expect(head.statusCode).toBe(200);
    const options = await ctx.app.inject({ method: 'OPTIONS', url: '/projects' });
    expect(options.statusCode).toBe(204);
    expect(options.headers.allow).toBe('GET, HEAD, POST, OPTIONS');
    expect(options.body).toBe('');
  });

  it('sends WWW-Authenticate: Bearer with every 401, with error="invalid_token" when a token was refused', async () => {
    const missing = await ctx.app.inject({ url: '/projects' });
    expectProblem(missing, 401, 'unauthorized');
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="usine"');

    const forged = await ctx.app.inject({ url: '/projects', headers: bearer('not.a.token') });
    expectProblem(forged, 401, 'unauthorized');
    expect(forged.headers['www-authenticate']).toBe('Bearer realm="usine", error="invalid_token"');

    const otherScheme = await ctx.app.inject({ url: '/me', headers: { authorization: 'Basic YWRtaW46YWRtaW4xMjM=' } });
    expectProblem(otherScheme, 401, 'unauthorized');
    expect(otherScheme.headers['www-authenticate']).toBe('Bearer realm="usine"');

    // A failed login: no bearer token was refused, but a 401 still names the scheme the API uses (RFC 9110 §15.5.2).
    const badLogin = await ctx.app.inject({ method: 'POST', url: '/login', payload: { username: 'admin', password: 'wrong-password' } });
    expectProblem(badLogin, 401, 'unauthorized');
    expect(badLogin.headers['www-authenticate']).toBe('Bearer realm="usine"');

    const ok = await injectAs(ctx.app, ctx.adminToken, { url: '/me' });
    expect(ok.statusCode).toBe(200);
    expect(ok.headers['www-authenticate']).toBeUndefined();
  });

  it('refuses a body with a __proto__ key, saying so', async () => {
    const response = await ctx.app.inject({
      method: 'POST',
      url: '/login',
      headers: { 'content-type': 'application/json' },
      payload: '{"username":"admin","password":"admin123","__proto__":{"role":"admin"}}',
    });
    expectProblem(response, 400, 'validation_error');
    const body = problemOf(response);
    expect(body.detail).toContain('__proto__');
    expect(body.detail).not.toContain('not valid JSON');
    expect(body.errors?.map((error) => error.path)).toEqual(['/body/__proto__']);
  });

  it('refuses a nested constructor.prototype too, naming where it is', async () => {
    const response = await injectAs(ctx.app, ctx.adminToken, {
      method: 'POST',
      url: '/projects',
      headers: { 'content-type': 'application/json' },
      payload: '{"name":"x","repo":"https://github.com/demo/repo","meta":{"a/b":{"constructor":{"prototype":{"admin":true}}}}}',
    });
    expectProblem(response, 400, 'validation_error');
    expect(problemOf(response).errors?.map((error) => error.path)).toEqual(['/body/meta/a~1b/constructor/prototype']);
  });

  it('still calls broken JSON broken JSON, and accepts __proto__ as a value', async () => {
    const broken = await ctx.app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/json' }, payload: '{"__proto__":' });
    expectProblem(broken, 400, 'validation_error');
    expect(problemOf(broken).detail).toBe('The body is not valid JSON');

    const asValue = await ctx.app.inject({ method: 'POST', url: '/login', payload: { username: '__proto__', password: 'constructor' } });
    expectProblem(asValue, 401, 'unauthorized');
  });

  it('takes an empty application/json body as no body where the body is optional (Swagger UI on a build trigger)', async () => {
    const project = await injectAs(ctx.app, ctx.adminToken, {
      method: 'POST',
      url: '/projects',
      payload: { name: uniqueName('EmptyBody'), repo: 'https://github.com/demo/repo' },
    });
    expect(project.statusCode, project.body).toBe(201);
    const { id } = project.json<{ id: number }>();
    for (const url of [`/projects/${id}/build`, `/projects/${id}/builds`]) {
      const trigger = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: '' });
      expect(trigger.statusCode, trigger.body).toBe(201);
      expect(trigger.json<{ branch: string }>().branch).toBe('main');
    }
    const build = (await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/projects/${id}/build` })).json<{ id: number }>();
    const cancel = await injectAs(ctx.app, ctx.adminToken, {
      method: 'POST',
      url: `/builds/${build.id}/cancel`,
      headers: { 'content-type': 'application/json' },
      payload: '',
    });
    // Builds run instantly here: the build may be over already, a conflict, but never a refused body.
    if (cancel.statusCode !== 200) expectProblem(cancel, 409, 'conflict');
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

  it('answers an empty body sent as application/json with 400 where a body is required', async () => {
    const response = await ctx.app.inject({
      method: 'POST',
      url: '/login',
      headers: { 'content-type': 'application/json' },
      payload: '',
    });
    expectProblem(response, 400, 'validation_error');
    expect(problemOf(response).detail).toContain('empty');
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

describe(`errors: 405 beside CORS (${testDb})`, () => {
  const ctx = useTestApp({ CORS_ORIGINS: 'https://app.example' });

  it('keeps preflights working, and the wildcard OPTIONS route does not make unknown paths 405', async () => {
    const preflight = await ctx.app.inject({
      method: 'OPTIONS',
      url: '/projects/1',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'PATCH' },
    });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('https://app.example');

    const unknown = await ctx.app.inject({ method: 'POST', url: '/no/such/path', headers: { origin: 'https://app.example' } });
    expectProblem(unknown, 404, 'not_found');
    const wrong = await ctx.app.inject({ method: 'POST', url: '/status', headers: { origin: 'https://app.example' } });
    expectProblem(wrong, 405, 'method_not_allowed');
    expect(wrong.headers.allow).toBe('GET, HEAD, OPTIONS');
    expect(wrong.headers['access-control-allow-origin']).toBe('https://app.example');
  });
});
