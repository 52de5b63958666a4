import { randomBytes, randomUUID } from 'node:crypto';
import { eq, inArray } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { PURGE_STATEMENTS_PER_RUN } from '../../plugins/app/refresh-token-purge.js';
import { createServer } from '../../src/server.js';
import { bearer, createScratchDatabase, testConfig, testDb, useTestApp } from '../helper.js';

const HOUR = 3_600_000;

interface Row {
  family: string;
  /** Hours from now (negative: already expired). */
  expiresInH: number;
  used?: boolean;
  revoked?: boolean;
}

/** Writes refresh-token rows of the seeded admin straight to the database; returns their ids in order. */
async function insertRows(app: FastifyInstance, rows: Row[]): Promise<number[]> {
  const admin = await app.usersRepository.findByUsername('admin');
  if (!admin) throw new Error('no admin');
  const { refresh_tokens } = app.database.tables;
  const now = Date.now();
  const inserted = await app.database.db
    .insert(refresh_tokens)
    .values(
      rows.map((row) => ({
        user_id: admin.id,
        family_id: row.family,
        token_hash: randomBytes(32).toString('hex'),
        expires_at: new Date(now + row.expiresInH * HOUR),
        used_at: row.used ? new Date(now - HOUR) : null,
        revoked_at: row.revoked ? new Date(now - HOUR) : null,
      })),
    )
    .returning({ id: refresh_tokens.id });
  return inserted.map((row) => row.id);
}

async function remaining(app: FastifyInstance, ids: number[]): Promise<number[]> {
  const { refresh_tokens } = app.database.tables;
  const rows = await app.database.db.select({ id: refresh_tokens.id }).from(refresh_tokens).where(inArray(refresh_tokens.id, ids));
  return rows.map((row) => row.id).sort((a, b) => a - b);
}

describe(`refresh-token purge: which rows go (${testDb})`, () => {
  // No timer: the test calls the purge itself.
  const ctx = useTestApp({ REFRESH_TOKEN_PURGE_INTERVAL_S: '0' });

  it('deletes expired rows (used, unused, revoked) and keeps unexpired ones and the revocation of a family still holding a live row', async () => {
    const [live, fresh, used, expired, usedExpired, revoked, revokedExpired, racedRevoked, racedLive] = Array.from({ length: 9 }, () => randomUUID());
    const ids = await insertRows(ctx.app, [
      { family: live!, expiresInH: 24 }, // 0 kept: a live session
      { family: fresh!, expiresInH: 1, used: true }, // 1 kept: used but unexpired (reuse detection needs it)
      { family: used!, expiresInH: -1, used: true }, // 2 purged: used and expired
      { family: expired!, expiresInH: -1 }, // 3 purged: expired, never used
      { family: usedExpired!, expiresInH: -2, used: true }, // 4 purged: an old rotation…
      { family: usedExpired!, expiresInH: 24 }, // 5 kept: …of a session still alive
      { family: revoked!, expiresInH: 24, used: true, revoked: true }, // 6 kept: revoked family, until it expires
      { family: revokedExpired!, expiresInH: -1, revoked: true }, // 7 purged: revoked and expired
      { family: racedRevoked!, expiresInH: -1, revoked: true }, // 8 kept: the only row saying this family is revoked…
      { family: racedRevoked!, expiresInH: 24 }, // 9 kept: …while a row added by a racing refresh lives
      { family: racedLive!, expiresInH: 24 }, // 10 kept
    ]);
    const kept = [0, 1, 5, 6, 8, 9, 10].map((index) => ids[index]!);

    expect(await ctx.app.refreshTokenPurge.run()).toBe(ids.length - kept.length);
    expect(await remaining(ctx.app, ids)).toEqual(kept.sort((a, b) => a - b));
    expect(await ctx.app.refreshTokenPurge.run()).toBe(0);

    // The family whose revocation was kept stays revoked for access tokens.
    const admin = await ctx.app.usersRepository.findByUsername('admin');
    expect(await ctx.app.refreshTokensRepository.findActiveCaller(admin!.id, racedRevoked!)).toBeUndefined();
    expect(await ctx.app.refreshTokensRepository.findActiveCaller(admin!.id, racedLive!)).toMatchObject({ username: 'admin' });
  });

  it('purges with a later clock what will have expired by then, sessions of the API included', async () => {
    const login = await ctx.app.inject({ method: 'POST', url: '/login', payload: { username: 'admin', password: 'admin123' } });
    const { access_token, refresh_token } = login.json<{ access_token: string; refresh_token: string }>();
    expect((await ctx.app.inject({ url: '/me', headers: bearer(access_token) })).statusCode).toBe(200);
    const hash = ctx.app.tokens.hashRefreshToken(refresh_token);
    const { refresh_tokens } = ctx.app.database.tables;
    const stored = () => ctx.app.database.db.select().from(refresh_tokens).where(eq(refresh_tokens.token_hash, hash));

    expect(await ctx.app.refreshTokenPurge.run(new Date())).toBe(0);
    expect(await stored()).toHaveLength(1);
    const later = new Date(Date.now() + ctx.config.REFRESH_TOKEN_TTL * 1000 + HOUR);
    expect(await ctx.app.refreshTokenPurge.run(later)).toBeGreaterThanOrEqual(1);
    expect(await stored()).toHaveLength(0);
  });
});

