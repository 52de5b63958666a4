import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WHEN_VALUES, type PipelineDefinition, type When } from '../../src/pipelines/definition.js';
import {
  JOB_STATUSES,
  TERMINAL_JOB_STATUSES,
  advance,
  buildStatusOf,
  cancelBuild,
  cancelJob,
  initialStatuses,
  play,
  replanAfterRetry,
  type JobChange,
  type JobState,
  type JobStatus,
} from '../../src/pipelines/progress.js';
import { resolvePipeline } from '../../src/pipelines/resolve.js';
import { validateDefinition } from '../../src/pipelines/validate.js';

/** A freshly planned build of a definition: every job `created`, then initialStatuses() applied. */
function plan(definition: PipelineDefinition): JobState[] {
  expect(validateDefinition(definition).valid).toBe(true);
  const created: JobState[] = resolvePipeline(definition, { defaultFailRate: 0.5 }).map(({ name, needs, when, allow_failure }) => ({
    name,
    needs,
    when,
    allow_failure,
    status: 'created',
  }));
  return apply(created, initialStatuses(created));
}

/** A job built by hand: `on_success`, not allowed to fail, `created`, unless told otherwise. */
function job(name: string, needs: string[] = [], more: Partial<JobState> = {}): JobState {
  return { name, needs, when: 'on_success', allow_failure: false, status: 'created', ...more };
}

/** Applies changes as the engine writes them: each `from` must be the job's current status. */
function apply(jobs: readonly JobState[], changes: readonly JobChange[]): JobState[] {
  const next = jobs.map((state) => ({ ...state }));
  for (const change of changes) {
    const state = next.find((candidate) => candidate.name === change.name);
    expect(state, `change for unknown job ${change.name}`).toBeDefined();
    expect(state?.status, `${change.name} moved from ${change.from}`).toBe(change.from);
    if (state) state.status = change.to;
  }
  return next;
}

/** What the engine does around a job's run: claim it (`queued` → `running`). */
function claim(jobs: readonly JobState[], ...names: string[]): JobState[] {
  return apply(
    jobs,
    names.map((name) => ({ name, from: 'queued', to: 'running' })),
  );
}

/** … then end it (`running` → `success`/`fail`) and advance the build in the same transaction. */
function finish(jobs: readonly JobState[], name: string, outcome: 'success' | 'fail'): JobState[] {
  const ended = apply(jobs, [{ name, from: 'running', to: outcome }]);
  return apply(ended, advance(ended));
}

/** Claims and ends a queued job in one go. */
function run(jobs: readonly JobState[], name: string, outcome: 'success' | 'fail' = 'success'): JobState[] {
  return finish(claim(jobs, name), name, outcome);
}

const statuses = (jobs: readonly JobState[]) => Object.fromEntries(jobs.map((state) => [state.name, state.status]));
const named = (jobs: readonly JobState[], ...names: string[]) => jobs.filter((state) => names.includes(state.name));
const chain = (length: number, more: (index: number) => Partial<JobState> = () => ({})) =>
  Array.from({ length }, (_, index) => job(`j${index}`, index === 0 ? [] : [`j${index - 1}`], more(index)));

const ISSUE_EXAMPLE: PipelineDefinition = {
  stages: ['build', 'test', 'deploy'],
  jobs: {
    compile: { stage: 'build' },
    unit: { stage: 'test', needs: ['compile'] },
    lint: { stage: 'test', needs: ['compile'], allow_failure: true },
    e2e: { stage: 'test', needs: ['compile'], parallel: 3 },
    release: { stage: 'deploy', when: 'manual' },
  },
};

describe('statuses', () => {
  it('lists the job statuses, terminal ones a subset', () => {
    expect(JOB_STATUSES).toEqual(['created', 'queued', 'running', 'success', 'fail', 'canceled', 'skipped', 'manual']);
    expect(TERMINAL_JOB_STATUSES).toEqual(['success', 'fail', 'canceled', 'skipped']);
    for (const status of TERMINAL_JOB_STATUSES) expect(JOB_STATUSES).toContain(status);
  });
});

