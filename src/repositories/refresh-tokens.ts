import { and, eq, exists, gt, inArray, isNotNull, isNull, lt, notExists, or, sql, type Placeholder } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { isForeignKeyViolation } from '../db/errors.js';
import type { Role } from './users.js';

export interface NewRefreshToken {
  user_id: number;
  family_id: string;
  /** SHA-256 of the token, hex: the token itself is never stored. */
  token_hash: string;
  expires_at: Date;
}

export interface AuthChangeOptions {
  /**
   * Called after a change that can take access away (a session revoked, a user changed or deleted), before the
   * method returns: authentication's cache forgets what it knew (plugins/app/caller-cache.ts).
   */
  onAuthChange?: () => void;
}

/**
 * Refresh tokens and their families (one family per login). A family is revoked as soon as any of its rows
 * carries `revoked_at`: that one rule covers logout, reuse detection and a token added to a family while it
 * was being revoked. Every method is a single statement, so it is atomic on both databases.
 */
export function createRefreshTokensRepository({ db, tables, now, dialect }: Database, { onAuthChange = () => {} }: AuthChangeOptions = {}) {
  const { refresh_tokens: tokens, users } = tables;

  /** `refresh_tokens` rows of the family, one of them revoked (served by refresh_tokens_family_idx). */
  const revokedRowOf = (familyId: string | Placeholder) =>
    db
      .select({ one: sql`1` })
      .from(tokens)
      .where(and(eq(tokens.family_id, familyId), isNotNull(tokens.revoked_at)));

  /**
   * An unexpired row of the family that belongs to the user being read: the session exists, is this user's, and can
   * still be refreshed. Without it an access token signed with an invented `fid` (or another user's) would be "live"
   * for as long as nobody revoked a family that never existed, and logout could not end it. A family whose rows have
   * all expired is over: its access tokens stop with it (they would anyway once the purge deleted the rows).
   */
  const liveRowOf = (familyId: Placeholder) =>
    db
      .select({ one: sql`1` })
      .from(tokens)
      .where(and(eq(tokens.family_id, familyId), eq(tokens.user_id, users.id), isNull(tokens.revoked_at), gt(tokens.expires_at, now())));

  // Runs on every authenticated request: built and prepared once (Drizzle's query building cost more than the query
  // itself on SQLite; on PostgreSQL it is also a named prepared statement on each connection). Both subqueries are
  // probes of refresh_tokens_family_idx.
  const familyId = sql.placeholder('familyId');
  const activeCaller = db
    .select({ id: users.id, username: users.username, role: users.role })
    .from(users)
    .where(and(eq(users.id, sql.placeholder('userId')), exists(liveRowOf(familyId)), notExists(revokedRowOf(familyId))))
    .prepare('usine_find_active_caller');

  return {
    /** Stores a new token; false when its user no longer exists. */
    async create(token: NewRefreshToken): Promise<boolean> {
      try {
        await db.insert(tokens).values(token);
        return true;
      } catch (error) {
        if (isForeignKeyViolation(error)) return false;
        throw error;
      }
    },

    /**
     * Marks the token used if it is unused, unexpired and its family is not revoked, in one statement: of
     * several concurrent calls with the same token exactly one gets the row back, with the user's current
     * username and role (read in the same statement, so a concurrent revocation cannot fail the winner halfway).
     */
    async use(tokenHash: string, now: Date) {
      const rows = await db
        .update(tokens)
        .set({ used_at: now })
        .where(
          and(
            eq(tokens.token_hash, tokenHash),
            isNull(tokens.used_at),
            isNull(tokens.revoked_at),
            gt(tokens.expires_at, now),
            // Written by hand: the outer row must be named by its table, the inner one by an alias.
            sql`not exists (select 1 from "refresh_tokens" as "family" where "family"."family_id" = "refresh_tokens"."family_id" and "family"."revoked_at" is not null)`,
          ),
        )
        .returning({
          user_id: tokens.user_id,
          family_id: tokens.family_id,
          username: sql<string | null>`(select "users"."username" from "users" where "users"."id" = "refresh_tokens"."user_id")`,
          role: sql<Role | null>`(select "users"."role" from "users" where "users"."id" = "refresh_tokens"."user_id")`,
        });
      return rows[0];
    },

    /**
     * Reuse detection (RFC 9700 §4.14.2): if this token was already used, revokes its whole family.
     * Returns how many tokens were revoked (0 for an unknown or never-used token, or an already revoked family).
     */
    async revokeFamilyIfReused(tokenHash: string, now: Date): Promise<number> {
      const rows = await db
        .update(tokens)
        .set({ revoked_at: now })
        .where(
          and(
            sql`"family_id" = (select "used"."family_id" from "refresh_tokens" as "used" where "used"."token_hash" = ${tokenHash} and "used"."used_at" is not null)`,
            isNull(tokens.revoked_at),
          ),
        )
        .returning({ id: tokens.id });
      if (rows.length > 0) onAuthChange();
      return rows.length;
    },

    /** Logout: revokes the user's family. Returns how many tokens were revoked. */
    async revokeFamily(familyId: string, userId: number, now: Date): Promise<number> {
      const rows = await db
        .update(tokens)
        .set({ revoked_at: now })
        .where(and(eq(tokens.family_id, familyId), eq(tokens.user_id, userId), isNull(tokens.revoked_at)))
        .returning({ id: tokens.id });
      if (rows.length > 0) onAuthChange();
      return rows.length;
    },

    /** A new password ends every session: all of the user's families are revoked. */
    async revokeAllForUser(userId: number, now: Date): Promise<number> {
      const rows = await db
        .update(tokens)
        .set({ revoked_at: now })
        .where(and(eq(tokens.user_id, userId), isNull(tokens.revoked_at)))
        .returning({ id: tokens.id });
      if (rows.length > 0) onAuthChange();
      return rows.length;
    },

    /**
     * Deletes at most `limit` rows that no longer serve any purpose, in one statement: rows expired at `now`. An
     * expired token can be neither used nor count as reuse, and a session without an unexpired row is over (see
     * findActiveCaller), so used rows are kept for reuse detection until they expire, like every row of a revoked
     * family. One expired row is kept past that: a revoked one while its family still holds an unrevoked, unexpired
     * row (a token added by a refresh racing the revocation), since only the revoked row says that the family is
     * revoked. On PostgreSQL, rows another replica's purge is deleting are skipped rather than waited for.
     * Returns how many rows were deleted: fewer than `limit` means nothing is left to purge.
     */
    async purgeExpired(now: Date, limit: number): Promise<number> {
      const purgeable = db
        .select({ id: tokens.id })
        .from(tokens)
        .where(
          and(
            lt(tokens.expires_at, now),
            or(
              isNull(tokens.revoked_at),
              // Written by hand: the outer row must be named by its table, the inner one by an alias.
              sql`not exists (select 1 from "refresh_tokens" as "live" where "live"."family_id" = "refresh_tokens"."family_id" and "live"."revoked_at" is null and "live"."expires_at" >= ${sql.param(now, tokens.expires_at)})`,
            ),
          ),
        )
        .limit(limit);
      const candidates = dialect === 'pg' ? purgeable.for('update', { skipLocked: true }) : purgeable;
      const rows = await db.delete(tokens).where(inArray(tokens.id, candidates)).returning({ id: tokens.id });
      return rows.length;
    },

    /**
     * The user behind an access token, if the token's family is a live session of that user: the user exists, the
     * family has an unexpired row of theirs, and none of its rows is revoked. One query, by primary key and by the
     * family index.
     */
    async findActiveCaller(userId: number, familyId: string) {
      const rows = await activeCaller.execute({ userId, familyId });
      return rows[0];
    },
  };
}

export type RefreshTokensRepository = ReturnType<typeof createRefreshTokensRepository>;
