import { setTimeout as sleep } from 'node:timers/promises';
import closeWithGrace from 'close-with-grace';
import { config as loadDotenv } from 'dotenv';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createServer } from './server.js';
import { lowerThreadPoolPriority } from './threadpool-priority.js';

loadDotenv({ quiet: true });

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`usine: ${error.message}`);
  process.exit(1);
}

const lowered = await lowerThreadPoolPriority(config.THREAD_POOL_NICE);
const server = await createServer(config);
server.log.info({ threads: lowered, nice: config.THREAD_POOL_NICE }, 'thread pool (password hashing) priority lowered');

/**
 * Graceful shutdown, bounded to 10 s (Kubernetes' terminationGracePeriodSeconds must be larger): readiness turns
 * 503 at once, requests are still served for SHUTDOWN_DELAY_MS (so load balancers stop routing here), build
 * workers stop claiming and get BUILD_DRAIN_S to finish (the rest go back to the queue), live log streams end, the
 * listener closes, in-flight requests finish (new ones on kept-alive connections get 503), onClose hooks close the
 * database, and the process exits 0. Past 10 s, or on a second signal, close-with-grace exits 1.
 */
closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
  server.lifecycle.shuttingDown = true;
  if (err) server.log.error({ err }, 'shutting down after an error');
  else server.log.info({ signal }, 'shutting down: not ready any more');
  // A connection that never sent a request is not idle to Node: it would hold server.close() until its timeout.
  // Whatever is still open a second before the 10 s bound is cut, so that the database still closes cleanly.
  const cutOff = setTimeout(() => server.server.closeAllConnections(), 9_000);
  cutOff.unref();
  if (!err && config.SHUTDOWN_DELAY_MS > 0) await sleep(config.SHUTDOWN_DELAY_MS);
  await server.close();
  clearTimeout(cutOff);
  server.log.info('closed: in-flight requests finished, database closed');
});

try {
  await server.listen({ port: config.PORT, host: config.HOST });
} catch (error) {
  server.log.fatal({ err: error }, 'could not start');
  process.exit(1);
}