describe("the issue's example, walked step by step", () => {
  it('runs compile, then the test stage together, then waits for release to be played', () => {
    let jobs = plan(ISSUE_EXAMPLE);
    expect(statuses(jobs)).toEqual({
      compile: 'queued',
      unit: 'created',
      lint: 'created',
      'e2e 1/3': 'created',
      'e2e 2/3': 'created',
      'e2e 3/3': 'created',
      release: 'created',
    });
    expect(buildStatusOf(jobs, false)).toEqual({ status: 'queued', over: false, warning: false });

    jobs = claim(jobs, 'compile');
    expect(advance(jobs)).toEqual([]);
    expect(buildStatusOf(jobs, true)).toEqual({ status: 'running', over: false, warning: false });

    const ended = apply(jobs, [{ name: 'compile', from: 'running', to: 'success' }]);
    // The whole test stage, parallel copies included, is released at once, in pipeline order; release still waits.
    expect(advance(ended)).toEqual(
      ['unit', 'lint', 'e2e 1/3', 'e2e 2/3', 'e2e 3/3'].map((name) => ({ name, from: 'created', to: 'queued' })),
    );
    jobs = apply(ended, advance(ended));

    jobs = run(jobs, 'unit');
    jobs = run(jobs, 'lint', 'fail'); // allowed to fail
    jobs = run(jobs, 'e2e 1/3');
    jobs = run(jobs, 'e2e 3/3');
    expect(statuses(named(jobs, 'e2e 2/3', 'release'))).toEqual({ 'e2e 2/3': 'queued', release: 'created' });
    expect(buildStatusOf(jobs, true)).toEqual({ status: 'running', over: false, warning: true });

    jobs = claim(jobs, 'e2e 2/3');
    const last = apply(jobs, [{ name: 'e2e 2/3', from: 'running', to: 'success' }]);
    expect(advance(last)).toEqual([{ name: 'release', from: 'created', to: 'manual' }]);
    jobs = apply(last, advance(last));
    // An unplayed manual job does not hold the build open: it is over, a success with a warning (lint).
    expect(buildStatusOf(jobs, true)).toEqual({ status: 'success', over: true, warning: true });

    expect(play(jobs, 'release')).toEqual([{ name: 'release', from: 'manual', to: 'queued' }]);
    jobs = apply(jobs, play(jobs, 'release') ?? []);
    expect(buildStatusOf(jobs, true)).toEqual({ status: 'running', over: false, warning: true });
    jobs = run(jobs, 'release', 'fail'); // manual jobs are allowed to fail by default
    expect(buildStatusOf(jobs, true)).toEqual({ status: 'success', over: true, warning: true });
  });

  it('skips release and fails the build when a test job fails, without waiting for the others to be played', () => {
    let jobs = plan(ISSUE_EXAMPLE);
    jobs = run(jobs, 'compile');
    jobs = run(jobs, 'unit', 'fail');
    expect(statuses(named(jobs, 'release'))).toEqual({ release: 'created' }); // its other needs still run
    for (const name of ['lint', 'e2e 1/3', 'e2e 2/3']) jobs = run(jobs, name);
    expect(buildStatusOf(jobs, true).over).toBe(false);
    jobs = claim(jobs, 'e2e 3/3');
    const ended = apply(jobs, [{ name: 'e2e 3/3', from: 'running', to: 'success' }]);
    expect(advance(ended)).toEqual([{ name: 'release', from: 'created', to: 'skipped' }]);
    jobs = apply(ended, advance(ended));
    expect(buildStatusOf(jobs, true)).toEqual({ status: 'fail', over: true, warning: false });
  });

  it('skips everything after compile when it fails, in one advance', () => {
    const jobs = run(plan(ISSUE_EXAMPLE), 'compile', 'fail');
    expect(statuses(jobs)).toEqual({
      compile: 'fail',
      unit: 'skipped',
      lint: 'skipped',
      'e2e 1/3': 'skipped',
      'e2e 2/3': 'skipped',
      'e2e 3/3': 'skipped',
      release: 'skipped',
    });
    expect(buildStatusOf(jobs, true)).toEqual({ status: 'fail', over: true, warning: false });
  });
});

