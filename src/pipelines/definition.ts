/**
 * A project's pipeline definition: what its builds run. The shape users write in JSON or YAML (a `.usine.yml`, as
 * they would write a `.gitlab-ci.yml`), its limits, and its TypeBox schema. Plain domain code: no Fastify types.
 *
 * The schema checks each field's shape; what depends on several fields at once (a job's stage is one of `stages`, its
 * needs name jobs of the same or an earlier stage, no cycles, limits after `parallel`) is ./validate.ts's.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

/** The bounds a definition must stay within, so that a hostile one costs little to check, store and run. */
export const LIMITS = {
  stages: 50,
  /** Jobs once `parallel` has made its copies: what one build runs. */
  jobs: 200,
  /** Stage and job names, in characters (a `parallel` copy adds its ` i/n` to the name). */
  name: 100,
  parallel: 50,
  needs: 200,
  scriptLines: 100,
  scriptLineLength: 1000,
  /** Simulated seconds one job may last: an hour. */
  durationS: 3600,
} as const;

export const WHEN_VALUES = ['on_success', 'on_failure', 'always', 'manual'] as const;
export type When = (typeof WHEN_VALUES)[number];

/**
 * Names of stages and jobs: 1–100 characters, no control characters, no blank at either end. Checked by ./validate.ts
 * rather than by the schema (`propertyNames` is not OpenAPI 3.0), so the same rule reads the same for both.
 */
// eslint-disable-next-line no-control-regex -- control characters are exactly what the pattern refuses
export const NAME_PATTERN = /^[^\s\u0000-\u001f\u007f](?:[^\u0000-\u001f\u007f]*[^\s\u0000-\u001f\u007f])?$/;

const NO_CONTROL_CHARACTERS = '^[^\\u0000-\\u001f\\u007f]*$';

const StageName = Type.String({
  minLength: 1,
  maxLength: LIMITS.name,
  pattern: NO_CONTROL_CHARACTERS,
  description: 'A stage name: 1–100 characters without control characters or blanks at either end',
  examples: ['test'],
});

/** One string out of a closed list, as a plain JSON Schema `enum` (one error per bad value, not one per member). */
const StringEnum = <T extends readonly string[]>(values: T, options: { description: string; examples: T[number][] }) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });

export const JobDefinition = Type.Object(
  {
    stage: { ...StageName, description: 'The stage the job belongs to: one of `stages`' },
    needs: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: LIMITS.name, description: 'A job name' }), {
        maxItems: LIMITS.needs,
        description:
          'Jobs this one waits for, of its own stage or an earlier one (a need on a `parallel` job waits for all its copies). ' +
          'Left out, the job waits for every job of the earlier stages (as GitLab does); `[]` starts it at once.',
        examples: [['compile']],
      }),
    ),
    script: Type.Optional(
      Type.Array(Type.String({ maxLength: LIMITS.scriptLineLength, pattern: NO_CONTROL_CHARACTERS }), {
        maxItems: LIMITS.scriptLines,
        description: 'Command lines shown in the job log, in order (simulated: nothing is executed)',
        examples: [['npm ci', 'npm run build']],
      }),
    ),
    duration_s: Type.Optional(
      // Two numbers rather than a tuple: OpenAPI 3.0 has no tuples.
      Type.Array(Type.Number({ minimum: 0, maximum: LIMITS.durationS }), {
        minItems: 2,
        maxItems: 2,
        description: '`[min, max]` simulated seconds the job lasts, drawn uniformly per run (default `[1, 3]`)',
        examples: [[2, 4]],
      }),
    ),
    fail_rate: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 1,
        description: 'Probability that a run of the job fails (default: the server’s `BUILD_FAIL_RATE`)',
        examples: [0.2],
      }),
    ),
    allow_failure: Type.Optional(
      Type.Boolean({
        description:
          'A failure of this job does not fail the build (it counts as a success with a warning). ' +
          'Default `false`, but `true` for `when: manual` jobs (GitLab’s rule: an unplayed manual job blocks nothing)',
        examples: [true],
      }),
    ),
    when: Type.Optional(
      StringEnum(WHEN_VALUES, {
        description:
          'When the job runs once its needs are over: `on_success` (default, all succeeded), `on_failure` (one failed), ' +
          '`always`, or `manual` (waits for `POST /jobs/{id}/play`)',
        examples: ['manual'],
      }),
    ),
    parallel: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: LIMITS.parallel,
        description: 'Run N copies of the job at once, named `name 1/N` … `name N/N`',
        examples: [3],
      }),
    ),
    artifacts: Type.Optional(Type.Boolean({ description: 'Store a `.tar.gz` artifact for this job (default `false`)', examples: [true] })),
  },
  { additionalProperties: false, description: 'One job: its stage, what it waits for, and how its simulated run behaves' },
);
export type JobDefinition = Static<typeof JobDefinition>;

/**
 * `{name: job}` as a JSON Schema object whose every property is a job. Not `Type.Record`, whose `patternProperties`
 * OpenAPI 3.0 does not have.
 */
const JobMap = <T extends TSchema>(job: T) =>
  Type.Unsafe<Record<string, Static<T>>>({
    type: 'object',
    additionalProperties: job,
    minProperties: 1,
    maxProperties: LIMITS.jobs,
    description:
      'The jobs by name (1–100 characters, no control characters, no blank at either end), in the order they are listed ' +
      'within a stage. At most 200 once `parallel` has made its copies.',
  });

export const PipelineDefinition = Type.Object(
  {
    stages: Type.Array(StageName, {
      minItems: 1,
      maxItems: LIMITS.stages,
      description: 'Stage names in the order they run; each job belongs to one. At most 50, each listed once.',
      examples: [['build', 'test', 'deploy']],
    }),
    jobs: JobMap(JobDefinition),
  },
  {
    $id: 'PipelineDefinition',
    title: 'PipelineDefinition',
    additionalProperties: false,
    description:
      'A pipeline definition: stages in order, and jobs grouped in them, with `needs` for a dependency graph across ' +
      'stages. Sent and answered as JSON, or YAML with `application/yaml`.',
    examples: [
      {
        stages: ['build', 'test', 'deploy'],
        jobs: {
          compile: { stage: 'build', script: ['npm ci', 'npm run build'], duration_s: [2, 4] },
          unit: { stage: 'test', needs: ['compile'], fail_rate: 0.2, artifacts: true },
          lint: { stage: 'test', needs: ['compile'], allow_failure: true },
          e2e: { stage: 'test', needs: ['compile'], parallel: 3 },
          release: { stage: 'deploy', when: 'manual' },
        },
      },
    ],
  },
);
export type PipelineDefinition = Static<typeof PipelineDefinition>;

/** One problem with a definition: a JSON pointer into it (RFC 6901) and what is wrong there. */
export interface DefinitionProblem {
  path: string;
  message: string;
}

/** A JSON pointer from its reference tokens, `~` and `/` escaped (RFC 6901). */
export const pointer = (...tokens: (string | number)[]): string =>
  tokens.map((token) => `/${String(token).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
