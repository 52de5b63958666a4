import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { packageVersion } from '../../src/project-root.js';

const StatusBody = Type.Object(
  {
    status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')], {
      description: '`ok` when every check passes, `degraded` otherwise',
      examples: ['ok'],
    }),
    version: Type.String({ description: 'Usine version (package.json)', examples: ['1.0.0'] }),
    uptime_s: Type.Number({ description: 'Seconds since the process started', examples: [42.5] }),
    db: Type.Union([Type.Literal('ok'), Type.Literal('error')], { description: 'Database check', examples: ['ok'] }),
    db_dialect: Type.Union([Type.Literal('sqlite'), Type.Literal('pg')], {
      description: 'Which database this process uses',
      examples: ['sqlite'],
    }),
    time: Type.String({ format: 'date-time', description: 'Server time (ISO-8601, UTC)', examples: ['2026-11-24T17:32:02.000Z'] }),
    queue: Type.Union(
      [
        Type.Object({
          queued: Type.Integer({ description: 'Builds waiting for a worker, across all projects and replicas', examples: [3] }),
          running: Type.Integer({ description: 'Builds running now, on any replica', examples: [4] }),
        }),
        Type.Null(),
      ],
      { description: 'Build queue figures (null when the database does not answer)' },
    ),
    workers: Type.Object(
      {
        busy: Type.Integer({ description: 'Workers of this process running a build', examples: [2] }),
        total: Type.Integer({ description: 'Workers of this process (BUILD_CONCURRENCY)', examples: [4] }),
      },
      { description: "This process's build workers" },
    ),
  },
  { description: 'Service health, as the seed API reported it' },
);

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get(
    '/status',
    {
      schema: {
        tags: ['monitoring'],
        summary: 'Health check',
        description:
          'Version, uptime, database check, UTC time, the build queue (queued and running builds) and this process\'s workers. Answers 200 when the database responds and 503 (same body, `status: degraded`) when it does not. No authentication.',
        response: {
          200: StatusBody,
          503: { ...StatusBody, description: 'The database does not answer' },
        },
      },
    },
    async (_request, reply) => {
      const queue = await fastify.buildsRepository.countActive().catch(() => null);
      const db = queue ? ('ok' as const) : ('error' as const);
      reply.code(db === 'ok' ? 200 : 503);
      return {
        status: db === 'ok' ? ('ok' as const) : ('degraded' as const),
        version: packageVersion,
        uptime_s: Math.round(process.uptime() * 1000) / 1000,
        db,
        db_dialect: fastify.database.dialect,
        time: new Date().toISOString(),
        queue,
        workers: { busy: fastify.buildWorkers.busy, total: fastify.config.BUILD_CONCURRENCY },
      };
    },
  );
};

export default routes;