describe('needs', () => {
  it('makes a job without needs wait for the whole earlier stage (stage order)', () => {
    let jobs = plan({ stages: ['a', 'b'], jobs: { a1: { stage: 'a' }, a2: { stage: 'a', parallel: 2 }, b: { stage: 'b' } } });
    expect(statuses(jobs)).toEqual({ a1: 'queued', 'a2 1/2': 'queued', 'a2 2/2': 'queued', b: 'created' });
    jobs = run(jobs, 'a1');
    jobs = run(jobs, 'a2 2/2');
    expect(statuses(named(jobs, 'b'))).toEqual({ b: 'created' });
    jobs = run(jobs, 'a2 1/2');
    expect(statuses(named(jobs, 'b'))).toEqual({ b: 'queued' });
  });

  it('starts a job with `needs: []` at once, whatever its stage', () => {
    const jobs = plan({ stages: ['a', 'b', 'c'], jobs: { a: { stage: 'a' }, b: { stage: 'b' }, c: { stage: 'c', needs: [] } } });
    expect(statuses(jobs)).toEqual({ a: 'queued', b: 'created', c: 'queued' });
  });

  it('queues the copies of a parallel job together, and a job needing it waits for every copy', () => {
    let jobs = plan({
      stages: ['a', 'b'],
      jobs: { setup: { stage: 'a' }, shard: { stage: 'a', needs: ['setup'], parallel: 3 }, report: { stage: 'b', needs: ['shard'] } },
    });
    const ended = apply(claim(jobs, 'setup'), [{ name: 'setup', from: 'running', to: 'success' }]);
    expect(advance(ended)).toEqual(['shard 1/3', 'shard 2/3', 'shard 3/3'].map((name) => ({ name, from: 'created', to: 'queued' })));
    jobs = apply(ended, advance(ended));
    jobs = run(jobs, 'shard 3/3');
    jobs = run(jobs, 'shard 1/3');
    expect(statuses(named(jobs, 'report'))).toEqual({ report: 'created' });
    jobs = run(jobs, 'shard 2/3', 'fail');
    expect(statuses(named(jobs, 'report'))).toEqual({ report: 'skipped' });
  });

  it('keeps pipeline order in its changes when a job needs one listed after it', () => {
    const jobs = [job('late', ['early']), job('other', ['early']), job('early', [], { status: 'success' })];
    expect(advance(jobs)).toEqual([
      { name: 'late', from: 'created', to: 'queued' },
      { name: 'other', from: 'created', to: 'queued' },
    ]);
  });

  it('waits while a need is queued, running or manual, and moves nothing but created jobs', () => {
    for (const status of ['created', 'queued', 'running', 'manual'] as const) {
      expect(advance([job('need', ['x'], { status }), job('x', [], { status: 'running' }), job('after', ['need'])])).toEqual([]);
    }
    expect(advance(JOB_STATUSES.filter((status) => status !== 'created').map((status) => job(status, [], { status })))).toEqual([]);
  });

  it('ignores a need naming no job of the list', () => {
    expect(advance([job('a', ['ghost'])])).toEqual([{ name: 'a', from: 'created', to: 'queued' }]);
    expect(buildStatusOf([job('a', ['ghost'])], false)).toMatchObject({ over: false });
  });
});

