import { describe, expect, it } from 'vitest';
import { artifactName } from '../../src/builds/artifact.js';
import {
  jobFinishedLine,
  planJobRun,
  randomForJob,
  substituteVariables,
  type JobRunPlan,
  type JobRunSubject,
} from '../../src/builds/job-simulator.js';
import { seededRandom, STEPS } from '../../src/builds/simulator.js';
import { defaultPipeline } from '../../src/pipelines/default.js';
import { resolvePipeline, type JobSpec } from '../../src/pipelines/resolve.js';

const SHA = '3f786850e387550fdab836ed7e6dc881de23001b';
const REPO = 'https://github.com/demo/repo';

/** The default pipeline's jobs, resolved as the engine gets them, with `failRate` as BUILD_FAIL_RATE. */
function defaultSpecs(failRate: number): Map<string, JobSpec> {
  const resolved = resolvePipeline(defaultPipeline(failRate), { defaultFailRate: failRate });
  return new Map(resolved.map(({ name, job, script, duration_s, fail_rate, artifacts, parallel }) => [name, { job, script, duration_s, fail_rate, artifacts, parallel }]));
}

function spec(overrides: Partial<JobSpec> = {}): JobSpec {
  return { job: 'build', script: ['npm run build'], duration_s: [1, 3], fail_rate: 0, artifacts: false, parallel: null, ...overrides };
}

function subject(jobSpec: JobSpec, options: { name?: string; attempt?: number; number?: number; branch?: string } = {}): JobRunSubject {
  return {
    project: { name: 'Demo Proj', repo: REPO },
    build: { project_id: 7, number: options.number ?? 12, branch: options.branch ?? 'main', commit_sha: SHA },
    job: { name: options.name ?? jobSpec.job, attempt: options.attempt ?? 1, spec: jobSpec },
  };
}

/** Many plans from distinct seeds: deterministic, so a failure here reproduces. */
function plans(jobSpec: JobSpec, count: number, prefix = 'job'): JobRunPlan[] {
  return Array.from({ length: count }, (_, index) => planJobRun(subject(jobSpec), seededRandom(`${prefix}:${index}`)));
}

const texts = (plan: JobRunPlan) => plan.lines.map((line) => line.text);
const TEST_SUMMARY = /^Tests: (\d+) passed, (\d+) failed, (\d+) total$/;
const SUITE_LINE = /^([✓✗]) suite (\d+)\/(\d+): (\d+) passed, (\d+) failed$/;

/** Jobs of every kind, for the properties every plan has. */
function variety(failRate: number): JobSpec[] {
  return [
    ...[...defaultSpecs(0.5).values()].map((jobSpec) => ({ ...jobSpec, fail_rate: failRate })),
    spec({ fail_rate: failRate }),
    spec({ fail_rate: failRate, script: ['npm ci', 'npm run lint', 'npm run build', 'echo "$CI_JOB_NAME"'], duration_s: [0.5, 40] }),
    spec({ fail_rate: failRate, script: [], duration_s: [0, 0.01] }),
    spec({ fail_rate: failRate, parallel: { index: 2, total: 3 }, duration_s: [2.5, 2.5] }),
  ];
}

describe('randomForJob', () => {
  it('is seeded by seed, project, build number, job name and attempt; Math.random without a seed', () => {
    const job = subject(spec(), { name: 'e2e 2/3', attempt: 2 });
    expect(randomForJob(undefined, job)).toBe(Math.random);
    expect(randomForJob('s', job)()).toBe(seededRandom('s:7:12:e2e 2/3:2')());
    const first = randomForJob('s', job);
    const again = randomForJob('s', job);
    expect([first(), first(), first()]).toEqual([again(), again(), again()]);
    const draw = (over: JobRunSubject) => randomForJob('s', over)();
    expect(draw(job)).not.toBe(draw(subject(spec(), { name: 'e2e 2/3', attempt: 3 })));
    expect(draw(job)).not.toBe(draw(subject(spec(), { name: 'e2e 3/3', attempt: 2 })));
    expect(draw(job)).not.toBe(draw(subject(spec(), { name: 'e2e 2/3', attempt: 2, number: 13 })));
    expect(draw(job)).not.toBe(randomForJob('t', job)());
  });
});

