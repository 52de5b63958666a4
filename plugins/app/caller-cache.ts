import { randomUUID } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';
import fp from 'fastify-plugin';
import { CallerCache } from '../../src/auth/caller-cache.js';

/**
 * On SQLite, how long a read of the `auth_version` counter is trusted: changes made by other connections (another
 * process on the same file, the sqlite3 shell) reach this process's cache within this time. Changes made through
 * this process's repositories do at once (they call invalidate()).
 */
export const SQLITE_VERSION_CHECK_MS = 50;

/** The PostgreSQL channel drizzle/pg/0004_auth_change_notify.sql's triggers notify. */
export const AUTH_CHANNEL = 'usine_auth';

declare module 'fastify' {
  interface FastifyInstance {
    callerCache: CallerCache & {
      /**
       * Resolves once every change committed before the call has reached the cache: on SQLite by reading the counter
       * now; on PostgreSQL when a notification sent now comes back (notifications arrive in commit order).
       */
      sync(): Promise<void>;
    };
  }
}

/**
 * The cache authentication answers from (src/auth/caller-cache.ts), with its invalidations wired: SQLite's
 * `auth_version` counter (drizzle/sqlite/0004_auth_change_version.sql) read at most every SQLITE_VERSION_CHECK_MS; PostgreSQL's `usine_auth` notifications (caching stays off until this
 * process listens). Repositories call `invalidate()` after their own changes (plugins/app/repositories.ts).
 */
export default fp(
  async (fastify) => {
    const { database } = fastify;
    const ttlMs = fastify.config.AUTH_CACHE_TTL_MS;
    const load = (userId: number, familyId: string) => fastify.refreshTokensRepository.findActiveCaller(userId, familyId);

    if (database.dialect === 'sqlite') {
      // The raw driver: one prepared primary-key read, without the ORM's mapping, on every authenticated request.
      const client = (database.db as unknown as { $client: BetterSqlite3.Database }).$client;
      const versionQuery = client.prepare('select version from auth_version where id = 1').pluck();
      const cache = new CallerCache({ load, ttlMs, version: () => versionQuery.get() as number, versionCheckMs: SQLITE_VERSION_CHECK_MS });
      fastify.decorate('callerCache', Object.assign(cache, { sync: async () => cache.checkVersion() }));
      return;
    }

    const cache = new CallerCache({ load, ttlMs }, { enabled: false });
    const waiting = new Map<string, () => void>();
    const notifications = database.notifications;
    let listening: { unlisten(): Promise<void> } | undefined;
    if (notifications && ttlMs > 0) {
      try {
        listening = await notifications.listen(AUTH_CHANNEL, (payload) => {
          const done = payload.startsWith('sync:') ? waiting.get(payload) : undefined;
          if (done) {
            waiting.delete(payload);
            done();
          } else cache.invalidate();
        });
        cache.setEnabled(true);
      } catch (error) {
        fastify.log.warn({ err: error }, 'caller cache off: could not listen for changes to users and sessions');
      }
    }
    const sync = async () => {
      if (!listening || !notifications) return;
      const marker = `sync:${randomUUID()}`;
      const heard = new Promise<void>((resolve) => waiting.set(marker, resolve));
      await notifications.notify(AUTH_CHANNEL, marker);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('caller cache: no notification within 5 s')), 5000);
      });
      try {
        await Promise.race([heard, timeout]);
      } finally {
        clearTimeout(timer);
        waiting.delete(marker);
      }
    };
    fastify.decorate('callerCache', Object.assign(cache, { sync }));
    // Notifications sent while this process had no connection are lost: when the database comes back, start afresh.
    fastify.databaseAvailability.on('change', () => cache.invalidate());
    fastify.addHook('onClose', async () => {
      cache.setEnabled(false);
      await listening?.unlisten().catch(() => undefined);
    });
  },
  { name: 'caller-cache', dependencies: ['database', 'database-availability'] },
);