describe('when and the needs’ outcome', () => {
  /** What a created job with `when` does once its needs end as `needs` say. */
  function decide(when: When, needs: { status: JobStatus; allow_failure?: boolean }[]): JobStatus {
    const jobs = [
      ...needs.map((need, index) => job(`n${index}`, [], { status: need.status, allow_failure: need.allow_failure ?? false })),
      job('it', needs.map((_, index) => `n${index}`), { when }),
    ];
    return advance(jobs).find((change) => change.name === 'it')?.to ?? 'created';
  }

  it('follows the table: on_success, on_failure, always, manual against each outcome', () => {
    const outcomes: Record<string, { status: JobStatus; allow_failure?: boolean }[]> = {
      none: [],
      success: [{ status: 'success' }, { status: 'success' }],
      allowedFail: [{ status: 'success' }, { status: 'fail', allow_failure: true }],
      failed: [{ status: 'fail' }, { status: 'success' }],
      canceled: [{ status: 'canceled' }, { status: 'success' }],
      skipped: [{ status: 'skipped' }, { status: 'success' }],
      // Precedence: a failure wins over a cancel and a skip, a cancel over a skip.
      failedAndCanceled: [{ status: 'skipped' }, { status: 'canceled' }, { status: 'fail' }],
      canceledAndSkipped: [{ status: 'skipped' }, { status: 'canceled' }],
    };
    const columns = Object.keys(outcomes);
    const expected: Record<When, JobStatus[]> = {
      // One column per outcome, in the order above.
      on_success: ['queued', 'queued', 'queued', 'skipped', 'skipped', 'skipped', 'skipped', 'skipped'],
      on_failure: ['skipped', 'skipped', 'skipped', 'queued', 'skipped', 'skipped', 'queued', 'skipped'],
      always: ['queued', 'queued', 'queued', 'queued', 'queued', 'queued', 'queued', 'queued'],
      manual: ['manual', 'manual', 'manual', 'skipped', 'skipped', 'skipped', 'skipped', 'skipped'],
    };
    const actual = Object.fromEntries(WHEN_VALUES.map((when) => [when, columns.map((outcome) => decide(when, outcomes[outcome] ?? []))]));
    expect(actual).toEqual(expected);
  });

  it('counts an allowed failure as a success, with a warning on the build', () => {
    let jobs = [
      job('flaky', [], { allow_failure: true, status: 'queued' }),
      job('next', ['flaky']),
      job('cleanup', ['flaky'], { when: 'on_failure' }),
    ];
    jobs = run(jobs, 'flaky', 'fail');
    expect(statuses(jobs)).toEqual({ flaky: 'fail', next: 'queued', cleanup: 'skipped' });
    jobs = run(jobs, 'next');
    expect(buildStatusOf(jobs, true)).toEqual({ status: 'success', over: true, warning: true });
  });

  it('runs an on_failure job only after a failure, and the build still fails', () => {
    const definition: PipelineDefinition = {
      stages: ['test', 'cleanup'],
      jobs: { test: { stage: 'test' }, rollback: { stage: 'cleanup', when: 'on_failure' } },
    };
    const passed = run(plan(definition), 'test');
    expect(statuses(passed)).toEqual({ test: 'success', rollback: 'skipped' });
    expect(buildStatusOf(passed, true)).toEqual({ status: 'success', over: true, warning: false });

    const failed = run(plan(definition), 'test', 'fail');
    expect(statuses(failed)).toEqual({ test: 'fail', rollback: 'queued' });
    expect(buildStatusOf(failed, true)).toMatchObject({ status: 'running', over: false });
    const done = run(failed, 'rollback');
    expect(buildStatusOf(done, true)).toEqual({ status: 'fail', over: true, warning: false });
  });

  it('runs an always job after a success, a failure and a cancel', () => {
    const jobs = (status: JobStatus) => [job('test', [], { status }), job('report', ['test'], { when: 'always' })];
    for (const status of ['success', 'fail', 'canceled', 'skipped'] as const) {
      expect(advance(jobs(status))).toEqual([{ name: 'report', from: 'created', to: 'queued' }]);
    }
    expect(advance(jobs('running'))).toEqual([]);
  });
});