describe('planJobRun', () => {
  it('is pure: the same subject and seed give the same plan', () => {
    for (const jobSpec of variety(0.5)) {
      const job = subject(jobSpec, { attempt: 4 });
      expect(planJobRun(job, randomForJob('pure', job))).toEqual(planJobRun(job, randomForJob('pure', job)));
    }
  });

  it('draws afresh for another attempt of the same job', () => {
    const jobSpec = spec({ duration_s: [1, 30], fail_rate: 0.5 });
    const attempts = Array.from({ length: 20 }, (_, index) => {
      const job = subject(jobSpec, { attempt: index + 1 });
      return planJobRun(job, randomForJob('retry', job));
    });
    expect(new Set(attempts.map((plan) => plan.planned_s)).size).toBeGreaterThan(15);
    expect(new Set(attempts.map((plan) => plan.outcome)).size).toBe(2);
  });

  it('draws planned durations uniformly within spec.duration_s, to the hundredth, over the whole range', () => {
    for (const [min, max] of [[1, 3], [0, 0], [2.5, 2.5], [0.123, 0.456], [0.2, 1], [0, 3600]] as const) {
      const durations = plans(spec({ duration_s: [min, max], fail_rate: 0.5 }), 1000, `range:${min}`).map((plan) => plan.planned_s);
      for (const duration of durations) {
        expect(duration).toBeGreaterThanOrEqual(min);
        expect(duration).toBeLessThanOrEqual(max);
        expect(Math.round(duration * 100) / 100).toBe(duration);
      }
      const width = max - min;
      expect(Math.min(...durations)).toBeLessThanOrEqual(min + width * 0.02 + 0.01);
      expect(Math.max(...durations)).toBeGreaterThanOrEqual(max - width * 0.02 - 0.01);
      const mean = durations.reduce((sum, duration) => sum + duration, 0) / durations.length;
      expect(Math.abs(mean - (min + max) / 2)).toBeLessThanOrEqual(width * 0.05 + 0.01);
    }
    for (const jobSpec of defaultSpecs(0.5).values()) {
      const [min, max] = jobSpec.duration_s as [number, number];
      for (const plan of plans(jobSpec, 500, `default:${jobSpec.job}`)) {
        expect(plan.planned_s).toBeGreaterThanOrEqual(min);
        expect(plan.planned_s).toBeLessThanOrEqual(max);
      }
    }
  });

  it('follows fail_rate: 0 never fails, 1 always fails', () => {
    for (const jobSpec of variety(0)) expect(plans(jobSpec, 300, 'zero').every((plan) => plan.outcome === 'success')).toBe(true);
    for (const jobSpec of variety(1)) expect(plans(jobSpec, 300, 'one').every((plan) => plan.outcome === 'fail')).toBe(true);
  });

  it('fails about as often as fail_rate says: 0.2 over 2000 seeded runs fails 15–25 % of them', () => {
    for (const jobSpec of [spec({ fail_rate: 0.2 }), { ...defaultSpecs(0.5).get('test')!, fail_rate: 0.2 }]) {
      const failed = plans(jobSpec, 2000, 'fifth').filter((plan) => plan.outcome === 'fail').length;
      expect(failed).toBeGreaterThanOrEqual(300);
      expect(failed).toBeLessThanOrEqual(500);
    }
  });

  it('schedules lines from 0, non-decreasing, to the hundredth, none after the duration; a failure ends it early', () => {
    let early = 0;
    for (const jobSpec of variety(0.5)) {
      for (const plan of plans(jobSpec, 400, 'order')) {
        expect(plan.lines.length).toBeGreaterThan(0);
        expect(plan.lines[0]!.at_s).toBe(0);
        for (let index = 1; index < plan.lines.length; index++) {
          expect(plan.lines[index]!.at_s).toBeGreaterThanOrEqual(plan.lines[index - 1]!.at_s);
        }
        for (const line of plan.lines) {
          expect(line.at_s).toBeLessThanOrEqual(plan.duration_s);
          expect(Math.round(line.at_s * 100) / 100).toBe(line.at_s);
          expect(line.text).not.toContain('\n');
        }
        expect(Math.round(plan.duration_s * 100) / 100).toBe(plan.duration_s);
        if (plan.outcome === 'success') {
          expect(plan.duration_s).toBe(plan.planned_s);
        } else {
          // A failing job lasts until its failure: the time of its last line.
          expect(plan.duration_s).toBe(plan.lines.at(-1)!.at_s);
          expect(plan.duration_s).toBeLessThanOrEqual(plan.planned_s);
          if (plan.duration_s < plan.planned_s) early++;
        }
      }
    }
    expect(early).toBeGreaterThan(400);
  });

  it('tells the checkout story of the default pipeline with the real branch, repository and commit', () => {
    const checkout = defaultSpecs(0.5).get('checkout')!;
    const job = subject({ ...checkout, fail_rate: 0 }, { branch: 'feature/login' });
    const plan = planJobRun(job, seededRandom('checkout'));
    expect(texts(plan)).toEqual([
      '==> Step checkout',
      `$ git clone --branch feature/login ${REPO} Demo Proj`,
      `$ git checkout ${SHA}`,
      `HEAD is now at ${SHA.slice(0, 7)} on feature/login`,
      '✓ Step checkout passed',
    ]);
    // Spread over the job's planned time as planRun spreads the step over its share.
    expect(plan.lines.map((line) => line.at_s)).toEqual([0, 0.05, 0.6, 0.95, 1].map((f) => Math.round(plan.planned_s * f * 100) / 100));
    const failed = planJobRun(subject({ ...checkout, fail_rate: 1 }), seededRandom('checkout'));
    expect(texts(failed)).toContain(`fatal: could not read from remote repository ${REPO}: connection reset by peer`);
    expect(texts(failed).at(-1)).toBe('✗ Step checkout failed: the repository could not be fetched');
    expect(failed.duration_s).toBe(failed.planned_s);
  });

  it('tells the install story: npm ci and its packages, or the resolution error', () => {
    const install = defaultSpecs(0.5).get('install')!;
    for (const plan of plans(install, 200, 'install')) {
      const lines = texts(plan);
      expect(lines.slice(0, 2)).toEqual(['==> Step install', '$ npm ci']);
      if (plan.outcome === 'success') {
        expect(lines[2]).toMatch(/^added \d+ packages in /);
        expect(lines[2]!.endsWith(` packages in ${plan.planned_s}s`)).toBe(true);
        expect(lines.at(-1)).toBe('✓ Step install passed');
      } else {
        expect(lines.at(-1)).toBe('✗ Step install failed: a dependency could not be resolved');
      }
    }
  });

  it('tells the test story: suites, and a Tests total line that adds up; failures in it on a failing run', () => {
    const test = defaultSpecs(0.5).get('test')!;
    let failing = 0;
    for (const plan of plans({ ...test, fail_rate: 0.5 }, 500, 'tests')) {
      const lines = texts(plan);
      expect(lines.slice(0, 2)).toEqual(['==> Step test', '$ npm test']);
      const summary = TEST_SUMMARY.exec(lines.find((text) => TEST_SUMMARY.test(text)) ?? '');
      expect(summary).not.toBeNull();
      const [, passed, failed, total] = summary!.map(Number) as [number, number, number, number];
      expect(passed + failed).toBe(total);
      expect(failed > 0).toBe(plan.outcome === 'fail');
      const suites = lines.filter((text) => SUITE_LINE.test(text)).map((text) => SUITE_LINE.exec(text)!);
      expect(suites.length).toBeGreaterThanOrEqual(3);
      expect(suites.length).toBeLessThanOrEqual(9);
      let suitePassed = 0;
      let suiteFailed = 0;
      for (const [, mark, index, of, p, f] of suites) {
        expect(Number(of)).toBe(suites.length);
        expect(mark).toBe(Number(f) > 0 ? '✗' : '✓');
        suitePassed += Number(p);
        suiteFailed += Number(f);
        expect(Number(index)).toBeGreaterThan(0);
      }
      expect([suitePassed, suiteFailed]).toEqual([passed, failed]);
      if (plan.outcome === 'fail') {
        failing++;
        expect(lines.at(-1)).toBe(`✗ Step test failed: ${failed} of ${total} tests failed`);
      } else {
        expect(lines.at(-1)).toBe('✓ Step test passed');
      }
    }
    expect(failing).toBeGreaterThan(150);
  });

  it('tells the package story with the artifact name', () => {
    const pack = defaultSpecs(0.5).get('package')!;
    expect(pack.artifacts).toBe(true);
    const job = subject({ ...pack, fail_rate: 0 }, { number: 42 });
    const lines = texts(planJobRun(job, seededRandom('package')));
    expect(artifactName('Demo Proj', 42)).toBe('demo-proj-42.tar.gz');
    expect(lines).toEqual(['==> Step package', '$ tar -czf demo-proj-42.tar.gz build-info.json build.log', '✓ Step package passed']);
    const failed = texts(planJobRun(subject({ ...pack, fail_rate: 1 }), seededRandom('package')));
    expect(failed.slice(-2)).toEqual(['tar: write error: no space left on device', '✗ Step package failed: the artifact could not be written']);
  });

  it('tells a step story only for a default job whose script is unchanged', () => {
    const test = { ...defaultSpecs(0.5).get('test')!, fail_rate: 0 };
    const changed = texts(planJobRun(subject({ ...test, script: ['npm test', 'npm run e2e'] }), seededRandom('changed')));
    expect(changed).toEqual(['$ npm test', '$ npm run e2e']);
    const renamed = texts(planJobRun(subject({ ...test, job: 'unit' }), seededRandom('renamed')));
    expect(renamed).toEqual(['$ npm test']);
    // The default checkout job's script, `$CI_…` and all, as a custom job prints it: substituted.
    const checkout = { ...defaultSpecs(0.5).get('checkout')!, fail_rate: 0 };
    const custom = texts(planJobRun(subject({ ...checkout, job: 'clone' }, { branch: 'dev' }), seededRandom('clone')));
    expect(custom).toEqual([`$ git clone --branch dev ${REPO} Demo Proj`, `$ git checkout ${SHA}`]);
    for (const step of STEPS) expect(defaultSpecs(0.5).has(step.name)).toBe(true);
  });

  it("prints a custom job's script lines evenly over its duration, CI variables substituted", () => {
    const script = [
      'echo $CI_PROJECT_NAME "$CI_REPOSITORY_URL"',
      'git checkout "$CI_COMMIT_SHA" # on $CI_COMMIT_BRANCH',
      'tar -czf "$CI_PROJECT_NAME-$CI_PIPELINE_IID.tar.gz" ${CI_JOB_NAME}',
      'echo $HOME $CI_COMMIT_SHAX "$CI_UNKNOWN" $ $$ ${CI_JOB_NAME',
    ];
    const plan = planJobRun(subject(spec({ script, duration_s: [8, 8] }), { name: 'pack 1/2', number: 3 }), seededRandom('vars'));
    expect(plan.planned_s).toBe(8);
    expect(plan.lines).toEqual([
      { at_s: 0, text: `$ echo Demo Proj ${REPO}` },
      { at_s: 2, text: `$ git checkout ${SHA} # on main` },
      { at_s: 4, text: '$ tar -czf "Demo Proj-3.tar.gz" pack 1/2' },
      { at_s: 6, text: '$ echo $HOME $CI_COMMIT_SHAX "$CI_UNKNOWN" $ $$ ${CI_JOB_NAME' },
    ]);
    // A value is not expanded again.
    const sneaky = planJobRun(subject(spec({ script: ['git switch $CI_COMMIT_BRANCH'] }), { branch: '$CI_JOB_NAME' }), seededRandom('v'));
    expect(texts(sneaky)).toEqual(['$ git switch $CI_JOB_NAME']);
  });

  it('fails a custom job at a drawn line and point: the lines up to it, then the command exiting', () => {
    const script = ['npm ci', 'npm run lint', 'npm run build --prefix "$CI_PROJECT_NAME"'];
    const failedAt = new Set<number>();
    for (const plan of plans(spec({ script, fail_rate: 1, duration_s: [3, 9] }), 600, 'custom-fail')) {
      const lines = texts(plan);
      const ran = lines.length - 1;
      expect(ran).toBeGreaterThanOrEqual(1);
      expect(ran).toBeLessThanOrEqual(script.length);
      failedAt.add(ran);
      const command = lines[ran - 1]!.slice(2);
      expect(lines.slice(0, ran)).toEqual(['$ npm ci', '$ npm run lint', '$ npm run build --prefix Demo Proj'].slice(0, ran));
      expect(lines.at(-1)).toBe(`${command} exited with code 1`);
      // Within its line's slot.
      expect(plan.duration_s).toBeGreaterThanOrEqual(plan.lines[ran - 1]!.at_s);
      expect(plan.duration_s).toBeLessThanOrEqual(Math.round(((plan.planned_s * ran) / script.length) * 100) / 100);
    }
    expect([...failedAt].sort()).toEqual([1, 2, 3]);
  });

  it('says so in the first line of a copy of a parallel job', () => {
    for (const fail_rate of [0, 1]) {
      const plan = planJobRun(subject(spec({ parallel: { index: 2, total: 3 }, fail_rate }), { name: 'build 2/3' }), seededRandom('par'));
      expect(plan.lines[0]).toEqual({ at_s: 0, text: 'Parallel copy 2 of 3' });
      expect(plan.lines[1]).toEqual({ at_s: 0, text: '$ npm run build' });
    }
    const test = defaultSpecs(0.5).get('test')!;
    const copy = planJobRun(subject({ ...test, parallel: { index: 1, total: 2 } }, { name: 'test 1/2' }), seededRandom('par'));
    expect(texts(copy).slice(0, 2)).toEqual(['Parallel copy 1 of 2', '==> Step test']);
    expect(texts(planJobRun(subject(spec()), seededRandom('par'))).some((text) => text.startsWith('Parallel'))).toBe(false);
  });

  it('prints "Running <job name>…" for a job without script', () => {
    const ok = planJobRun(subject(spec({ script: [], duration_s: [2, 2] }), { name: 'deploy 1/2' }), seededRandom('noscript'));
    expect(ok).toEqual({ outcome: 'success', planned_s: 2, duration_s: 2, lines: [{ at_s: 0, text: 'Running deploy 1/2…' }] });
    const failed = planJobRun(subject(spec({ script: [], fail_rate: 1 }), { name: 'deploy' }), seededRandom('noscript'));
    expect(texts(failed)).toEqual(['Running deploy…', 'deploy exited with code 1']);
    expect(failed.duration_s).toBe(failed.lines[1]!.at_s);
  });

  it('substitutes in linear time: hostile 1000-character script lines just run', () => {
    const hostile = [
      '"$'.repeat(500),
      '$'.repeat(1000),
      '${'.repeat(500),
      `"$${'A'.repeat(998)}`,
      `"$CI_JOB_NAME${'_'.repeat(986)}`,
      '"$CI_JOB_NAME'.repeat(76) + '"'.repeat(12),
      '$CI_JOB_NAME'.repeat(83) + '$CI_',
    ];
    for (const line of hostile) expect(line.length).toBeLessThanOrEqual(1000);
    const script = Array.from({ length: 100 }, (_, index) => hostile[index % hostile.length]!);
    const started = performance.now();
    const plan = planJobRun(subject(spec({ script, fail_rate: 0 }), { name: 'x' }), seededRandom('hostile'));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(plan.lines).toHaveLength(100);
    expect(plan.lines[0]!.text).toBe(`$ ${'"$'.repeat(500)}`);
    expect(plan.lines[4]!.text).toBe(`$ ${hostile[4]}`);
    expect(plan.lines[6]!.text).toBe(`$ ${'x'.repeat(83)}$CI_`);
    const values = new Map([['V', 'v']]);
    expect(substituteVariables('"$V"$V${V}"$V', values)).toBe('vvv"v');
  });
});

describe('jobFinishedLine', () => {
  it("states the outcome and the duration in GitLab's words", () => {
    expect(jobFinishedLine('success', 1.23)).toBe('Job succeeded in 1.23 s\n');
    expect(jobFinishedLine('fail', 1.23)).toBe('ERROR: Job failed in 1.23 s\n');
    expect(jobFinishedLine('success', 2)).toBe('Job succeeded in 2 s\n');
  });
});
