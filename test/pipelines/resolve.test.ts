import { describe, expect, it } from 'vitest';
import type { PipelineDefinition } from '../../src/pipelines/definition.js';
import { DEFAULT_JOB_DURATION_S, resolvePipeline } from '../../src/pipelines/resolve.js';
import { validateDefinition } from '../../src/pipelines/validate.js';

function resolve(definition: PipelineDefinition, defaultFailRate = 0.5) {
  expect(validateDefinition(definition).valid).toBe(true);
  return resolvePipeline(definition, { defaultFailRate });
}

const needsOf = (jobs: ReturnType<typeof resolve>) => Object.fromEntries(jobs.map((job) => [job.name, job.needs]));

describe('resolvePipeline', () => {
  it("resolves the issue's example: copies, needs, defaults, pipeline order", () => {
    const jobs = resolve({
      stages: ['build', 'test', 'deploy'],
      jobs: {
        release: { stage: 'deploy', when: 'manual' }, // listed first, runs last: stage order wins
        compile: { stage: 'build', script: ['npm ci', 'npm run build'], duration_s: [2, 4] },
        unit: { stage: 'test', needs: ['compile'], fail_rate: 0.2, artifacts: true },
        lint: { stage: 'test', needs: ['compile'], allow_failure: true },
        e2e: { stage: 'test', needs: ['compile'], parallel: 3 },
      },
    });
    expect(jobs.map((job) => job.name)).toEqual(['compile', 'unit', 'lint', 'e2e 1/3', 'e2e 2/3', 'e2e 3/3', 'release']);
    expect(needsOf(jobs)).toEqual({
      compile: [],
      unit: ['compile'],
      lint: ['compile'],
      'e2e 1/3': ['compile'],
      'e2e 2/3': ['compile'],
      'e2e 3/3': ['compile'],
      release: ['compile', 'unit', 'lint', 'e2e 1/3', 'e2e 2/3', 'e2e 3/3'],
    });
    const [compile, unit, , e2e2] = [jobs[0], jobs[1], jobs[2], jobs[4]];
    expect(compile).toEqual({
      name: 'compile',
      job: 'compile',
      stage: 'build',
      stage_index: 0,
      needs: [],
      script: ['npm ci', 'npm run build'],
      duration_s: [2, 4],
      fail_rate: 0.5,
      allow_failure: false,
      when: 'on_success',
      parallel: null,
      artifacts: false,
    });
    expect(unit).toMatchObject({ fail_rate: 0.2, artifacts: true, duration_s: DEFAULT_JOB_DURATION_S, script: [] });
    expect(e2e2).toMatchObject({ job: 'e2e', stage_index: 1, parallel: { index: 2, total: 3 } });
    // GitLab: a manual job is allowed to fail unless it says otherwise.
    expect(jobs.at(-1)).toMatchObject({ when: 'manual', allow_failure: true });
  });

  it('makes a job without needs wait for every job of the earlier stages, and `needs: []` for none', () => {
    const jobs = resolve({
      stages: ['a', 'b', 'c'],
      jobs: {
        a1: { stage: 'a' },
        a2: { stage: 'a', parallel: 2 },
        b1: { stage: 'b', needs: [] },
        b2: { stage: 'b' },
        c1: { stage: 'c' },
        c2: { stage: 'c', needs: [] },
      },
    });
    expect(needsOf(jobs)).toEqual({
      a1: [],
      'a2 1/2': [],
      'a2 2/2': [],
      b1: [],
      b2: ['a1', 'a2 1/2', 'a2 2/2'],
      c1: ['a1', 'a2 1/2', 'a2 2/2', 'b1', 'b2'],
      c2: [],
    });
  });

  it('expands needs on a parallel job to all its copies, in pipeline order, and allows needs within a stage', () => {
    const jobs = resolve({
      stages: ['test'],
      jobs: {
        report: { stage: 'test', needs: ['shard', 'setup'], when: 'always', allow_failure: false },
        setup: { stage: 'test', needs: [] },
        shard: { stage: 'test', needs: ['setup'], parallel: 2 },
      },
    });
    expect(needsOf(jobs)).toEqual({ report: ['setup', 'shard 1/2', 'shard 2/2'], setup: [], 'shard 1/2': ['setup'], 'shard 2/2': ['setup'] });
    expect(jobs[0]).toMatchObject({ when: 'always', allow_failure: false });
  });

  it('names a single parallel copy `name 1/1`, and gives each job its own needs list', () => {
    const jobs = resolve({ stages: ['s', 't'], jobs: { one: { stage: 's', parallel: 1 }, x: { stage: 't', parallel: 2 } } });
    expect(jobs.map((job) => job.name)).toEqual(['one 1/1', 'x 1/2', 'x 2/2']);
    expect(jobs[1]?.needs).not.toBe(jobs[2]?.needs);
  });

  it('uses the given default fail rate for jobs that name none', () => {
    const jobs = resolve({ stages: ['s'], jobs: { a: { stage: 's' }, b: { stage: 's', fail_rate: 0 } } }, 0.25);
    expect(jobs.map((job) => job.fail_rate)).toEqual([0.25, 0]);
  });

  it('resolves the largest graph allowed (200 jobs, each after all before) without trouble', () => {
    const stages = Array.from({ length: 50 }, (_, i) => `s${i}`);
    const jobs: PipelineDefinition['jobs'] = {};
    stages.forEach((stage) => (jobs[stage] = { stage, parallel: 4 }));
    const resolved = resolve({ stages, jobs });
    expect(resolved).toHaveLength(200);
    expect(resolved.at(-1)?.needs).toHaveLength(196);
  });
});
