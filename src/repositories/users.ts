import { eq } from 'drizzle-orm';
import type { Database } from '../db/client.js';

export const ROLES = ['viewer', 'maintainer', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Each role can do everything the roles before it in ROLES can. */
export const roleRank = (role: Role): number => ROLES.indexOf(role);

export function createUsersRepository({ db, tables }: Database) {
  const { users } = tables;

  return {
    async findById(id: number) {
      const rows = await db.select().from(users).where(eq(users.id, id));
      return rows[0];
    },

    async findByUsername(username: string) {
      const rows = await db.select().from(users).where(eq(users.username, username));
      return rows[0];
    },

    /** Creates the user unless the username exists; safe when several replicas start together. */
    async createIfAbsent(user: { username: string; password_hash: string; role: Role }) {
      await db.insert(users).values(user).onConflictDoNothing({ target: users.username });
    },
  };
}

export type UsersRepository = ReturnType<typeof createUsersRepository>;
