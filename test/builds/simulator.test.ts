import { describe, expect, it } from 'vitest';
import { formatLine, MAX_DURATION_S, MIN_DURATION_S, seededRandom, STEPS, type RunSubject } from '../../src/builds/simulator.js';
import { planDefaultBuild, type DefaultBuildPlan } from './default-run.js';

const SHA = '3f786850e387550fdab836ed7e6dc881de23001b';

function subject(number = 1, branch = 'main'): RunSubject {
  return {
    project: { name: 'DemoProj', repo: 'https://github.com/demo/repo' },
    build: { project_id: 7, number, branch, commit_sha: SHA },
  };
}

/** Many default-pipeline builds from distinct seeds: deterministic, so a failure here reproduces. */
function plans(count: number, failRate: number, prefix = 'plan'): DefaultBuildPlan[] {
  return Array.from({ length: count }, (_, index) => planDefaultBuild(subject(index + 1), failRate, `${prefix}:${index}`));
}

const TEST_SUMMARY = /^Tests: (\d+) passed, (\d+) failed, (\d+) total$/;
const SUITE_LINE = /^([✓✗]) suite (\d+)\/(\d+): (\d+) passed, (\d+) failed$/;

describe('seededRandom', () => {
  it('gives the same sequence for the same text, a different one for another text', () => {
    const draw = (text: string) => {
      const random = seededRandom(text);
      return Array.from({ length: 20 }, () => random());
    };
    expect(draw('usine:1:1')).toEqual(draw('usine:1:1'));
    expect(draw('usine:1:1')).not.toEqual(draw('usine:1:2'));
    expect(draw('a')).not.toEqual(draw('b'));
  });

  it('draws in [0, 1) and spreads over the interval', () => {
    const random = seededRandom('spread');
    const values = Array.from({ length: 10_000 }, () => random());
    for (const value of values) {
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThan(1);
    }
    const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
    // Each tenth of the interval gets a fair share.
    const buckets = new Array<number>(10).fill(0);
    for (const value of values) buckets[Math.floor(value * 10)]! += 1;
    for (const bucket of buckets) expect(bucket).toBeGreaterThan(800);
  });
});

