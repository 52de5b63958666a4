import argon2 from 'argon2';
import type { LightMyRequestResponse } from 'fastify';
import { describe, expect, it } from 'vitest';
import { problemOf, testDb, useTestApp } from '../helper.js';

/** Decodes one base64url segment of a JWT as JSON. */
function decodeSegment(segment: string | undefined): Record<string, unknown> {
  if (segment === undefined) throw new Error('missing JWT segment');
  return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as Record<string, unknown>;
}

function decodeJwt(token: string) {
  const parts = token.split('.');
  expect(parts).toHaveLength(3);
  return { header: decodeSegment(parts[0]), payload: decodeSegment(parts[1]), signature: parts[2] ?? '' };
}

/** Parses a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), whatever the parameter order. */
function parseArgon2(hash: string | undefined) {
  const match = /^\$(argon2(?:id|i|d))\$v=(\d+)\$([a-z]=\d+(?:,[a-z]=\d+)*)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(hash ?? '');
  if (!match) throw new Error(`not an argon2 PHC string: ${hash}`);
  const params = Object.fromEntries(
    (match[3] ?? '').split(',').map((pair) => {
      const [key = '', value = ''] = pair.split('=');
      return [key, Number(value)];
    }),
  );
  return { variant: match[1], version: Number(match[2]), params, salt: match[4] ?? '' };
}

function expectOwaspArgon2id(hash: string | undefined) {
  const parsed = parseArgon2(hash);
  expect(parsed.variant).toBe('argon2id');
  expect(parsed.version).toBe(19);
  expect(parsed.params).toEqual({ m: 7168, t: 5, p: 1 });
  expect(Buffer.from(parsed.salt, 'base64').length).toBeGreaterThanOrEqual(16);
}

function expectProblem(response: LightMyRequestResponse, status: number, error: string) {
  expect(response.statusCode).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = problemOf(response);
  expect(body).toMatchObject({ status, error, type: `urn:usine:problem:${error}` });
  expect(typeof body.title).toBe('string');
  expect(typeof body.detail).toBe('string');
  return body;
}

