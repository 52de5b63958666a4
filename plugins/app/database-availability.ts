import fp from 'fastify-plugin';
import { DatabaseAvailability } from '../../src/db/availability.js';
import { isConnectionFailure } from '../../src/db/errors.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Whether the database can be used now (background ping + failed queries): see src/db/availability.ts. */
    databaseAvailability: DatabaseAvailability;
  }
  interface FastifyContextConfig {
    /** `false` on routes that never query the database (probes, docs, metrics): served while the database is down. */
    database?: boolean;
  }
}

/**
 * While the database is unavailable, every request to a route that needs it answers a 503 `service_unavailable`
 * problem with `Retry-After` at once, before authentication (which queries it) and without queuing work for a
 * connection that is not there. Routes with `config: { database: false }` are served as usual; `/health/ready` and
 * `/status` report the outage themselves.
 */
export default fp(
  async (fastify) => {
    const { config, database } = fastify;
    const log = fastify.log.child({ component: 'database-availability' });
    const availability = new DatabaseAvailability({
      ping: () => database.ping(),
      intervalMs: config.DATABASE_PING_INTERVAL_MS,
      timeoutMs: config.DATABASE_PING_TIMEOUT_MS,
      onChange: (available, reason) => {
        if (available) log.info('database available again');
        else log.error({ reason }, 'database unavailable: requests that need it answer 503 until a ping succeeds');
      },
    });
    fastify.decorate('databaseAvailability', availability);
    const retryAfterS = String(Math.max(1, Math.ceil(config.DATABASE_PING_INTERVAL_MS / 1000)));

    fastify.addHook('onRequest', async (request, reply) => {
      if (availability.available || request.routeOptions.config.database === false || request.is404) return;
      reply.header('retry-after', retryAfterS);
      throw fastify.httpErrors.serviceUnavailable('The database is unavailable; retry shortly');
    });
    fastify.addHook('onError', async (_request, _reply, error) => {
      if (isConnectionFailure(error)) availability.suspect();
    });

    fastify.addHook('onReady', async () => availability.start());
    fastify.addHook('onClose', async () => availability.stop());
  },
  { name: 'database-availability', dependencies: ['database', 'sensible'] },
);
