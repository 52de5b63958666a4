import { Type, type Static } from '@sinclair/typebox';
import { WHEN_VALUES } from '../pipelines/definition.js';
import { JOB_STATUSES } from '../pipelines/progress.js';
import { NullableTimestamp, Timestamp } from './common.js';

export const JobStatus = Type.Union(
  JOB_STATUSES.map((status) => Type.Literal(status)),
  {
    description:
      'Job status: `created` (waiting for its needs), `queued` (ready, waiting for a worker), `running`, then `success` ' +
      'or `fail`; `canceled` (by a user, or with its build); `skipped` (its needs did not call for it to run, or its ' +
      'build was canceled first); `manual` (its needs are over: it waits for `POST /jobs/{id}/play`)',
    examples: ['success'],
  },
);

export const JobWhen = Type.Union(
  WHEN_VALUES.map((when) => Type.Literal(when)),
  {
    description:
      'When the job runs once its needs are over: `on_success` (they all succeeded), `on_failure` (one failed), ' +
      '`always`, or `manual` (it waits for a play)',
    examples: ['on_success'],
  },
);

export const Job = Type.Object(
  {
    id: Type.Integer({ description: 'Job identifier, unique across builds; each attempt of a job has its own', examples: [1] }),
    build_id: Type.Integer({ description: 'The build this job belongs to', examples: [1] }),
    name: Type.String({
      description: 'Its name, unique within the build (attempts aside): the pipeline’s job name, or `name i/n` for a copy of a `parallel` job',
      examples: ['test 1/2'],
    }),
    stage: Type.String({ description: 'The stage it belongs to', examples: ['test'] }),
    needs: Type.Array(Type.String({ description: 'A job name of the same build', examples: ['compile'] }), {
      description: 'Names of the jobs it waits for, copies of `parallel` jobs spelled out (empty: it started at once)',
      examples: [['compile']],
    }),
    status: JobStatus,
    allow_failure: Type.Boolean({
      description: 'Its failure does not fail the build (a warning instead); `true` by default for `when: manual` jobs',
      examples: [false],
    }),
    when: JobWhen,
    attempt: Type.Integer({ minimum: 1, description: 'Which attempt of the job this is: 1, then one more per retry', examples: [1] }),
    retry_of: Type.Union([Type.Integer(), Type.Null()], {
      description: 'Id of the attempt this one retries, or null for a first attempt',
      examples: [null],
    }),
    retried: Type.Boolean({
      description: 'A newer attempt of this job exists: this one is history, and the build follows the newer one',
      examples: [false],
    }),
    worker: Type.Union([Type.String(), Type.Null()], {
      description: 'The worker that ran (or runs) it, or null if none has picked it up yet',
      examples: ['api-0:1:a1b2c3/w1'],
    }),
    duration_s: Type.Union([Type.Number(), Type.Null()], {
      description:
        'What it ran, in simulated seconds (wall time ÷ BUILD_TIME_SCALE): up to its end, or up to the cancel of a ' +
        'running job. Null while it has not finished, and for a job canceled or skipped before it ran',
      examples: [1.42],
    }),
    created_at: Timestamp('When the job was planned: its build’s trigger, or the retry that made this attempt'),
    started_at: NullableTimestamp('When a worker picked it up (the latest claim, after a take-over)'),
    finished_at: NullableTimestamp('When it reached `success`, `fail`, `canceled` or `skipped`'),
  },
  { $id: 'Job', title: 'Job', description: 'One job of a build’s pipeline (one attempt of it): its place in the graph, status and timings' },
);
export type JobBody = Static<typeof Job>;
