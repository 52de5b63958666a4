import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { DatabaseAvailability } from '../../src/db/availability.js';
import { isConnectionFailure } from '../../src/db/errors.js';
import { WaitingLine, type Waiter } from '../../src/http/waiting-line.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Whether the database can be used now (background ping + failed queries): see src/db/availability.ts. */
    databaseAvailability: DatabaseAvailability;
  }
  interface FastifyRequest {
    /**
     * This request's place among those waiting on the database, for the deadline sweep below. While its body is
     * arriving it stays here but out of the line (`waiting` false): that time is the client's, not the database's.
     */
    databaseWait: Waiter<FastifyReply> | null;
  }
  interface FastifyContextConfig {
    /** `false` on routes that never query the database (probes, docs, metrics): served while the database is down. */
    database?: boolean;
  }
}

/** Whether the request announces a body (the same test Fastify makes before it reads one). */
function hasBody(request: FastifyRequest): boolean {
  const { headers } = request;
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0');
}

/**
 * While the database is unavailable, every request to a route that needs it answers a 503 `service_unavailable`
 * problem with `Retry-After` at once, before authentication (which queries it) and without queuing work for a
 * connection that is not there. Routes with `config: { database: false }` are served as usual; `/health/ready` and
 * `/status` report the outage themselves. A request that needs the database and is still unanswered after
 * DATABASE_REQUEST_TIMEOUT_S gets a 503 too (its late result is dropped): it may or may not have been applied, as
 * with any timeout, which the detail says. The time its body takes to arrive does not count: a slow body is the
 * client's delay, answered once by Node's request timeout (HTTP_REQUEST_TIMEOUT_S, a 408: src/http/client-errors.ts),
 * never blamed on the database.
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

    // Requests waiting on the database, in the order they came, swept once a second for those past
    // DATABASE_REQUEST_TIMEOUT_S: cheaper on the hot path than a timer per request (src/http/waiting-line.ts says why
    // not a Map either).
    const deadlineMs = config.DATABASE_REQUEST_TIMEOUT_S * 1000;
    const waiting = new WaitingLine<FastifyReply>();
    fastify.decorateRequest('databaseWait', null);
    const release = (request: FastifyRequest) => {
      if (!request.databaseWait) return;
      waiting.remove(request.databaseWait);
      request.databaseWait = null;
    };
    const expire = (reply: FastifyReply) => {
      const { request } = reply;
      request.databaseWait = null;
      if (reply.sent || reply.raw.headersSent) return;
      availability.suspect();
      request.log.error({ timeout_s: config.DATABASE_REQUEST_TIMEOUT_S }, 'request unanswered in time: the database may be unreachable');
      reply.header('retry-after', retryAfterS);
      reply.send(
        fastify.httpErrors.serviceUnavailable(
          `No answer from the database within ${config.DATABASE_REQUEST_TIMEOUT_S} s; the request may or may not have been applied`,
        ),
      );
    };

    fastify.addHook('onRequest', (request, reply, done) => {
      if (request.routeOptions.config.database === false || request.is404) return done();
      if (!availability.available) {
        reply.header('retry-after', retryAfterS);
        return done(fastify.httpErrors.serviceUnavailable('The database is unavailable; retry shortly'));
      }
      if (deadlineMs > 0) request.databaseWait = waiting.add(reply, performance.now());
      done();
    });
    if (deadlineMs > 0) {
      // The clock stops while the body is read (after authentication, which may query the database, and before
      // anything else that does) and starts afresh once it is in. Bodyless requests keep their place.
      fastify.addHook('preParsing', (request, _reply, payload, done) => {
        const wait = request.databaseWait;
        if (wait && hasBody(request)) waiting.remove(wait);
        done(null, payload);
      });
      fastify.addHook('preValidation', (request, reply, done) => {
        const wait = request.databaseWait;
        if (wait && !wait.waiting) request.databaseWait = waiting.add(reply, performance.now());
        done();
      });
      fastify.addHook('onSend', (request, _reply, payload, done) => {
        release(request);
        done(null, payload);
      });
      fastify.addHook('onRequestAbort', (request, done) => {
        release(request);
        done();
      });
      const sweeper = setInterval(() => {
        for (const reply of waiting.takeSince(performance.now() - deadlineMs)) expire(reply);
      }, Math.min(1000, deadlineMs));
      sweeper.unref();
      fastify.addHook('onClose', async () => clearInterval(sweeper));
    }

    fastify.addHook('onError', async (request, _reply, error) => {
      // A request whose own stream broke (the client left mid-body) reports an ECONNRESET that is not the database's.
      if (isConnectionFailure(error) && request.raw.errored !== error) availability.suspect();
    });

    fastify.addHook('onReady', async () => availability.start());
    fastify.addHook('onClose', async () => availability.stop());
  },
  { name: 'database-availability', dependencies: ['database', 'sensible'] },
);
