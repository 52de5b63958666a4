import { createHmac, randomUUID } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { TEST_JWT_SECRET } from '../../src/config.js';
import { login, problemOf, testDb, useTestApp } from '../helper.js';

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Builds a JWT by hand: any header, any claims, HMAC with the given hash (or no signature at all). */
function craftToken(
  claims: Record<string, unknown>,
  secret: string,
  { alg = 'HS256', header }: { alg?: 'HS256' | 'HS384' | 'HS512' | 'none'; header?: Record<string, unknown> } = {},
): string {
  const signingInput = `${b64url(header ?? { alg, typ: 'JWT' })}.${b64url(claims)}`;
  if (alg === 'none') return `${signingInput}.`;
  const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  return `${signingInput}.${createHmac(hash, secret).update(signingInput).digest('base64url')}`;
}

/** The payload of a JWT, unverified. */
const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;

describe(`authenticate (GET /projects, ${testDb})`, () => {
  const ctx = useTestApp();

  const now = () => Math.floor(Date.now() / 1000);
  /** Valid claims for the seeded admin, as the server itself would issue them. */
  const claims = (overrides: Record<string, unknown> = {}) => ({
    sub: '1',
    username: 'admin',
    role: 'admin',
    typ: 'access',
    // The seeded admin's live session (the one useTestApp logged in): a signed token needs a real session too.
    fid: claimsOf(ctx.adminToken).fid,
    iat: now() - 10,
    exp: now() + 600,
    iss: ctx.config.JWT_ISSUER,
    aud: ctx.config.JWT_AUDIENCE,
    ...overrides,
  });

  const get = (authorization?: string) =>
    ctx.app.inject({ url: '/projects', headers: authorization === undefined ? {} : { authorization } });

  function expectUnauthorized(response: LightMyRequestResponse) {
    expect(response.statusCode).toBe(401);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    const body = problemOf(response);
    expect(body).toMatchObject({ status: 401, error: 'unauthorized', type: 'urn:usine:problem:unauthorized', instance: '/projects' });
    expect(typeof body.detail).toBe('string');
    expect(response.body).not.toContain('"items"');
    return body;
  }

  it('the config issuer and audience are the documented ones, and NODE_ENV=test signs with the fixed test key', () => {
    expect(ctx.config.JWT_ISSUER).toBe('usine');
    expect(ctx.config.JWT_AUDIENCE).toBe('usine-api');
    expect(ctx.config.JWT_SECRET).toBe(TEST_JWT_SECRET);
  });

  it('accepts a token issued by POST /login', async () => {
    const response = await get(`Bearer ${ctx.adminToken}`);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ items: [], page: 1 });
  });

  it('accepts a hand-crafted HS256 token with the right secret, iss and aud (the crafting helper is sound)', async () => {
    const response = await get(`Bearer ${craftToken(claims(), TEST_JWT_SECRET)}`);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ items: [], page: 1 });
  });

  it('refuses a request without Authorization', async () => {
    expectUnauthorized(await get());
  });

  it('refuses an empty Authorization header', async () => {
    expectUnauthorized(await get(''));
  });

  it('refuses Bearer garbage', async () => {
    expectUnauthorized(await get('Bearer garbage'));
  });

  it('refuses Bearer with nothing after it', async () => {
    expectUnauthorized(await get('Bearer '));
  });

  it('accepts the scheme in any case (RFC 7235), and refuses a token after two spaces or with a tail', async () => {
    expect((await get(`bearer ${ctx.adminToken}`)).statusCode).toBe(200);
    expect((await get(`BEARER ${ctx.adminToken}`)).statusCode).toBe(200);
    expectUnauthorized(await get(`Bearer  ${ctx.adminToken}`));
    expectUnauthorized(await get(`Bearer ${ctx.adminToken} extra`));
    expectUnauthorized(await get(`Bearer\t${ctx.adminToken}`));
  });

  it('refuses a valid token under another scheme', async () => {
    expectUnauthorized(await get(`Basic ${ctx.adminToken}`));
  });

  it('refuses a correctly signed token that is not an access token (typ missing or other)', async () => {
    const { typ: _typ, ...withoutTyp } = claims();
    expectUnauthorized(await get(`Bearer ${craftToken(withoutTyp, TEST_JWT_SECRET)}`));
    expectUnauthorized(await get(`Bearer ${craftToken(claims({ typ: 'refresh' }), TEST_JWT_SECRET)}`));
  });

  it('refuses a correctly signed access token without a session (fid missing, empty or not a string)', async () => {
    const { fid: _fid, ...withoutFid } = claims();
    expectUnauthorized(await get(`Bearer ${craftToken(withoutFid, TEST_JWT_SECRET)}`));
    expectUnauthorized(await get(`Bearer ${craftToken(claims({ fid: '' }), TEST_JWT_SECRET)}`));
    expectUnauthorized(await get(`Bearer ${craftToken(claims({ fid: 42 }), TEST_JWT_SECRET)}`));
  });

  it('refuses a token signed with the server\'s secret but an invented session (fid)', async () => {
    expectUnauthorized(await get(`Bearer ${craftToken(claims({ fid: randomUUID() }), TEST_JWT_SECRET)}`));
  });

  it("refuses a token that names another user's session", async () => {
    const created = await ctx.app.inject({
      method: 'POST',
      url: '/users',
      headers: { authorization: `Bearer ${ctx.adminToken}` },
      payload: { username: 'session-owner', password: 'session-owner-password', role: 'viewer' },
    });
    expect(created.statusCode, created.body).toBe(201);
    const theirs = await login(ctx.app, 'session-owner', 'session-owner-password');
    expect((await get(`Bearer ${theirs}`)).statusCode).toBe(200);
    // Signed for the admin, in the viewer's session: the session is live, but not the admin's.
    expectUnauthorized(await get(`Bearer ${craftToken(claims({ fid: claimsOf(theirs).fid }), TEST_JWT_SECRET)}`));
  });

  it('refuses a token of a session whose refresh tokens have all expired', async () => {
    const token = await login(ctx.app);
    expect((await get(`Bearer ${token}`)).statusCode).toBe(200);
    const { refresh_tokens: tokens } = ctx.app.database.tables;
    await ctx.app.database.db
      .update(tokens)
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where(eq(tokens.family_id, String(claimsOf(token).fid)));
    // Expiry is the clock, not a write: nothing tells the cache, which may trust its answer for AUTH_CACHE_TTL_MS.
    ctx.app.callerCache.invalidate();
    expectUnauthorized(await get(`Bearer ${token}`));
  });

  it('refuses a crafted token of a real session once that session logged out', async () => {
    const token = await login(ctx.app);
    const crafted = craftToken(claims({ fid: claimsOf(token).fid }), TEST_JWT_SECRET);
    expect((await get(`Bearer ${crafted}`)).statusCode).toBe(200);
    const logout = await ctx.app.inject({ method: 'POST', url: '/logout', headers: { authorization: `Bearer ${token}` } });
    expect(logout.statusCode).toBe(204);
    expectUnauthorized(await get(`Bearer ${crafted}`));
    expectUnauthorized(await get(`Bearer ${token}`));
  });

  it('refuses a correctly signed token whose user does not exist', async () => {
    expectUnauthorized(await get(`Bearer ${craftToken(claims({ sub: '999999' }), TEST_JWT_SECRET)}`));
    expectUnauthorized(await get(`Bearer ${craftToken(claims({ sub: 'admin' }), TEST_JWT_SECRET)}`));
  });

  it('refuses a token with a tampered payload (role changed, signature kept)', async () => {
    const viewer = craftToken(claims({ role: 'viewer' }), TEST_JWT_SECRET);
    expect((await get(`Bearer ${viewer}`)).statusCode).toBe(200);
    const [header, payload, signature] = viewer.split('.');
    const decoded = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString()) as Record<string, unknown>;
    expect(decoded.role).toBe('viewer');
    const tampered = `${header}.${b64url({ ...decoded, role: 'admin' })}.${signature}`;
    expect(tampered).not.toBe(viewer);
    expectUnauthorized(await get(`Bearer ${tampered}`));
  });

  it('refuses a server-issued token whose payload was edited', async () => {
    const [header, payload, signature] = ctx.adminToken.split('.');
    const decoded = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString()) as Record<string, unknown>;
    const tampered = `${header}.${b64url({ ...decoded, exp: (decoded.exp as number) + 86_400 })}.${signature}`;
    expectUnauthorized(await get(`Bearer ${tampered}`));
  });

  it('refuses a token signed with a different secret', async () => {
    const other = 'another-secret-another-secret-another-secret';
    expect(other).not.toBe(TEST_JWT_SECRET);
    expectUnauthorized(await get(`Bearer ${craftToken(claims(), other)}`));
  });

  it('refuses an alg:none token with valid claims and an empty signature', async () => {
    const token = craftToken(claims(), TEST_JWT_SECRET, { alg: 'none' });
    expect(token.endsWith('.')).toBe(true);
    expectUnauthorized(await get(`Bearer ${token}`));
  });

  it('refuses an alg:none token that still carries a valid HS256 signature', async () => {
    const good = craftToken(claims(), TEST_JWT_SECRET);
    const signature = good.split('.')[2];
    const [, payload] = good.split('.');
    const token = `${b64url({ alg: 'none', typ: 'JWT' })}.${payload}.${signature}`;
    expectUnauthorized(await get(`Bearer ${token}`));
  });

  it('refuses an expired token', async () => {
    const token = craftToken(claims({ iat: now() - 3600, exp: now() - 60 }), TEST_JWT_SECRET);
    expectUnauthorized(await get(`Bearer ${token}`));
  });

  it('refuses a token without exp', async () => {
    const { exp: _exp, ...withoutExp } = claims();
    expectUnauthorized(await get(`Bearer ${craftToken(withoutExp, TEST_JWT_SECRET)}`));
  });

  it('refuses a token without sub', async () => {
    const { sub: _sub, ...withoutSub } = claims();
    expectUnauthorized(await get(`Bearer ${craftToken(withoutSub, TEST_JWT_SECRET)}`));
  });

  it('refuses a token from another issuer', async () => {
    expectUnauthorized(await get(`Bearer ${craftToken(claims({ iss: 'someone-else' }), TEST_JWT_SECRET)}`));
  });

  it('refuses a token without iss', async () => {
    const { iss: _iss, ...withoutIss } = claims();
    expectUnauthorized(await get(`Bearer ${craftToken(withoutIss, TEST_JWT_SECRET)}`));
  });

  it('refuses a token for another audience', async () => {
    expectUnauthorized(await get(`Bearer ${craftToken(claims({ aud: 'another-api' }), TEST_JWT_SECRET)}`));
  });

  it('refuses a token without aud', async () => {
    const { aud: _aud, ...withoutAud } = claims();
    expectUnauthorized(await get(`Bearer ${craftToken(withoutAud, TEST_JWT_SECRET)}`));
  });

  it('refuses an HS512 token signed with the right secret (algorithm pinned to HS256)', async () => {
    expectUnauthorized(await get(`Bearer ${craftToken(claims(), TEST_JWT_SECRET, { alg: 'HS512' })}`));
  });

  it('refuses an HS384 token signed with the right secret', async () => {
    expectUnauthorized(await get(`Bearer ${craftToken(claims(), TEST_JWT_SECRET, { alg: 'HS384' })}`));
  });

  it('refuses a token whose header claims HS512 over an HS256 signature', async () => {
    const token = craftToken(claims(), TEST_JWT_SECRET, { header: { alg: 'HS512', typ: 'JWT' } });
    expectUnauthorized(await get(`Bearer ${token}`));
  });

  it('does not leak the secret in the 401 detail', async () => {
    const body = expectUnauthorized(await get(`Bearer ${craftToken(claims(), 'wrong-secret')}`));
    expect(JSON.stringify(body)).not.toContain(TEST_JWT_SECRET);
  });
});
