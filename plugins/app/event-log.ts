import fp from 'fastify-plugin';
import { deleteInBatches } from '../../src/db/batches.js';
import { EventLog } from '../../src/events/event-log.js';
import { EventStreams } from '../../src/events/event-stream.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The event log's head as this process sees it, its live streams, and its retention purge. */
    /** `purge` resolves to the events and finished deliveries it deleted. */
    eventLog: { log: EventLog; streams: EventStreams; purge(now?: Date): Promise<number> };
  }
}

/** A wake-up at least this often, whatever else happens: a write whose wake-up was lost is seen within it. */
const INTERVAL_MS = 1000;
/** Under load, the log is looked at (sequenced, on PostgreSQL) at most once per this many milliseconds. */
const MIN_GAP_MS = 20;
/** How often an open event stream reads again without a wake-up. */
const POLL_MS = 2000;
/** Sent first on a stream as `retry:`: how long a client waits before it reconnects. */
const RETRY_MS = 2000;
/** Rows per purge statement, and statements per purge run: a backlog drains over several runs. */
const PURGE_BATCH = 1000;
const PURGE_STATEMENTS_PER_RUN = 10;

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * The event log (migration 0015): triggers write it; this plugin sequences it (PostgreSQL), wakes what reads it, serves
 * its live streams and purges what is older than EVENTS_RETENTION_DAYS (events, and webhooks' finished deliveries).
 *
 * What wakes it: every engine event (a build or job changed, in this replica or, by NOTIFY, another), every write
 * request answered with success (a project created, changed or deleted), another replica announcing that it sequenced
 * events, and a timer. Each replica announces on the build event bus, so streams on every replica hear of an event
 * within a NOTIFY's delay.
 */
export default fp(
  async (fastify) => {
    const { config, eventsRepository: events, hooksRepository, buildEvents: bus, logStreams } = fastify;
    const log = new EventLog({
      events,
      announce: fastify.database.notifications ? () => bus.publish({ type: 'logged' }) : undefined,
      intervalMs: INTERVAL_MS,
      minGapMs: MIN_GAP_MS,
      onError: (err) => fastify.log.warn({ err }, 'could not read or sequence the event log'),
    });
    const unsubscribe = bus.subscribe(() => log.wake());
    // Runs after every response, reads included: a callback hook, not an async one, so that no promise is made per
    // request on the read paths that issue #17 measures.
    fastify.addHook('onResponse', (request, reply, done) => {
      if (WRITE_METHODS.has(request.method) && reply.statusCode < 400) log.wake();
      done();
    });

    const streams = new EventStreams({
      log,
      read: (after, filter, limit) => events.page({ after, limit, ...filter }),
      callers: logStreams.callers,
      keepAliveMs: config.SSE_KEEPALIVE_S * 1000,
      retryMs: RETRY_MS,
      pollMs: POLL_MS,
    });

    let purging: Promise<number> | undefined;
    const purge = (now = new Date()): Promise<number> => {
      purging ??= (async () => {
        const cutoff = new Date(now.getTime() - config.EVENTS_RETENTION_DAYS * 86_400_000);
        const deleted = await deleteInBatches(() => events.purge(cutoff, PURGE_BATCH), PURGE_BATCH, PURGE_STATEMENTS_PER_RUN);
        // Webhooks' delivery history goes with the events it delivered: finished deliveries (and their attempts).
        const deliveries = await deleteInBatches(() => hooksRepository.purgeFinished(cutoff, PURGE_BATCH), PURGE_BATCH, PURGE_STATEMENTS_PER_RUN);
        if (deleted + deliveries > 0) fastify.log.info({ deleted, deliveries }, 'purged events and deliveries older than EVENTS_RETENTION_DAYS');
        return deleted + deliveries;
      })().finally(() => {
        purging = undefined;
      });
      return purging;
    };
    let purgeTimer: NodeJS.Timeout | undefined;
    if (config.EVENTS_PURGE_INTERVAL_S > 0) {
      purgeTimer = setInterval(() => {
        purge().catch((err: unknown) => fastify.log.warn({ err }, 'event purge failed; retrying at the next interval'));
      }, config.EVENTS_PURGE_INTERVAL_S * 1000);
      purgeTimer.unref();
    }

    fastify.decorate('eventLog', { log, streams, purge });
    fastify.addHook('onReady', async () => log.start());
    // Before the database closes: streams end, the run under way and a purge finish.
    fastify.addHook('preClose', async () => {
      streams.closeAll();
      clearInterval(purgeTimer);
      unsubscribe();
      await log.stop();
      await purging?.catch(() => undefined);
    });
  },
  { name: 'event-log', dependencies: ['build-engine', 'repositories', 'log-streams'] },
);
