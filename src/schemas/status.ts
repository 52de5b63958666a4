import { Type, type Static } from '@sinclair/typebox';

/** What `GET /status` answers (200 and, with the database down, 503): the seed's monitoring body plus queue figures. */
export const ServiceStatus = Type.Object(
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
        Type.Object(
          {
            queued: Type.Integer({ description: 'Builds waiting for a worker, across all projects and replicas', examples: [3] }),
            running: Type.Integer({ description: 'Builds running now, on any replica', examples: [4] }),
          },
          { description: 'Queued and running builds' },
        ),
        Type.Null(),
      ],
      { description: 'Build queue figures (null when the database does not answer)' },
    ),
    jobs: Type.Union(
      [
        Type.Object(
          {
            queued: Type.Integer({ description: 'Jobs whose needs are met, waiting for a worker, across builds and replicas', examples: [6] }),
            running: Type.Integer({ description: 'Jobs running now, on any replica', examples: [4] }),
          },
          { description: 'Queued and running jobs' },
        ),
        Type.Null(),
      ],
      { description: 'Job queue figures, null when the database does not answer' },
    ),
    workers: Type.Object(
      {
        busy: Type.Integer({ description: 'Workers of this process running a build', examples: [2] }),
        total: Type.Integer({ description: 'Workers of this process (BUILD_CONCURRENCY)', examples: [4] }),
      },
      { description: "This process's build workers" },
    ),
  },
  { $id: 'ServiceStatus', title: 'ServiceStatus', description: 'Service health, as the seed API reported it, with the build queue' },
);
export type ServiceStatusBody = Static<typeof ServiceStatus>;