describe(`POST /login (${testDb})`, () => {
  const ctx = useTestApp();
  const post = (payload: unknown) => ctx.app.inject({ method: 'POST', url: '/login', payload: payload as object });

  it('answers 200 with a bearer token for admin/admin123', async () => {
    const response = await post({ username: 'admin', password: 'admin123' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    const body = response.json() as { access_token: unknown; token_type: unknown; expires_in: unknown; refresh_token: unknown };
    expect(body).toMatchObject({ token_type: 'bearer', expires_in: 1800, refresh_expires_in: 7 * 86_400 });
    expect(Object.keys(body).sort()).toEqual(['access_token', 'expires_in', 'refresh_expires_in', 'refresh_token', 'token_type']);
    expect(typeof body.access_token).toBe('string');
    expect(body.access_token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    // 32 random bytes, base64url: opaque, not a JWT.
    expect(body.refresh_token).toMatch(/^[\w-]{43}$/);
  });

  it('issues an HS256 JWT with sub, username, role, iss, aud and a 30-minute lifetime', async () => {
    const response = await post({ username: 'admin', password: 'admin123' });
    const { access_token } = response.json() as { access_token: string };
    const { header, payload, signature } = decodeJwt(access_token);
    expect(header.alg).toBe('HS256');
    expect(header.typ).toBe('JWT');
    expect(signature.length).toBeGreaterThan(0);

    const admin = await ctx.app.usersRepository.findByUsername('admin');
    expect(admin).toBeDefined();
    expect(payload.sub).toBe(String(admin?.id));
    expect(typeof payload.sub).toBe('string');
    expect(payload.username).toBe('admin');
    expect(payload.role).toBe('admin');
    expect(payload.typ).toBe('access');
    expect(payload.fid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(typeof payload.jti).toBe('string');
    expect(payload.iss).toBe('usine');
    expect(payload.aud).toBe('usine-api');
    expect(typeof payload.iat).toBe('number');
    expect(typeof payload.exp).toBe('number');
    expect((payload.exp as number) - (payload.iat as number)).toBe(1800);
    const now = Math.floor(Date.now() / 1000);
    expect(Math.abs((payload.iat as number) - now)).toBeLessThanOrEqual(5);
    // No secret material in the token.
    expect(JSON.stringify(payload)).not.toMatch(/admin123|password|argon2/);
  });

  it('the issued token opens an authenticated route', async () => {
    const response = await post({ username: 'admin', password: 'admin123' });
    const { access_token } = response.json() as { access_token: string };
    const list = await ctx.app.inject({ url: '/projects', headers: { authorization: `Bearer ${access_token}` } });
    expect(list.statusCode).toBe(200);
  });

  it('refuses a wrong password with 401 problem details', async () => {
    const response = await post({ username: 'admin', password: 'admin124' });
    const body = expectProblem(response, 401, 'unauthorized');
    expect(body.instance).toBe('/login');
    expect(response.body).not.toContain('access_token');
  });

  it('answers an unknown user exactly like a wrong password', async () => {
    const wrongPassword = await post({ username: 'admin', password: 'not-the-password' });
    const unknownUser = await post({ username: 'nobody-here', password: 'not-the-password' });
    expect(unknownUser.statusCode).toBe(wrongPassword.statusCode);
    expect(unknownUser.headers['content-type']).toBe(wrongPassword.headers['content-type']);
    const a = expectProblem(wrongPassword, 401, 'unauthorized');
    const b = expectProblem(unknownUser, 401, 'unauthorized');
    expect(b.error).toBe(a.error);
    expect(b.detail).toBe(a.detail);
    expect(b.title).toBe(a.title);
    expect(b.type).toBe(a.type);
    expect(b.detail).not.toMatch(/nobody-here|not found|unknown|exist/i);
    expect(a.detail).not.toMatch(/password is wrong|incorrect password/i);
  });

  it('is case-sensitive on the password', async () => {
    expectProblem(await post({ username: 'admin', password: 'ADMIN123' }), 401, 'unauthorized');
  });

  describe('validation', () => {
    const pathsOf = (response: LightMyRequestResponse) => {
      const body = expectProblem(response, 400, 'validation_error');
      expect(Array.isArray(body.errors)).toBe(true);
      for (const entry of body.errors ?? []) {
        expect(typeof entry.path).toBe('string');
        expect(typeof entry.message).toBe('string');
        expect(entry.message.length).toBeGreaterThan(0);
      }
      return (body.errors ?? []).map((e) => e.path);
    };

    it('reports a missing password', async () => {
      expect(pathsOf(await post({ username: 'admin' }))).toEqual(['/body/password']);
    });

    it('reports a missing username', async () => {
      expect(pathsOf(await post({ password: 'admin123' }))).toEqual(['/body/username']);
    });

    it('reports every missing field of an empty object', async () => {
      expect(pathsOf(await post({})).sort()).toEqual(['/body/password', '/body/username']);
    });

    it('refuses an extra field', async () => {
      const paths = pathsOf(await post({ username: 'admin', password: 'admin123', role: 'admin' }));
      expect(paths).toEqual(['/body/role']);
    });

    it('refuses wrong types without coercing them', async () => {
      const paths = pathsOf(await post({ username: 123, password: ['admin123'] }));
      expect(paths.sort()).toEqual(['/body/password', '/body/username']);
    });

    it('refuses an empty username', async () => {
      expect(pathsOf(await post({ username: '', password: 'admin123' }))).toEqual(['/body/username']);
    });

    it('refuses a JSON body that is not an object', async () => {
      const response = await ctx.app.inject({
        method: 'POST',
        url: '/login',
        headers: { 'content-type': 'application/json' },
        payload: '"admin"',
      });
      expectProblem(response, 400, 'validation_error');
    });

    it('refuses malformed JSON', async () => {
      const response = await ctx.app.inject({
        method: 'POST',
        url: '/login',
        headers: { 'content-type': 'application/json' },
        payload: '{"username": "admin", ',
      });
      expectProblem(response, 400, 'validation_error');
    });

    it('never echoes the password back in a validation error', async () => {
      const response = await post({ username: 'admin', password: 'admin123', extra: 'x' });
      expect(response.statusCode).toBe(400);
      expect(response.body).not.toContain('admin123');
    });
  });

  it('stores the admin password as an argon2id hash with m=7168, t=5, p=1 (an OWASP setting)', async () => {
    const admin = await ctx.app.usersRepository.findByUsername('admin');
    expect(admin).toBeDefined();
    expect(admin?.role).toBe('admin');
    expectOwaspArgon2id(admin?.password_hash);
    expect(admin?.password_hash).not.toContain('admin123');
  });

  it('still logs in a user whose hash was stored with earlier parameters (19 MiB, 2 iterations)', async () => {
    const earlier = await argon2.hash('earlier-password', { type: argon2.argon2id, memoryCost: 19 * 1024, timeCost: 2, parallelism: 1 });
    await ctx.app.usersRepository.create({ username: 'earlier', password_hash: earlier, role: 'viewer' });
    const response = await post({ username: 'earlier', password: 'earlier-password' });
    expect(response.statusCode).toBe(200);
    expect(typeof response.json().access_token).toBe('string');
    expectProblem(await post({ username: 'earlier', password: 'not-the-password' }), 401, 'unauthorized');
  });

  it('never puts the password or its hash in a response', async () => {
    const admin = await ctx.app.usersRepository.findByUsername('admin');
    const hash = admin?.password_hash ?? '';
    expect(hash).not.toBe('');
    const responses = await Promise.all([
      post({ username: 'admin', password: 'admin123' }),
      post({ username: 'admin', password: 'wrong' }),
      post({ username: 'ghost', password: 'admin123' }),
    ]);
    for (const response of responses) {
      expect(response.body).not.toContain('admin123');
      expect(response.body).not.toContain(hash);
      expect(response.body).not.toContain('$argon2');
      expect(response.body).not.toMatch(/password_hash/);
    }
  });
});

describe(`POST /login with ADMIN_USERNAME / ADMIN_PASSWORD (${testDb})`, () => {
  const ctx = useTestApp({ ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 's3cret-pass' });
  const post = (payload: object) => ctx.app.inject({ method: 'POST', url: '/login', payload });

  it('seeds the configured admin instead of admin/admin123', async () => {
    const root = await ctx.app.usersRepository.findByUsername('root');
    expect(root).toMatchObject({ username: 'root', role: 'admin' });
    expectOwaspArgon2id(root?.password_hash);
    expect(await ctx.app.usersRepository.findByUsername('admin')).toBeUndefined();
  });

  it('logs the configured admin in', async () => {
    const response = await post({ username: 'root', password: 's3cret-pass' });
    expect(response.statusCode).toBe(200);
    const { payload } = decodeJwt((response.json() as { access_token: string }).access_token);
    expect(payload).toMatchObject({ username: 'root', role: 'admin' });
    expect(response.body).not.toContain('s3cret-pass');
  });

  it('refuses the default credentials', async () => {
    expectProblem(await post({ username: 'admin', password: 'admin123' }), 401, 'unauthorized');
    expectProblem(await post({ username: 'root', password: 'admin123' }), 401, 'unauthorized');
  });
});