// The default pipeline keeps the single-script build's story: the same steps, durations, failures and counts.
describe('a build of the default pipeline, job by job', () => {
  it('draws planned durations in [2, 10] s in all, rounded to the hundredth, over the whole range', () => {
    const durations = plans(2000, 0.5).map((plan) => plan.planned_s);
    for (const duration of durations) {
      expect(duration).toBeGreaterThanOrEqual(MIN_DURATION_S);
      expect(duration).toBeLessThanOrEqual(MAX_DURATION_S);
      expect(Math.round(duration * 100) / 100).toBe(duration);
    }
    expect(MIN_DURATION_S).toBe(2);
    expect(MAX_DURATION_S).toBe(10);
    // Four draws added up: near the ends less often than one draw over the whole range, but there.
    expect(Math.min(...durations)).toBeLessThan(3.5);
    expect(Math.max(...durations)).toBeGreaterThan(8.5);
  });

  it('schedules lines in non-decreasing order, from 0 to at most the duration', () => {
    for (const plan of plans(500, 0.5)) {
      expect(plan.lines.length).toBeGreaterThanOrEqual(4);
      expect(plan.lines[0]!.at_s).toBe(0);
      for (let index = 1; index < plan.lines.length; index++) {
        expect(plan.lines[index]!.at_s).toBeGreaterThanOrEqual(plan.lines[index - 1]!.at_s);
      }
      // The last line falls at the end of the job that ends the run: the run's duration.
      expect(plan.lines.at(-1)!.at_s).toBe(plan.duration_s);
      for (const line of plan.lines) expect(line.text).not.toContain('\n');
    }
  });

  it("lasts the whole plan on success, and on failure the steps up to and including the failing one", () => {
    const all = plans(2000, 0.5);
    for (const plan of all) {
      const ran = STEPS.slice(0, plan.failed_step ? STEPS.findIndex((step) => step.name === plan.failed_step) + 1 : STEPS.length);
      expect(plan.jobs.map((job) => job.name)).toEqual(ran.map((step) => step.name));
      expect(plan.duration_s).toBe(Math.round(plan.jobs.reduce((sum, job) => sum + job.plan.duration_s, 0) * 100) / 100);
      if (plan.outcome === 'success') expect(plan.duration_s).toBe(plan.planned_s);
      else expect(plan.duration_s).toBeLessThanOrEqual(plan.planned_s);
      // No line after the last step that ran.
      expect(plan.lines.every((line) => line.at_s <= plan.duration_s)).toBe(true);
    }
    // A failure before packaging ends the run early.
    const early = all.filter((plan) => plan.failed_step !== undefined && plan.failed_step !== 'package');
    expect(early.length).toBeGreaterThan(100);
    for (const plan of early) expect(plan.duration_s).toBeLessThan(plan.planned_s);
  });

  it('follows the fail rate: 0 → every run succeeds, 1 → every run fails, 0.5 → about half', () => {
    expect(plans(300, 0).every((plan) => plan.outcome === 'success' && plan.failed_step === undefined)).toBe(true);
    expect(plans(300, 1).every((plan) => plan.outcome === 'fail' && plan.failed_step !== undefined)).toBe(true);
    const half = plans(2000, 0.5).filter((plan) => plan.outcome === 'fail').length;
    expect(half).toBeGreaterThan(850);
    expect(half).toBeLessThan(1150);
    const fifth = plans(2000, 0.2, 'fifth').filter((plan) => plan.outcome === 'fail').length;
    expect(fifth).toBeGreaterThan(300);
    expect(fifth).toBeLessThan(500);
  });

  it('runs the four steps in order on a successful run, each passing', () => {
    expect(STEPS.map((step) => step.name)).toEqual(['checkout', 'install', 'test', 'package']);
    expect(STEPS.reduce((sum, step) => sum + step.share, 0)).toBeCloseTo(1, 10);
    for (const plan of plans(50, 0)) {
      const texts = plan.lines.map((line) => line.text);
      const starts = STEPS.map((step) => texts.indexOf(`==> Step ${step.name}`));
      expect(starts.every((index) => index >= 0)).toBe(true);
      expect([...starts].sort((a, b) => a - b)).toEqual(starts);
      for (const step of STEPS) expect(texts).toContain(`✓ Step ${step.name} passed`);
      expect(texts.at(-1)).toBe('✓ Step package passed');
      expect(texts.some((text) => text.startsWith('✗'))).toBe(false);
    }
  });

  it('names the branch, repository and commit in the checkout', () => {
    const plan = planDefaultBuild(subject(1, 'feature/login'), 0, 'checkout');
    const texts = plan.lines.map((line) => line.text);
    expect(texts).toContain('$ git clone --branch feature/login https://github.com/demo/repo DemoProj');
    expect(texts).toContain(`$ git checkout ${SHA}`);
    expect(texts).toContain(`HEAD is now at ${SHA.slice(0, 7)} on feature/login`);
    expect(texts).toContain('$ npm ci');
    expect(texts.some((text) => /^added \d+ packages in [\d.]+s$/.test(text))).toBe(true);
  });

  it('ends a failing run with "✗ Step <name> failed: <why>", and runs no step after it', () => {
    const seen = new Set<string>();
    for (const plan of plans(400, 1)) {
      const texts = plan.lines.map((line) => line.text);
      const last = texts.at(-1)!;
      expect(last).toMatch(/^✗ Step (checkout|install|test|package) failed: .+$/);
      expect(last.startsWith(`✗ Step ${plan.failed_step} failed: `)).toBe(true);
      seen.add(plan.failed_step!);
      const failedIndex = STEPS.findIndex((step) => step.name === plan.failed_step);
      for (const [index, step] of STEPS.entries()) {
        expect(texts.includes(`==> Step ${step.name}`)).toBe(index <= failedIndex);
        expect(texts.includes(`✓ Step ${step.name} passed`)).toBe(index < failedIndex);
      }
      if (plan.failed_step === 'test') {
        const summary = TEST_SUMMARY.exec(texts.find((text) => TEST_SUMMARY.test(text)) ?? '');
        expect(summary).not.toBeNull();
        const [, , failed, total] = summary!.map(Number);
        expect(failed).toBeGreaterThan(0);
        expect(last).toBe(`✗ Step test failed: ${failed} of ${total} tests failed`);
      }
    }
    // Every step fails sometimes.
    expect([...seen].sort()).toEqual(['checkout', 'install', 'package', 'test']);
  });

  it('keeps test counts consistent: passed + failed = total, none negative, suites add up', () => {
    let withFailures = 0;
    for (const plan of plans(1500, 0.5, 'counts')) {
      const texts = plan.lines.map((line) => line.text);
      const summaryText = texts.find((text) => TEST_SUMMARY.test(text));
      const ranTests = texts.includes('==> Step test');
      expect(summaryText !== undefined).toBe(ranTests);
      if (!summaryText) continue;
      const [, passed, failed, total] = TEST_SUMMARY.exec(summaryText)!.map(Number) as [number, number, number, number];
      expect(passed).toBeGreaterThanOrEqual(0);
      expect(failed).toBeGreaterThanOrEqual(0);
      expect(total).toBeGreaterThan(0);
      expect(passed + failed).toBe(total);
      expect(failed > 0).toBe(plan.failed_step === 'test');
      if (failed > 0) withFailures++;
      const suites = texts.filter((text) => SUITE_LINE.test(text)).map((text) => SUITE_LINE.exec(text)!);
      expect(suites.length).toBeGreaterThanOrEqual(3);
      let suitePassed = 0;
      let suiteFailed = 0;
      for (const [, mark, , of, p, f] of suites) {
        expect(Number(of)).toBe(suites.length);
        expect(Number(p)).toBeGreaterThanOrEqual(0);
        expect(Number(f)).toBeGreaterThanOrEqual(0);
        expect(mark).toBe(Number(f) > 0 ? '✗' : '✓');
        suitePassed += Number(p);
        suiteFailed += Number(f);
      }
      expect(suitePassed).toBe(passed);
      expect(suiteFailed).toBe(failed);
    }
    expect(withFailures).toBeGreaterThan(100);
  });

  it('is pure: the same subject, rate and seed give the same plan', () => {
    const a = planDefaultBuild(subject(5), 0.5, 'pure');
    const b = planDefaultBuild(subject(5), 0.5, 'pure');
    expect(a).toEqual(b);
    const others = Array.from({ length: 10 }, (_, index) => planDefaultBuild(subject(5), 0.5, `other:${index}`).duration_s);
    expect(new Set(others).size).toBeGreaterThan(5);
  });
});

describe('formatLine', () => {
  it('prefixes the simulated time as [mm:ss.SSS] and ends with a newline', () => {
    expect(formatLine({ at_s: 0, text: 'start' })).toBe('[00:00.000] start\n');
    expect(formatLine({ at_s: 1.5, text: 'x' })).toBe('[00:01.500] x\n');
    expect(formatLine({ at_s: 9.99, text: '==> Step test' })).toBe('[00:09.990] ==> Step test\n');
    expect(formatLine({ at_s: 0.007, text: 'y' })).toBe('[00:00.007] y\n');
    expect(formatLine({ at_s: 61.25, text: 'z' })).toBe('[01:01.250] z\n');
    expect(formatLine({ at_s: 600, text: 'w' })).toBe('[10:00.000] w\n');
    // Rounded to the millisecond, never 1000 ms.
    expect(formatLine({ at_s: 1.9996, text: 'r' })).toBe('[00:02.000] r\n');
  });
});
