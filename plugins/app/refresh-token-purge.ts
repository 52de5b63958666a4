import fp from 'fastify-plugin';
import { deleteInBatches } from '../../src/db/batches.js';

/** Purge statements one run may issue: a backlog (a first run on an old database) drains over several runs. */
export const PURGE_STATEMENTS_PER_RUN = 10;

export interface RefreshTokenPurge {
  /**
   * One run: deletes expired refresh tokens, REFRESH_TOKEN_PURGE_BATCH rows per statement, until a statement finds
   * fewer or PURGE_STATEMENTS_PER_RUN statements ran. `now` stands for the clock (tests pass a later one). Resolves
   * to the number of rows deleted; a run already in progress is joined, not started twice.
   */
  run(now?: Date): Promise<number>;
  /** Whether the interval timer is set (false once the app closed, or with REFRESH_TOKEN_PURGE_INTERVAL_S=0). */
  readonly scheduled: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    refreshTokenPurge: RefreshTokenPurge;
  }
}

/**
 * Expired refresh tokens are purged in the background (src/repositories/refresh-tokens.ts, purgeExpired, says which
 * rows go and which stay), every REFRESH_TOKEN_PURGE_INTERVAL_S seconds, in every process (on PostgreSQL replicas
 * skip each other's rows; on SQLite the write lock takes turns). The timer does not keep the process alive and stops
 * when the app closes, after the run in progress. A run that fails (the database away) is logged and tried again at
 * the next tick.
 */
export default fp(
  async (fastify) => {
    const { REFRESH_TOKEN_PURGE_INTERVAL_S: intervalS, REFRESH_TOKEN_PURGE_BATCH: batch } = fastify.config;
    const repository = fastify.refreshTokensRepository;
    let running: Promise<number> | undefined;
    let timer: NodeJS.Timeout | undefined;

    async function purge(now: Date): Promise<number> {
      const deleted = await deleteInBatches(() => repository.purgeExpired(now, batch), batch, PURGE_STATEMENTS_PER_RUN);
      if (deleted > 0) fastify.log.info({ deleted }, 'purged expired refresh tokens');
      return deleted;
    }

    const run = (now = new Date()): Promise<number> => {
      running ??= purge(now).finally(() => {
        running = undefined;
      });
      return running;
    };

    if (intervalS > 0) {
      timer = setInterval(() => {
        run().catch((error: unknown) => fastify.log.warn({ err: error }, 'refresh-token purge failed; retrying at the next interval'));
      }, intervalS * 1000);
      timer.unref();
    }
    fastify.addHook('onClose', async () => {
      clearInterval(timer);
      timer = undefined;
      await running?.catch(() => undefined);
    });

    fastify.decorate('refreshTokenPurge', {
      run,
      get scheduled() {
        return timer !== undefined;
      },
    });
  },
  { name: 'refresh-token-purge', dependencies: ['repositories'] },
);
