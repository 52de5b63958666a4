import { describe, expect, it } from 'vitest';
import { LIMITS, type PipelineDefinition } from '../../src/pipelines/definition.js';
import { MAX_PROBLEMS, validateDefinition } from '../../src/pipelines/validate.js';

/** The example, valid. */
const example = (): PipelineDefinition => ({
  stages: ['build', 'test', 'deploy'],
  jobs: {
    compile: { stage: 'build', script: ['npm ci', 'npm run build'], duration_s: [2, 4] },
    unit: { stage: 'test', needs: ['compile'], fail_rate: 0.2, artifacts: true },
    lint: { stage: 'test', needs: ['compile'], allow_failure: true },
    e2e: { stage: 'test', needs: ['compile'], parallel: 3 },
    release: { stage: 'deploy', when: 'manual' },
  },
});

function problemsOf(input: unknown) {
  const result = validateDefinition(input);
  expect(result.valid, JSON.stringify(input).slice(0, 200)).toBe(false);
  return result.valid ? [] : result.problems;
}

describe('validateDefinition', () => {
  it('accepts the example of the issue and returns it unchanged', () => {
    const result = validateDefinition(example());
    expect(result).toEqual({ valid: true, definition: example() });
  });

  it('reports shape problems with their paths: missing, unknown and mistyped fields, bad `when`', () => {
    const problems = problemsOf({
      jobs: { a: { needs: 'b', when: 'sometimes', parallel: 0, fail_rate: 2, colour: 'red', script: ['ok', 3] } },
      extra: true,
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        { path: '/stages', message: "must have required property 'stages'" },
        { path: '/extra', message: 'is not an accepted field' },
        { path: '/jobs/a/stage', message: "must have required property 'stage'" },
        { path: '/jobs/a/colour', message: 'is not an accepted field' },
        { path: '/jobs/a/needs', message: 'must be array' },
        { path: '/jobs/a/when', message: 'must be one of on_success, on_failure, always, manual' },
        { path: '/jobs/a/parallel', message: 'must be >= 1' },
        { path: '/jobs/a/fail_rate', message: 'must be <= 1' },
        { path: '/jobs/a/script/1', message: 'must be string' },
      ]),
    );
  });

  it('refuses what is not an object at all, at the root path', () => {
    for (const input of [null, [], 'stages: []', 42]) expect(problemsOf(input)).toEqual([{ path: '', message: 'must be object' }]);
  });

  it('reports an unknown stage, naming the stages there are', () => {
    const definition = example();
    definition.jobs.unit = { stage: 'tset' };
    expect(problemsOf(definition)).toEqual([{ path: '/jobs/unit/stage', message: 'unknown stage `tset`: stages are `build`, `test`, `deploy`' }]);
  });

  it('reports an unknown need at its index', () => {
    const definition = example();
    definition.jobs.unit = { stage: 'test', needs: ['lint', 'compyle'] };
    expect(problemsOf(definition)).toEqual([{ path: '/jobs/unit/needs/1', message: 'unknown job `compyle`' }]);
  });

  it('reports a need on a later stage, and accepts one on the same stage (GitLab ≥ 14.2)', () => {
    const later = example();
    later.jobs.unit = { stage: 'test', needs: ['release'] };
    expect(problemsOf(later)).toEqual([
      { path: '/jobs/unit/needs/0', message: '`release` is in the later stage `deploy`: a job can only need jobs of its own or earlier stages' },
    ]);
    const sameStage = example();
    sameStage.jobs.unit = { stage: 'test', needs: ['lint'] };
    expect(validateDefinition(sameStage).valid).toBe(true);
  });

  it('reports each cycle once, spelling it out, and a job needing itself', () => {
    const definition: PipelineDefinition = {
      stages: ['test'],
      jobs: {
        a: { stage: 'test', needs: ['b'] },
        b: { stage: 'test', needs: ['c'] },
        c: { stage: 'test', needs: ['a'] },
        d: { stage: 'test', needs: ['a'] }, // waits on the cycle without being on it
        e: { stage: 'test', needs: ['f'] },
        f: { stage: 'test', needs: ['e'] },
        g: { stage: 'test', needs: ['g'] },
      },
    };
    expect(problemsOf(definition)).toEqual([
      { path: '/jobs/g/needs/0', message: 'a job cannot need itself' },
      { path: '/jobs/a/needs/0', message: 'needs form a cycle: `a` → `b` → `c` → `a`' },
      { path: '/jobs/e/needs/0', message: 'needs form a cycle: `e` → `f` → `e`' },
    ]);
  });

  it('finds a cycle in a long chain in linear time', () => {
    const count = LIMITS.jobs;
    const jobs: PipelineDefinition['jobs'] = {};
    for (let i = 0; i < count; i++) jobs[`j${i}`] = { stage: 's', needs: [`j${(i + 1) % count}`] };
    const problems = problemsOf({ stages: ['s'], jobs });
    expect(problems).toHaveLength(1);
    expect(problems[0]?.message.split(' → ')).toHaveLength(count + 1);
  });

  it('reports duplicate stages and needs listed twice', () => {
    const definition = example();
    definition.stages.push('test');
    definition.jobs.unit = { stage: 'test', needs: ['compile', 'compile'] };
    expect(problemsOf(definition)).toEqual([
      { path: '/stages/3', message: 'stage `test` is already listed at /stages/1' },
      { path: '/jobs/unit/needs/1', message: '`compile` is already listed at /jobs/unit/needs/0' },
    ]);
  });

  it('reports a job named like a copy of a parallel job, escaping `/` in the path', () => {
    const definition = example();
    definition.jobs['e2e 2/3'] = { stage: 'test' };
    expect(problemsOf(definition)).toEqual([{ path: '/jobs/e2e 2~13', message: 'job `e2e 2/3` has the name of a copy of `e2e` (parallel: 3)' }]);
  });

  it('enforces the limits: stages, jobs after parallel, parallel, name length, script, duration', () => {
    const stages = Array.from({ length: LIMITS.stages + 1 }, (_, i) => `s${i}`);
    expect(problemsOf({ stages, jobs: { a: { stage: 's0' } } })).toContainEqual({ path: '/stages', message: 'must NOT have more than 50 items' });

    const jobs: PipelineDefinition['jobs'] = {};
    for (let i = 0; i < 5; i++) jobs[`j${i}`] = { stage: 's', parallel: 41 };
    expect(problemsOf({ stages: ['s'], jobs })).toEqual([{ path: '/jobs', message: '205 jobs once `parallel` makes its copies: at most 200' }]);

    const many: PipelineDefinition['jobs'] = {};
    for (let i = 0; i <= LIMITS.jobs; i++) many[`j${i}`] = { stage: 's' };
    expect(problemsOf({ stages: ['s'], jobs: many })).toContainEqual({ path: '/jobs', message: 'must NOT have more than 200 properties' });

    const long = 'x'.repeat(LIMITS.name + 1);
    expect(
      problemsOf({
        stages: ['s', long],
        jobs: { [long]: { stage: 's', parallel: 51, script: Array(101).fill('echo'), duration_s: [0, 3601] }, ' padded': { stage: 's' } },
      }),
    ).toEqual(
      expect.arrayContaining([
        { path: '/stages/1', message: 'must NOT have more than 100 characters' },
        { path: `/jobs/${long}`, message: 'job names are 1–100 characters, without control characters or blanks at either end' },
        { path: '/jobs/ padded', message: 'job names are 1–100 characters, without control characters or blanks at either end' },
        { path: `/jobs/${long}/parallel`, message: 'must be <= 50' },
        { path: `/jobs/${long}/script`, message: 'must NOT have more than 100 items' },
        { path: `/jobs/${long}/duration_s/1`, message: 'must be <= 3600' },
      ]),
    );
  });

  it('reports duration_s with min above max, and NaN (YAML `.nan`) where a number is due', () => {
    const definition = example();
    definition.jobs.compile = { stage: 'build', duration_s: [5, 2], fail_rate: Number.NaN };
    // Ajv's bounds refuse NaN (it passes neither `<=` nor `>=`): nothing NaN reaches the engine or the database.
    expect(problemsOf(definition)).toEqual([
      { path: '/jobs/compile/fail_rate', message: 'must be <= 1' },
      { path: '/jobs/compile/fail_rate', message: 'must be >= 0' },
      { path: '/jobs/compile/duration_s', message: 'min (5) must not be greater than max (2)' },
    ]);
  });

  it('reports every problem at once, shape and graph together', () => {
    const problems = problemsOf({
      stages: ['build'],
      jobs: { a: { stage: 'build', needs: ['nope'], when: 'never' }, b: { stage: 'deploy' } },
    });
    expect(problems.map((problem) => problem.path).sort()).toEqual(['/jobs/a/needs/0', '/jobs/a/when', '/jobs/b/stage']);
  });

  it('is safe on names that are Object.prototype properties', () => {
    const jobs = JSON.parse('{"constructor": {"stage": "s", "needs": ["toString", "__proto__"]}, "toString": {"stage": "s"}}') as PipelineDefinition['jobs'];
    expect(problemsOf({ stages: ['s'], jobs })).toEqual([{ path: '/jobs/constructor/needs/1', message: 'unknown job `__proto__`' }]);
  });

  it('caps a hostile flood of problems at MAX_PROBLEMS, saying how many more there were', () => {
    const needs = Array.from({ length: LIMITS.needs }, (_, i) => `missing${i}`);
    const problems = problemsOf({ stages: ['s'], jobs: { a: { stage: 's', needs } } });
    expect(problems).toHaveLength(MAX_PROBLEMS);
    expect(problems.at(-1)).toEqual({ path: '', message: `and ${LIMITS.needs - MAX_PROBLEMS + 1} more problems` });
  });
});
