import { describe, expect, it } from 'vitest';
import { MAX_DURATION_S, MIN_DURATION_S, STEPS } from '../../src/builds/simulator.js';
import { defaultPipeline, FAILURE_SHARES } from '../../src/pipelines/default.js';
import { resolvePipeline } from '../../src/pipelines/resolve.js';
import { validateDefinition } from '../../src/pipelines/validate.js';

describe('defaultPipeline', () => {
  it("is today's story: checkout, install, test, package, one after the other, the artifact from package", () => {
    const definition = defaultPipeline(0.5);
    expect(validateDefinition(definition).valid).toBe(true);
    const jobs = resolvePipeline(definition, { defaultFailRate: 0.5 });
    expect(jobs.map((job) => job.name)).toEqual(STEPS.map((step) => step.name));
    expect(jobs.map((job) => job.needs.at(-1) ?? null)).toEqual([null, 'checkout', 'install', 'test']);
    expect(jobs.filter((job) => job.artifacts).map((job) => job.name)).toEqual(['package']);
    expect(jobs.find((job) => job.name === 'test')?.script).toEqual(['npm test']);
  });

  it("lasts the seed's 2–10 s in all, each job its step's share", () => {
    const jobs = resolvePipeline(defaultPipeline(0.5), { defaultFailRate: 0.5 });
    const sum = (index: 0 | 1) => jobs.reduce((total, job) => total + (job.duration_s[index] ?? 0), 0);
    expect(sum(0)).toBeCloseTo(MIN_DURATION_S, 6);
    expect(sum(1)).toBeCloseTo(MAX_DURATION_S, 6);
  });

  it.each([0, 0.2, 0.5, 1])('fails a build as often as BUILD_FAIL_RATE %s, at the steps the simulator fails at', (rate) => {
    const jobs = resolvePipeline(defaultPipeline(rate), { defaultFailRate: rate });
    let reached = 1;
    for (const job of jobs) {
      const failsHere = reached * job.fail_rate;
      expect(failsHere, job.name).toBeCloseTo(rate * FAILURE_SHARES[job.name as keyof typeof FAILURE_SHARES], 3);
      reached -= failsHere;
    }
    expect(1 - reached).toBeCloseTo(rate, 3);
    for (const job of jobs) expect(job.fail_rate).toBeLessThanOrEqual(1);
  });
});