describe(`refresh-token purge: bounded runs (${testDb})`, () => {
  const ctx = useTestApp({ REFRESH_TOKEN_PURGE_INTERVAL_S: '0', REFRESH_TOKEN_PURGE_BATCH: '3' });

  it(`deletes at most ${PURGE_STATEMENTS_PER_RUN} statements of REFRESH_TOKEN_PURGE_BATCH rows per run`, async () => {
    const rows = Array.from({ length: 40 }, () => ({ family: randomUUID(), expiresInH: -1 }));
    const ids = await insertRows(ctx.app, rows);
    expect(await ctx.app.refreshTokenPurge.run()).toBe(3 * PURGE_STATEMENTS_PER_RUN);
    expect(await remaining(ctx.app, ids)).toHaveLength(40 - 3 * PURGE_STATEMENTS_PER_RUN);
    expect(await ctx.app.refreshTokenPurge.run()).toBe(40 - 3 * PURGE_STATEMENTS_PER_RUN);
    expect(await remaining(ctx.app, ids)).toEqual([]);
  });
});

describe(`refresh-token purge: the timer (${testDb})`, () => {
  it('purges in the background every REFRESH_TOKEN_PURGE_INTERVAL_S and stops when the app closes', async () => {
    const scratch = await createScratchDatabase();
    const app = await createServer(testConfig(scratch.url, { REFRESH_TOKEN_PURGE_INTERVAL_S: '1' }), { logger: false });
    try {
      await app.ready();
      expect(app.refreshTokenPurge.scheduled).toBe(true);
      const ids = await insertRows(app, [{ family: randomUUID(), expiresInH: -1 }]);
      const deadline = Date.now() + 20_000;
      while ((await remaining(app, ids)).length > 0) {
        if (Date.now() > deadline) throw new Error('the background purge never ran');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await app.close();
      expect(app.refreshTokenPurge.scheduled).toBe(false);
    } finally {
      await app.close();
      await scratch.drop();
    }
  });

  it('sets no timer with REFRESH_TOKEN_PURGE_INTERVAL_S=0', async () => {
    const scratch = await createScratchDatabase();
    const app = await createServer(testConfig(scratch.url, { REFRESH_TOKEN_PURGE_INTERVAL_S: '0' }), { logger: false });
    try {
      await app.ready();
      expect(app.refreshTokenPurge.scheduled).toBe(false);
    } finally {
      await app.close();
      await scratch.drop();
    }
  });
});
