import fp from 'fastify-plugin';
import { createDatabase, type Database } from '../../src/db/client.js';
import { runMigrations } from '../../src/db/migrate.js';

declare module 'fastify' {
  interface FastifyInstance {
    database: Database;
  }
}

/** Opens SQLite or PostgreSQL as DATABASE_URL says, applies pending migrations, closes on shutdown. */
export default fp(
  async (fastify) => {
    const database = createDatabase(fastify.config.database, {
      connectTimeoutS: fastify.config.DATABASE_CONNECT_TIMEOUT_S,
      poolMax: fastify.config.DATABASE_POOL_MAX,
    });
    try {
      await runMigrations(database, fastify.config.database);
    } catch (error) {
      await database.close();
      throw error;
    }
    fastify.decorate('database', database);
    fastify.addHook('onClose', async () => database.close());
  },
  { name: 'database' },
);