describe('manual jobs', () => {
  const definition: PipelineDefinition = {
    stages: ['build', 'deploy', 'verify'],
    jobs: {
      build: { stage: 'build' },
      deploy: { stage: 'deploy', when: 'manual' },
      smoke: { stage: 'verify', needs: ['deploy'] },
      announce: { stage: 'verify', needs: ['smoke'], when: 'always' },
    },
  };

  it('waits for a play, holding its dependents (even always ones) in created while the build is over', () => {
    let jobs = run(plan(definition), 'build');
    expect(statuses(jobs)).toEqual({ build: 'success', deploy: 'manual', smoke: 'created', announce: 'created' });
    expect(advance(jobs)).toEqual([]);
    expect(buildStatusOf(jobs, true)).toEqual({ status: 'success', over: true, warning: false });

    jobs = apply(jobs, play(jobs, 'deploy') ?? []);
    expect(buildStatusOf(jobs, true)).toEqual({ status: 'running', over: false, warning: false });
    jobs = run(jobs, 'deploy');
    expect(statuses(named(jobs, 'smoke', 'announce'))).toEqual({ smoke: 'queued', announce: 'created' });
    jobs = run(jobs, 'smoke', 'fail');
    expect(statuses(named(jobs, 'announce'))).toEqual({ announce: 'queued' });
    jobs = run(jobs, 'announce');
    expect(buildStatusOf(jobs, true)).toEqual({ status: 'fail', over: true, warning: false });
  });

  it('makes a manual job with no needs manual at once, and a build of only manual jobs over and a success', () => {
    const jobs = plan({ stages: ['s'], jobs: { a: { stage: 's', when: 'manual' }, b: { stage: 's', when: 'manual', parallel: 2 } } });
    expect(statuses(jobs)).toEqual({ a: 'manual', 'b 1/2': 'manual', 'b 2/2': 'manual' });
    expect(buildStatusOf(jobs, false)).toEqual({ status: 'success', over: true, warning: false });
  });

  it('fails the build when a played manual job not allowed to fail fails', () => {
    let jobs = [job('gate', [], { when: 'manual', status: 'manual' })];
    jobs = apply(jobs, play(jobs, 'gate') ?? []);
    jobs = run(jobs, 'gate', 'fail');
    expect(buildStatusOf(jobs, true)).toEqual({ status: 'fail', over: true, warning: false });
  });

  it('is not over while a created job can still move without a play', () => {
    // `b`'s needs are all over but advance() has not run yet: it can move.
    const ready = [job('a', [], { status: 'success' }), job('b', ['a'])];
    expect(buildStatusOf(ready, true)).toEqual({ status: 'running', over: false, warning: false });
    // `c` waits on `b`, which waits on the unplayed `m`: nothing moves without a play.
    const blocked = [job('m', [], { when: 'manual', status: 'manual' }), job('b', ['m']), job('c', ['b'])];
    expect(buildStatusOf(blocked, true)).toEqual({ status: 'success', over: true, warning: false });
    // Waiting on a manual job and a running one: running holds the build open.
    const mixed = [...blocked, job('r', [], { status: 'running' }), job('d', ['m', 'r'])];
    expect(buildStatusOf(mixed, true)).toMatchObject({ status: 'running', over: false });
  });
});

describe('buildStatusOf', () => {
  it('is queued before any job was claimed, running after, and over with no jobs at all', () => {
    const jobs = [job('a', [], { status: 'queued' })];
    expect(buildStatusOf(jobs, false)).toEqual({ status: 'queued', over: false, warning: false });
    expect(buildStatusOf(jobs, true)).toEqual({ status: 'running', over: false, warning: false });
    expect(buildStatusOf([], false)).toEqual({ status: 'success', over: true, warning: false });
  });

  it('is fail before canceled before success once over', () => {
    const over = (...list: JobStatus[]) => buildStatusOf(list.map((status, index) => job(`j${index}`, [], { status })), true).status;
    expect(over('success', 'canceled', 'fail', 'skipped')).toBe('fail');
    expect(over('success', 'canceled', 'skipped')).toBe('canceled');
    expect(over('success', 'skipped')).toBe('success');
    expect(over('skipped')).toBe('success');
  });
});

