/**
 * From a valid definition to the job graph a build runs: `parallel` copies named, defaults filled in, and every job's
 * needs spelled out, in pipeline order (stage order, then the order jobs are listed in). The engine plans a build's
 * jobs from this list alone. Linear in the output, which is at most 200 jobs with at most 199 needs each.
 *
 * Pipeline order is the order jobs are shown and planned in, not a topological order: a job may need a job of its own
 * stage listed after it (GitLab allows needs within a stage), so the engine releases jobs by their needs, never by
 * position.
 */
import { Type, type Static } from '@sinclair/typebox';
import { WHEN_VALUES, type PipelineDefinition, type When } from './definition.js';

/** Simulated seconds a job without `duration_s` lasts: `[min, max]`, drawn uniformly per run. */
export const DEFAULT_JOB_DURATION_S: [number, number] = [1, 3];

const JobName = (description: string) => Type.String({ description, examples: ['e2e 2/3'] });

/** One job of the resolved graph, as the engine plans it and `POST /pipelines/lint` shows it. */
export const ResolvedJob = Type.Object(
  {
    name: JobName('Unique within the build: the job’s name, or `name i/n` for a copy of a `parallel` job'),
    job: Type.String({ description: 'The definition’s job this one comes from (its `name` unless it is a copy)', examples: ['e2e'] }),
    stage: Type.String({ description: 'Its stage', examples: ['test'] }),
    stage_index: Type.Integer({ minimum: 0, description: 'Position of its stage in `stages`, from 0', examples: [1] }),
    needs: Type.Array(JobName('A job name'), {
      description: 'The jobs it waits for, copies of `parallel` jobs spelled out, in pipeline order (empty: starts at once)',
      examples: [['compile']],
    }),
    script: Type.Array(Type.String(), { description: 'Command lines shown in its log', examples: [['npm run e2e']] }),
    duration_s: Type.Array(Type.Number({ minimum: 0 }), {
      minItems: 2,
      maxItems: 2,
      description: '`[min, max]` simulated seconds it lasts (default `[1, 3]`)',
      examples: [[1, 3]],
    }),
    fail_rate: Type.Number({ minimum: 0, maximum: 1, description: 'Probability that a run fails (default `BUILD_FAIL_RATE`)', examples: [0.5] }),
    allow_failure: Type.Boolean({ description: 'Its failure does not fail the build (default `true` for manual jobs only)', examples: [false] }),
    when: Type.Unsafe<When>({ type: 'string', enum: [...WHEN_VALUES], description: 'When it runs (default `on_success`)', examples: ['on_success'] }),
    parallel: Type.Union(
      [
        Type.Object(
          {
            index: Type.Integer({ minimum: 1, description: 'Which copy, from 1', examples: [2] }),
            total: Type.Integer({ minimum: 1, description: 'How many copies', examples: [3] }),
          },
          { description: 'Which copy of a `parallel` job this is' },
        ),
        Type.Null(),
      ],
      { description: 'Which copy of a `parallel` job this is, or null' },
    ),
    artifacts: Type.Boolean({ description: 'A `.tar.gz` artifact is stored for it', examples: [false] }),
  },
  { description: 'A job of the resolved pipeline: defaults filled in, needs spelled out' },
);
export type ResolvedJob = Static<typeof ResolvedJob>;

/** What a job's simulated run needs beyond its place in the graph: stored with each job row (`jobs.spec`). */
export type JobSpec = Pick<ResolvedJob, 'job' | 'script' | 'duration_s' | 'fail_rate' | 'artifacts' | 'parallel'>;

export interface ResolveOptions {
  /** `fail_rate` of the jobs that name none: the server's BUILD_FAIL_RATE. */
  defaultFailRate: number;
}

/**
 * Resolves a definition that ./validate.ts accepted (anything else may throw or give nonsense):
 * - `parallel: n` makes n copies `name 1/n` … `name n/n`, one after the other in the job's place;
 * - without `needs`, a job waits for every job of the earlier stages (GitLab's stage semantics); `needs: []` waits for
 *   nothing; a need on a `parallel` job waits for all its copies;
 * - `when` defaults to `on_success`; `allow_failure` to `true` for `when: manual` jobs and `false` otherwise (GitLab:
 *   a manual job nobody plays must not hold the build back), `artifacts` to `false`, `script` to no lines.
 */
export function resolvePipeline(definition: PipelineDefinition, { defaultFailRate }: ResolveOptions): ResolvedJob[] {
  const stageIndex = new Map(definition.stages.map((stage, index) => [stage, index]));
  const byStage: [string, PipelineDefinition['jobs'][string]][][] = definition.stages.map(() => []);
  for (const entry of Object.entries(definition.jobs)) byStage[stageIndex.get(entry[1].stage) ?? 0]?.push(entry);

  // Names of each definition job's copies (or of itself), known before any job that may need them is resolved.
  const namesOf = new Map<string, string[]>();
  for (const [name, job] of Object.entries(definition.jobs)) {
    const total = job.parallel ?? 1;
    namesOf.set(name, job.parallel === undefined ? [name] : Array.from({ length: total }, (_, i) => `${name} ${i + 1}/${total}`));
  }

  const resolved: ResolvedJob[] = [];
  /** Jobs whose needs were written out: sorted into pipeline order once every position is known. */
  const explicit: ResolvedJob[] = [];
  /** Every job of the stages before the current one, in pipeline order: what a job without `needs` waits for. */
  const earlier: string[] = [];
  byStage.forEach((jobs, stage_index) => {
    const stageStart = resolved.length;
    for (const [job, definitionOfJob] of jobs) {
      const when = definitionOfJob.when ?? 'on_success';
      const needs = definitionOfJob.needs === undefined ? [...earlier] : definitionOfJob.needs.flatMap((need) => namesOf.get(need) ?? []);
      const names = namesOf.get(job) ?? [job];
      names.forEach((name, copy) => {
        const resolvedJob: ResolvedJob = {
          name,
          job,
          stage: definitionOfJob.stage,
          stage_index,
          needs: [...needs],
          script: definitionOfJob.script ?? [],
          duration_s: [definitionOfJob.duration_s?.[0] ?? DEFAULT_JOB_DURATION_S[0], definitionOfJob.duration_s?.[1] ?? DEFAULT_JOB_DURATION_S[1]],
          fail_rate: definitionOfJob.fail_rate ?? defaultFailRate,
          allow_failure: definitionOfJob.allow_failure ?? when === 'manual',
          when,
          parallel: definitionOfJob.parallel === undefined ? null : { index: copy + 1, total: names.length },
          artifacts: definitionOfJob.artifacts ?? false,
        };
        resolved.push(resolvedJob);
        if (definitionOfJob.needs !== undefined) explicit.push(resolvedJob);
      });
    }
    for (let i = stageStart; i < resolved.length; i++) earlier.push((resolved[i] as ResolvedJob).name);
  });
  // Written needs come in pipeline order too, whatever order they were listed in: one answer for one graph.
  const position = new Map(resolved.map((job, index) => [job.name, index]));
  for (const job of explicit) job.needs.sort((a, b) => (position.get(a) ?? 0) - (position.get(b) ?? 0));
  return resolved;
}
