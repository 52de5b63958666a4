import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { packageVersion } from '../../src/project-root.js';
import { ref } from '../../src/schemas/ref.js';
import { ServiceStatus } from '../../src/schemas/status.js';

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get(
    '/status',
    {
      // It reports the database's state itself, without waiting for it when it is known to be down.
      config: { database: false },
      schema: {
        tags: ['monitoring'],
        operationId: 'getStatus',
        summary: 'Health check',
        description:
          'Version, uptime, database check, UTC time, the build queue (queued and running builds), the job queue (queued and running jobs) and this process\'s workers. Answers 200 when the database responds and 503 (same body, `status: degraded`) when it does not. No authentication.',
        response: {
          200: { ...ref(ServiceStatus), description: 'Every check passes' },
          503: { ...ref(ServiceStatus), description: 'The database does not answer (`status: degraded`, `db: error`, `queue` and `jobs` null)' },
        },
      },
    },
    async (_request, reply) => {
      // One statement: it is the database check too.
      const active = fastify.databaseAvailability.available ? await fastify.buildsRepository.countActive().catch(() => null) : null;
      const db = active ? ('ok' as const) : ('error' as const);
      reply.code(db === 'ok' ? 200 : 503);
      return {
        status: db === 'ok' ? ('ok' as const) : ('degraded' as const),
        version: packageVersion,
        uptime_s: Math.round(process.uptime() * 1000) / 1000,
        db,
        db_dialect: fastify.database.dialect,
        time: new Date().toISOString(),
        queue: active?.queue ?? null,
        jobs: active?.jobs ?? null,
        workers: { busy: fastify.jobEngine.busy, total: fastify.config.BUILD_CONCURRENCY },
      };
    },
  );
};

export default routes;