describe('skips cascade', () => {
  it('skips a whole chain in one advance, and an always job at its end still runs', () => {
    const jobs = [...chain(5), job('report', ['j4'], { when: 'always' })];
    const failed = apply(jobs, [{ name: 'j0', from: 'created', to: 'fail' }]);
    expect(advance(failed)).toEqual([
      ...['j1', 'j2', 'j3', 'j4'].map((name) => ({ name, from: 'created', to: 'skipped' })),
      { name: 'report', from: 'created', to: 'queued' },
    ]);
  });

  it('cascades from initialStatuses too: an on_failure job with no needs is skipped, and so are its dependents', () => {
    const jobs = [job('a', [], { when: 'on_failure' }), job('b', ['a']), job('c', ['b'], { when: 'on_failure' }), job('d', [])];
    expect(initialStatuses(jobs)).toEqual([
      { name: 'a', from: 'created', to: 'skipped' },
      { name: 'b', from: 'created', to: 'skipped' },
      { name: 'c', from: 'created', to: 'skipped' },
      { name: 'd', from: 'created', to: 'queued' },
    ]);
  });
});

describe('cancelBuild', () => {
  it('cancels what is queued or running, skips what is created or manual, leaves what is over', () => {
    const jobs = JOB_STATUSES.map((status) => job(status, [], { status }));
    expect(cancelBuild(jobs)).toEqual([
      { name: 'created', from: 'created', to: 'skipped' },
      { name: 'queued', from: 'queued', to: 'canceled' },
      { name: 'running', from: 'running', to: 'canceled' },
      { name: 'manual', from: 'manual', to: 'skipped' },
    ]);
    const canceled = apply(jobs, cancelBuild(jobs));
    expect(advance(canceled)).toEqual([]);
    expect(buildStatusOf(canceled, true)).toEqual({ status: 'fail', over: true, warning: false });
  });

  it('leaves a canceled build canceled, even one that had not started', () => {
    const jobs = plan(ISSUE_EXAMPLE);
    const canceled = apply(jobs, cancelBuild(jobs));
    expect(buildStatusOf(canceled, false)).toEqual({ status: 'canceled', over: true, warning: false });
    expect(cancelBuild(canceled)).toEqual([]);
  });
});

describe('cancelJob', () => {
  const graph = () => [
    job('a', [], { status: 'running' }),
    job('next', ['a']),
    job('report', ['a'], { when: 'always' }),
    job('after', ['next'], { when: 'always' }),
    job('other', [], { status: 'running' }),
  ];

  it('cancels the job, then advances its dependents: always ones run, on_success ones are skipped', () => {
    const jobs = graph();
    expect(cancelJob(jobs, 'a')).toEqual([
      { name: 'a', from: 'running', to: 'canceled' },
      { name: 'next', from: 'created', to: 'skipped' },
      { name: 'report', from: 'created', to: 'queued' },
      { name: 'after', from: 'created', to: 'queued' },
    ]);
    let next = apply(jobs, cancelJob(jobs, 'a') ?? []);
    next = run(next, 'report');
    next = run(next, 'after');
    next = finish(next, 'other', 'success');
    expect(buildStatusOf(next, true)).toEqual({ status: 'canceled', over: true, warning: false });
  });

  it('cancels a created, queued or manual job as well', () => {
    const jobs = [job('a', [], { status: 'running' }), job('b', ['a']), job('c', ['b'], { when: 'always' })];
    expect(cancelJob(jobs, 'b')).toEqual([
      { name: 'b', from: 'created', to: 'canceled' },
      { name: 'c', from: 'created', to: 'queued' },
    ]);
    expect(cancelJob([job('q', [], { status: 'queued' })], 'q')).toEqual([{ name: 'q', from: 'queued', to: 'canceled' }]);
    const manual = [job('m', [], { when: 'manual', status: 'manual' }), job('d', ['m'])];
    expect(cancelJob(manual, 'm')).toEqual([
      { name: 'm', from: 'manual', to: 'canceled' },
      { name: 'd', from: 'created', to: 'skipped' },
    ]);
  });

  it('refuses a job that is over or unknown', () => {
    for (const status of TERMINAL_JOB_STATUSES) expect(cancelJob([job('a', [], { status })], 'a')).toBeUndefined();
    expect(cancelJob(graph(), 'ghost')).toBeUndefined();
  });
});

