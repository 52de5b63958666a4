import { DrizzleQueryError } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scrub, scrubLogObject } from '../src/http/log-redaction.js';
import { createServer } from '../src/server.js';
import { createScratchDatabase, testConfig, testDb, type ScratchDatabase } from './helper.js';

const PASSWORD = 'Pw-3f9c1e-never-in-logs';
const WRONG_PASSWORD = 'Wrong-8b2d77-never-in-logs';
const FAKE_BEARER = 'eyJhbGciOiJIUzI1NiJ9.fake-7c4e1a-never-in-logs.sig';
const REFRESH_IN_BODY = 'rt-5d0b9e-never-in-logs';
const TOKEN_IN_URL = 'qs-1a6f3c-never-in-logs';
const PARAM_SECRET = 'param-9e8d7c-never-in-logs';
const COOKIE = 'session=ck-2b4c6d-never-in-logs';

interface LogLine {
  level: number;
  msg?: string;
  [key: string]: unknown;
}

describe(`logs keep secrets out (${testDb})`, () => {
  let app: FastifyInstance;
  let scratch: ScratchDatabase;
  const output: string[] = [];
  /** Secrets the server handed out (tokens), collected as the test goes. */
  const issued: string[] = [];
  const lines = () => output.join('').split('\n').filter(Boolean).map((line) => JSON.parse(line) as LogLine);

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    const config = testConfig(scratch.url, { LOG_LEVEL: 'trace', ADMIN_PASSWORD: PASSWORD });
    app = await createServer(config, { logStream: { write: (line: string) => void output.push(line) } });
    // Routes that log carelessly, as a future change might: redaction must still hold.
    app.post('/careless', async (request) => {
      request.log.info({ body: request.body, headers: request.headers }, 'careless: body and headers');
      request.log.info({ request: { body: request.body, headers: request.headers } }, 'careless: nested');
      request.log.warn({ error: Object.assign(new Error('refresh failed'), { refresh_token: REFRESH_IN_BODY }) }, 'careless: error');
      return { ok: true };
    });
    app.get('/failing-query', async () => {
      throw new DrizzleQueryError('update refresh_tokens set used_at = $1 where token_hash = $2', ['2026-01-01', PARAM_SECRET]);
    });
    app.get('/failing-with-token', async (request) => {
      throw Object.assign(new Error('could not refresh'), { refresh_token: REFRESH_IN_BODY, authorization: request.headers.authorization });
    });
    await app.ready();
  });

  afterAll(async () => {
    await app?.close();
    await scratch?.drop();
  });

  it('logs logins, bearer tokens, refresh bodies, URLs, careless routes and query errors without any secret', async () => {
    // A failed and a successful login.
    expect((await app.inject({ method: 'POST', url: '/login', payload: { username: 'admin', password: WRONG_PASSWORD } })).statusCode).toBe(401);
    const login = await app.inject({ method: 'POST', url: '/login', payload: { username: 'admin', password: PASSWORD } });
    expect(login.statusCode, login.body).toBe(200);
    const { access_token, refresh_token } = login.json<{ access_token: string; refresh_token: string }>();
    issued.push(access_token, refresh_token);

    // Malformed JSON holding a password (a parser error message could quote it).
    await app.inject({
      method: 'POST',
      url: '/login',
      headers: { 'content-type': 'application/json' },
      payload: `{"username":"admin","password":"${PASSWORD}"`,
    });
    // A body with an unknown field next to the password (a validation error could echo it).
    await app.inject({ method: 'POST', url: '/login', payload: { username: 'admin', password: PASSWORD, extra: PASSWORD } });

    // Bearer tokens, valid and forged, and a cookie.
    await app.inject({ url: '/projects', headers: { authorization: `Bearer ${access_token}`, cookie: COOKIE } });
    await app.inject({ url: '/projects', headers: { authorization: `Bearer ${FAKE_BEARER}` } });

    // Refresh-style bodies: a live token (rotated), the same token again (reuse), and an unknown one.
    const refreshed = await app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token } });
    if (refreshed.statusCode === 200) {
      const pair = refreshed.json<{ access_token: string; refresh_token: string }>();
      issued.push(pair.access_token, pair.refresh_token);
    }
    await app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token } });
    await app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: REFRESH_IN_BODY } });

    // Secrets in a URL's query string.
    await app.inject({ url: `/status?access_token=${TOKEN_IN_URL}&x=1` });
    await app.inject({ url: `/nowhere?token=${TOKEN_IN_URL}&password=${TOKEN_IN_URL}` });

    // Careless logging, a failed query with bound values, an error carrying a token.
    const careless = await app.inject({
      method: 'POST',
      url: '/careless',
      headers: { authorization: `Bearer ${FAKE_BEARER}`, cookie: COOKIE, 'x-api-key': TOKEN_IN_URL },
      payload: { username: 'admin', password: PASSWORD, refresh_token: REFRESH_IN_BODY, access_token: FAKE_BEARER },
    });
    expect(careless.statusCode).toBe(200);
    expect((await app.inject({ url: '/failing-query' })).statusCode).toBe(500);
    expect((await app.inject({ url: '/failing-with-token', headers: { authorization: `Bearer ${FAKE_BEARER}` } })).statusCode).toBe(500);

    const log = output.join('');
    for (const secret of [PASSWORD, WRONG_PASSWORD, FAKE_BEARER, REFRESH_IN_BODY, TOKEN_IN_URL, PARAM_SECRET, COOKIE, ...issued]) {
      expect(log, `a log line contains ${secret.slice(0, 12)}…`).not.toContain(secret);
    }
    // Not even a recognisable part of a JWT (its signature is the secret part, but its payload names the user).
    for (const token of issued.filter((t) => t.split('.').length === 3)) {
      expect(log).not.toContain(token.split('.')[2]);
    }

    // The capture is real: the requests were logged, with the secrets replaced.
    const all = lines();
    expect(all.some((line) => line.msg === 'incoming request')).toBe(true);
    expect(all.some((line) => line.msg === 'request completed')).toBe(true);
    const urls = all.flatMap((line) => ((line.req as { url?: string } | undefined)?.url ? [(line.req as { url: string }).url] : []));
    expect(urls).toContain('/status?access_token=[redacted]&x=1');
    expect(urls).toContain('/nowhere?token=[redacted]&password=[redacted]');

    const carelessLine = all.find((line) => line.msg === 'careless: body and headers') as
      | { body: Record<string, unknown>; headers: Record<string, unknown> }
      | undefined;
    expect(carelessLine?.body).toMatchObject({
      username: 'admin',
      password: '[redacted]',
      refresh_token: '[redacted]',
      access_token: '[redacted]',
    });
    expect(carelessLine?.headers).toMatchObject({ authorization: '[redacted]', cookie: '[redacted]', 'x-api-key': '[redacted]' });
    const nested = all.find((line) => line.msg === 'careless: nested') as { request: { body: unknown; headers: unknown } } | undefined;
    expect(nested?.request.body).toMatchObject({ username: 'admin', password: '[redacted]' });
    expect(nested?.request.headers).toMatchObject({ authorization: '[redacted]' });

    const errorLine = all.find((line) => line.msg === 'careless: error') as { error: Record<string, unknown> } | undefined;
    expect(errorLine?.error).toEqual({ refresh_token: '[redacted]' });

    const queryError = all.find((line) => (line.err as { type?: string } | undefined)?.type === 'DrizzleQueryError') as
      | { err: { message: string; stack: string; params: unknown } }
      | undefined;
    expect(queryError?.err.message).toContain('Failed query: update refresh_tokens');
    expect(queryError?.err.message).toContain('params: [redacted]');
    expect(queryError?.err.params).toBe('[redacted]');
  });

  it('leaves the logged objects themselves untouched', () => {
    const body = { username: 'admin', password: PASSWORD, nested: [{ token: FAKE_BEARER }] };
    const logged = { body };
    const scrubbed = scrubLogObject(logged) as { body: { password: string; nested: { token: string }[] } };
    expect(scrubbed.body.password).toBe('[redacted]');
    expect(scrubbed.body.nested[0]!.token).toBe('[redacted]');
    expect(body.password).toBe(PASSWORD);
    expect(body.nested[0]!.token).toBe(FAKE_BEARER);
    // Nothing to hide: the very same object comes back (no copy per log line).
    const clean = { res: { statusCode: 200 }, responseTime: 1.5, list: [1, 2, { a: 'b' }] };
    expect(scrubLogObject(clean)).toBe(clean);
  });
});

describe('scrub', () => {
  it('replaces secret keys at any depth, in arrays, whatever their case', () => {
    expect(
      scrub({ a: { b: { c: { Password: 'x', Authorization: 'y' } } }, list: [{ refresh_token: 'z' }], 'Set-Cookie': ['s=1'] }),
    ).toEqual({
      a: { b: { c: { Password: '[redacted]', Authorization: '[redacted]' } } },
      list: [{ refresh_token: '[redacted]' }],
      'Set-Cookie': '[redacted]',
    });
  });

  it('leaves class instances and primitives alone', () => {
    const date = new Date(0);
    expect(scrub(date)).toBe(date);
    expect(scrub('password')).toBe('password');
    expect(scrub(null)).toBe(null);
  });
});
