import { Type, type Static } from '@sinclair/typebox';
import { NullableTimestamp, Timestamp } from './common.js';

export const BUILD_STATUSES = ['queued', 'running', 'success', 'fail', 'canceled'] as const;
export type BuildStatusValue = (typeof BUILD_STATUSES)[number];

export const BuildStatus = Type.Union(
  BUILD_STATUSES.map((status) => Type.Literal(status)),
  { description: 'Build status: queued → running → success | fail, or canceled', examples: ['success'] },
);

export const CommitSha = Type.String({
  minLength: 7,
  maxLength: 64,
  pattern: '^[0-9a-f]{7,64}$',
  description: 'Commit hash, lowercase hex (7–64 characters)',
  examples: ['3f786850e387550fdab836ed7e6dc881de23001b'],
});

export const Build = Type.Object(
  {
    id: Type.Integer({ description: 'Build identifier, unique across projects', examples: [1] }),
    project_id: Type.Integer({ description: 'The project this build belongs to', examples: [1] }),
    number: Type.Integer({ minimum: 1, description: 'Per-project build number: 1, 2, 3… without gaps', examples: [1] }),
    status: BuildStatus,
    branch: Type.String({ description: 'Branch built', examples: ['main'] }),
    commit_sha: CommitSha,
    triggered_by: Type.Union([Type.String(), Type.Null()], {
      description: 'Username of whoever triggered the build',
      examples: ['admin'],
    }),
    retry_of: Type.Union([Type.Integer(), Type.Null()], {
      description: 'Id of the build this one retries, or null',
      examples: [null],
    }),
    duration_s: Type.Union([Type.Number(), Type.Null()], {
      description:
        'What the build ran, in simulated seconds: the longest chain of its jobs, each lasting what it ran (the default ' +
        'pipeline: 2–10 on success, up to the end of the failing job on failure; a build canceled while running counts ' +
        'its jobs up to the cancel). Null while queued or running, and for a build canceled before it started',
      examples: [4.37],
    }),
    logs: Type.String({
      description:
        "The log so far, whole lines: the build's own (`[usine] Build #n … started`, a cancel) and every line of its " +
        'jobs as they are written, each prefixed with `[<job name>] ` — which worker picked the job up, its steps with ' +
        'their simulated time in the job, its end — and a last `Build finished: <status> in <s> s`. Empty while queued. ' +
        '`GET /builds/{id}/logs` serves it as text or as a live stream; `GET /jobs/{id}/logs` one job\'s.',
      examples: [
        '[usine] Build #1 of DemoProj (main @ 3f78685) started\n' +
          '[checkout] [usine] Job checkout (attempt 1) picked up by api-0:1:a1b2c3/w1, claim 1\n' +
          '[checkout] [00:00.000] ==> Step checkout\n[checkout] [00:00.020] $ git clone --branch main https://github.com/demo/repo DemoProj\n' +
          '…\n[package] Job succeeded in 0.61 s\nBuild finished: success in 4.37 s\n',
      ],
    }),
    created_at: Timestamp('When the build was triggered'),
    started_at: NullableTimestamp('When its first job started'),
    finished_at: NullableTimestamp('When the build reached a terminal status'),
  },
  { $id: 'Build', title: 'Build', description: 'One simulated CI run of a project' },
);
export type BuildBody = Static<typeof Build>;