describe('replanAfterRetry', () => {
  it('queues the job again and takes back the skipped jobs after it, transitively, but not those that ran', () => {
    const jobs = [
      job('a', [], { status: 'fail' }),
      job('b', ['a'], { status: 'skipped' }),
      job('c', ['b'], { status: 'skipped' }),
      job('ran', ['a'], { when: 'on_failure', status: 'success' }),
      job('afterRan', ['ran'], { status: 'skipped' }), // reached only through a job that ran: left alone
      job('both', ['c', 'ran'], { status: 'skipped' }), // reached through c as well: taken back
      job('unrelated', [], { status: 'skipped' }),
      job('waiting', ['a', 'x']), // created: left alone
      job('x', [], { status: 'running' }),
    ];
    expect(replanAfterRetry(jobs, 'a')).toEqual([
      { name: 'a', from: 'fail', to: 'queued' },
      { name: 'b', from: 'skipped', to: 'created' },
      { name: 'c', from: 'skipped', to: 'created' },
      { name: 'both', from: 'skipped', to: 'created' },
    ]);
    let next = apply(jobs, replanAfterRetry(jobs, 'a') ?? []);
    expect(advance(next)).toEqual([]); // the taken-back jobs wait for the retried one
    next = run(next, 'a');
    expect(statuses(named(next, 'b', 'c', 'both'))).toEqual({ b: 'queued', c: 'created', both: 'created' });
    next = run(next, 'b');
    next = run(next, 'c');
    expect(statuses(named(next, 'both'))).toEqual({ both: 'queued' });
  });

  it('does not walk through a dependent that is created, queued, running or manual', () => {
    for (const status of ['created', 'queued', 'running', 'manual'] as const) {
      const jobs = [job('a', [], { status: 'success' }), job('mid', ['a'], { status }), job('end', ['mid'], { status: 'skipped' })];
      expect(replanAfterRetry(jobs, 'a')).toEqual([{ name: 'a', from: 'success', to: 'queued' }]);
    }
  });

  it('retries a canceled job: its skipped dependents wait for it again', () => {
    const running = [job('a', [], { status: 'running' }), job('b', ['a'])];
    const canceled = apply(running, cancelJob(running, 'a') ?? []);
    expect(statuses(canceled)).toEqual({ a: 'canceled', b: 'skipped' });
    expect(replanAfterRetry(canceled, 'a')).toEqual([
      { name: 'a', from: 'canceled', to: 'queued' },
      { name: 'b', from: 'skipped', to: 'created' },
    ]);
  });

  it('refuses a job that is skipped, not over, or unknown', () => {
    for (const status of ['created', 'queued', 'running', 'manual', 'skipped'] as const) {
      expect(replanAfterRetry([job('a', [], { status })], 'a')).toBeUndefined();
    }
    expect(replanAfterRetry([job('a', [], { status: 'fail' })], 'ghost')).toBeUndefined();
  });
});

describe('play', () => {
  it('queues a manual job and refuses any other', () => {
    expect(play([job('m', [], { when: 'manual', status: 'manual' })], 'm')).toEqual([{ name: 'm', from: 'manual', to: 'queued' }]);
    for (const status of JOB_STATUSES.filter((status) => status !== 'manual')) {
      expect(play([job('m', [], { when: 'manual', status })], 'm')).toBeUndefined();
    }
    expect(play([job('m', [], { when: 'manual', status: 'manual' })], 'ghost')).toBeUndefined();
  });
});

