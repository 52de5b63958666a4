import { and, asc, count, eq, ne, or, sql, type SQL } from 'drizzle-orm';
import type { BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import type { Database } from '../db/client.js';
import type { AuthChangeOptions } from './refresh-tokens.js';

export const ROLES = ['viewer', 'maintainer', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Each role can do everything the roles before it in ROLES can. */
export const roleRank = (role: Role): number => ROLES.indexOf(role);

export interface NewUser {
  username: string;
  password_hash: string;
  role: Role;
}

export interface UserChanges {
  password_hash?: string;
  role?: Role;
}

export interface UserListQuery {
  page: number;
  perPage: number;
}

/**
 * Outcome of a change that could remove the last admin. `last_admin` means the database refused it because
 * no other admin would remain; `not_found` that there is no such user.
 */
export type GuardedOutcome<T> = { ok: true; value: T } | { ok: false; reason: 'not_found' | 'last_admin' };

export function createUsersRepository({ db, tables, dialect }: Database, { onAuthChange = () => {} }: AuthChangeOptions = {}) {
  const { users } = tables;

  /** Everything but the password hash: what the API may show. */
  const publicFields = { id: users.id, username: users.username, role: users.role, created_at: users.created_at };

  /**
   * The last-admin guard, the only dialect switch here. `guard` is a condition on the target row: true unless
   * it is an admin and no other admin exists; `withAdmins` are the CTEs the statement must be built with.
   *
   * - PostgreSQL: the admins are counted from a `select … for update` CTE. Two concurrent statements (two admins
   *   deleting or demoting each other) both try to lock every admin row; the second waits for the first to
   *   commit, then re-reads the rows (a deleted or demoted admin drops out) and counts one admin, so it changes
   *   nothing. Without the lock both would count two under READ COMMITTED and both succeed.
   * - SQLite has no `for update` and needs none: a write statement takes the database's single write lock
   *   before it reads, so the count and the change cannot interleave with another writer's.
   */
  function lastAdminGuard() {
    const isNotAdmin = ne(users.role, 'admin');
    if (dialect === 'pg') {
      const admins = db.$with('admins').as(db.select({ id: users.id }).from(users).where(eq(users.role, 'admin')).for('update'));
      return { withAdmins: [admins], guard: or(isNotAdmin, sql`(select count(*) from ${admins}) > 1`) as SQL };
    }
    const guard = or(isNotAdmin, sql`(select count(*) from ${users} as other_admins where other_admins.role = 'admin') > 1`) as SQL;
    return { withAdmins: [], guard };
  }

  /** After a guarded statement changed nothing: was the user missing, or protected as the last admin? */
  async function whyUnchanged(id: number): Promise<'not_found' | 'last_admin'> {
    const rows = await db.select({ id: users.id }).from(users).where(eq(users.id, id));
    return rows.length === 0 ? 'not_found' : 'last_admin';
  }

  return {
    /**
     * The full row, password hash included: for authentication only, never for a response. Whatever the case of
     * `username` (`ALICE` finds `Alice`), as GitHub logins do: the unique index on lower(username) makes it one row.
     */
    async findByUsername(username: string) {
      const rows = await db.select().from(users).where(sql`lower(${users.username}) = lower(${username})`);
      return rows[0];
    },

    /** The user without the password hash. */
    async findPublicById(id: number) {
      const rows = await db.select(publicFields).from(users).where(eq(users.id, id));
      return rows[0];
    },

    /** Oldest first, without password hashes. */
    async list({ page, perPage }: UserListQuery) {
      const [items, totals] = await Promise.all([
        db
          .select(publicFields)
          .from(users)
          .orderBy(asc(users.id))
          .limit(perPage)
          .offset((page - 1) * perPage),
        db.select({ total: count() }).from(users),
      ]);
      return { items, total: totals[0]?.total ?? 0 };
    },

    /**
     * Inserts the user, or returns undefined when the username is taken in any case (the unique index on
     * lower(username) decides: no target, so that a conflict on either unique index is a conflict).
     */
    async create(user: NewUser) {
      const rows = await db.insert(users).values(user).onConflictDoNothing().returning(publicFields);
      return rows[0];
    },

    /** Whether any user exists (one index probe, not a count). */
    async hasAny(): Promise<boolean> {
      const rows = await db.select({ id: users.id }).from(users).limit(1);
      return rows.length > 0;
    },

    /**
     * Creates the user only while the users table is empty, in one statement (`insert … select … where not exists`):
     * the bootstrap admin is seeded into a new database and never again, even after it was deleted. Several replicas
     * starting together insert at most one row (SQLite's write lock, or the unique username index on PostgreSQL, where
     * `on conflict do nothing` names no target so that any unique index on usernames settles it). True if it inserted.
     */
    async createIntoEmpty(user: NewUser): Promise<boolean> {
      const statement = sql`insert into ${users} ("username", "password_hash", "role") select ${user.username}, ${user.password_hash}, ${user.role} where not exists (select 1 from ${users}) on conflict do nothing returning "id"`;
      // The one raw statement here: Drizzle's insert … select wants every column of the table, and they differ by dialect.
      const rows: unknown[] =
        dialect === 'pg' ? [...(await db.execute(statement))] : (db as unknown as BetterSQLite3Database).all(statement);
      return rows.length > 0;
    },

    /** Changes the password hash and/or role in one statement; demoting the last admin is refused. */
    async update(id: number, changes: UserChanges): Promise<GuardedOutcome<{ id: number; username: string; role: Role; created_at: Date }>> {
      const demotes = changes.role !== undefined && changes.role !== 'admin';
      const { withAdmins, guard } = demotes ? lastAdminGuard() : { withAdmins: [], guard: undefined };
      const rows = await db
        .with(...withAdmins)
        .update(users)
        .set(changes)
        .where(and(eq(users.id, id), guard))
        .returning(publicFields);
      const user = rows[0];
      if (user) onAuthChange();
      return user ? { ok: true, value: user } : { ok: false, reason: await whyUnchanged(id) };
    },

    /** Deletes the user (their refresh tokens go with them); deleting the last admin is refused. */
    async delete(id: number): Promise<GuardedOutcome<number>> {
      const { withAdmins, guard } = lastAdminGuard();
      const rows = await db
        .with(...withAdmins)
        .delete(users)
        .where(and(eq(users.id, id), guard))
        .returning({ id: users.id });
      const deleted = rows[0];
      if (deleted) onAuthChange();
      return deleted ? { ok: true, value: deleted.id } : { ok: false, reason: await whyUnchanged(id) };
    },
  };
}

export type UsersRepository = ReturnType<typeof createUsersRepository>;
