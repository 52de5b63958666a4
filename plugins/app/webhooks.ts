import fp from 'fastify-plugin';
import { packageVersion } from '../../src/project-root.js';
import { DeliveryWorkers } from '../../src/webhooks/delivery-workers.js';
import { guardedLookup, refuseLiteralHost } from '../../src/webhooks/ssrf.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** This process's webhook delivery workers (WEBHOOK_CONCURRENCY), and the fan-out of events into deliveries. */
    webhookWorkers: DeliveryWorkers;
  }
}

/** An idle delivery worker looks for due deliveries (retries) this often. */
const POLL_MS = 500;

/**
 * Webhooks: the event log's growth fans out into deliveries, which WEBHOOK_CONCURRENCY workers send, through the SSRF
 * guard unless WEBHOOK_ALLOW_PRIVATE_NETWORKS. Workers start once the app is ready and stop in `preClose`, after the
 * attempts under way (each bounded by WEBHOOK_TIMEOUT_S); a delivery cut short is sent again by whichever replica
 * finds its lease expired.
 */
export default fp(
  async (fastify) => {
    const { config, hooksRepository, eventLog, jobEngine } = fastify;
    const allowPrivate = config.WEBHOOK_ALLOW_PRIVATE_NETWORKS;
    const workers = new DeliveryWorkers({
      hooks: hooksRepository,
      concurrency: config.WEBHOOK_CONCURRENCY,
      owner: `${jobEngine.ownerPrefix}/hooks`,
      timeoutMs: config.WEBHOOK_TIMEOUT_S * 1000,
      retryBaseS: config.WEBHOOK_RETRY_BASE_S,
      userAgent: `Usine-Hookshot/${packageVersion}`,
      lookup: guardedLookup({ allowPrivate }),
      refuseLiteral: (url) => refuseLiteralHost(url, allowPrivate),
      pollMs: POLL_MS,
      log: fastify.log.child({ component: 'webhooks' }),
    });
    fastify.decorate('webhookWorkers', workers);
    const unsubscribe = eventLog.log.subscribe(() => workers.eventsLogged());
    fastify.addHook('onReady', async () => workers.start());
    fastify.addHook('preClose', async () => {
      unsubscribe();
      await workers.stop();
    });
  },
  { name: 'webhooks', dependencies: ['event-log', 'repositories', 'build-engine'] },
);