describe('the largest graphs (200 jobs)', () => {
  it('skips a chain of 200 in one advance, takes it back on retry, and walks it to the end', () => {
    const jobs = chain(200);
    expect(initialStatuses(jobs)).toEqual([{ name: 'j0', from: 'created', to: 'queued' }]);
    let run0 = apply(jobs, initialStatuses(jobs));
    run0 = run(run0, 'j0', 'fail');
    expect(run0.slice(1).every((state) => state.status === 'skipped')).toBe(true);
    expect(buildStatusOf(run0, true)).toEqual({ status: 'fail', over: true, warning: false });

    const retried = replanAfterRetry(run0, 'j0') ?? [];
    expect(retried).toHaveLength(200);
    let walk = apply(run0, retried);
    for (let index = 0; index < 200; index++) walk = run(walk, `j${index}`);
    expect(walk.every((state) => state.status === 'success')).toBe(true);
    expect(buildStatusOf(walk, true)).toEqual({ status: 'success', over: true, warning: false });
  });

  it('cascades through an on_failure chain of 200 from initialStatuses', () => {
    const changes = initialStatuses(chain(200, () => ({ when: 'on_failure' })));
    expect(changes).toHaveLength(200);
    expect(changes.every((change) => change.to === 'skipped')).toBe(true);
  });

  it('handles 200 jobs each needing all the earlier ones (19,900 needs)', () => {
    const jobs = Array.from({ length: 200 }, (_, index) => job(`j${index}`, Array.from({ length: index }, (_, need) => `j${need}`)));
    let state = apply(jobs, initialStatuses(jobs));
    expect(statuses(state)).toMatchObject({ j0: 'queued', j1: 'created' });
    const failed = run(state, 'j0', 'fail');
    expect(failed.slice(1).every((s) => s.status === 'skipped')).toBe(true);
    expect(replanAfterRetry(failed, 'j0')).toHaveLength(200);
    // Last one to `always`: it still runs after 198 skips.
    const always = jobs.map((s, index) => (index === 199 ? { ...s, when: 'always' as const } : s));
    const cascaded = advance(apply(always, [{ name: 'j0', from: 'created', to: 'fail' }]));
    expect(cascaded).toHaveLength(199);
    expect(cascaded.at(-1)).toEqual({ name: 'j199', from: 'created', to: 'queued' });
    for (let index = 0; index < 200; index++) state = run(state, `j${index}`);
    expect(buildStatusOf(state, true)).toEqual({ status: 'success', over: true, warning: false });
  });
});

describe('properties, on random graphs', () => {
  const graphs = fc
    .array(
      fc.record({
        needs: fc.array(fc.nat(), { maxLength: 4 }),
        when: fc.constantFrom(...WHEN_VALUES),
        allow_failure: fc.boolean(),
        fails: fc.boolean(),
        played: fc.boolean(),
      }),
      { minLength: 1, maxLength: 15 },
    )
    // Needs point to earlier jobs only: a DAG, as validation guarantees.
    .map((specs) =>
      specs.map((spec, index) => ({
        ...spec,
        state: job(`j${index}`, index === 0 ? [] : [...new Set(spec.needs.map((need) => `j${need % index}`))], {
          when: spec.when,
          allow_failure: spec.allow_failure,
        }),
      })),
    );

  it('a run always ends over, advance() is idempotent, and every change starts from the current status', () => {
    fc.assert(
      fc.property(graphs, (specs) => {
        let jobs = apply(
          specs.map((spec) => spec.state),
          initialStatuses(specs.map((spec) => spec.state)),
        );
        for (let step = 0; step < 100; step++) {
          expect(advance(jobs)).toEqual([]);
          const queued = jobs.find((state) => state.status === 'queued');
          const playable = jobs.findIndex((state, index) => state.status === 'manual' && specs[index]?.played);
          if (queued) jobs = run(jobs, queued.name, specs.find((spec) => spec.state.name === queued.name)?.fails ? 'fail' : 'success');
          else if (playable >= 0) jobs = apply(jobs, play(jobs, `j${playable}`) ?? []);
          else break;
        }
        const final = buildStatusOf(jobs, true);
        expect(final.over).toBe(true);
        // Over: what is still created waits on a manual job, directly or through other created jobs.
        const byName = new Map(jobs.map((state) => [state.name, state]));
        const blocked = (state: JobState): boolean =>
          state.needs.some((need) => {
            const other = byName.get(need);
            return other?.status === 'manual' || (other?.status === 'created' && blocked(other));
          });
        for (const state of jobs) if (state.status === 'created') expect(blocked(state)).toBe(true);
        expect(jobs.some((state) => state.status === 'queued' || state.status === 'running')).toBe(false);
      }),
      { numRuns: 300 },
    );
  });
});
