import { eq } from 'drizzle-orm';
import type { Database } from '../db/client.js';

export type Role = 'admin' | 'maintainer' | 'viewer';

export function createUsersRepository({ db, tables }: Database) {
  const { users } = tables;

  return {
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
