/**
 * The pipeline of a project that has no definition of its own: today's build story as four jobs in four stages —
 * checkout, install, test (with its suites), package (with the artifact) — one after the other, lasting the seed's
 * 2–10 simulated seconds in all, and failing as often, and at the same steps, as the single-script build did.
 */
import { MAX_DURATION_S, MIN_DURATION_S, STEPS, type StepName } from '../builds/simulator.js';
import type { JobDefinition, PipelineDefinition } from './definition.js';

/**
 * Which step a failing build fails at, as src/builds/simulator.ts draws it (`failingStep`): tests most often,
 * packaging least.
 */
export const FAILURE_SHARES: Record<StepName, number> = { checkout: 0.1, install: 0.25, test: 0.55, package: 0.1 };

/** What each job's log shows; `$CI_…` are the GitLab-style names of the build's repository, branch and commit. */
const SCRIPTS: Record<StepName, string[]> = {
  checkout: ['git clone --branch "$CI_COMMIT_BRANCH" "$CI_REPOSITORY_URL" "$CI_PROJECT_NAME"', 'git checkout "$CI_COMMIT_SHA"'],
  install: ['npm ci'],
  test: ['npm test'],
  package: ['tar -czf "$CI_PROJECT_NAME-$CI_PIPELINE_IID.tar.gz" build-info.json build.log'],
};

const round4 = (value: number) => Math.round(value * 10_000) / 10_000;

/**
 * The default definition for a server whose BUILD_FAIL_RATE is `buildFailRate`.
 *
 * Durations: each job gets its step's share of the seed's 2–10 s, so the four add up to 2–10 s.
 * Failures: the jobs run one after the other and the first failure ends the build, so for the build to fail with
 * probability p, at step i with probability p·share(i), job i fails with probability p·share(i) / (1 − p·Σ earlier
 * shares) — the chance of failing there given that every earlier job passed. (With the same `fail_rate` p for all four,
 * a build would fail with probability 1 − (1 − p)⁴: 94 % instead of the seed's 50 %.)
 */
export function defaultPipeline(buildFailRate: number): PipelineDefinition {
  const jobs: Record<string, JobDefinition> = {};
  let failedBefore = 0;
  for (const { name, share } of STEPS) {
    const failHere = buildFailRate * FAILURE_SHARES[name];
    const stillRunning = 1 - failedBefore;
    jobs[name] = {
      stage: name,
      script: SCRIPTS[name],
      duration_s: [round4(MIN_DURATION_S * share), round4(MAX_DURATION_S * share)],
      fail_rate: stillRunning <= 0 ? 0 : Math.min(1, round4(failHere / stillRunning)),
      ...(name === 'package' ? { artifacts: true } : {}),
    };
    failedBefore += failHere;
  }
  return { stages: STEPS.map((step) => step.name), jobs };
}
