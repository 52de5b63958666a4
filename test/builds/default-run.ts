/**
 * What a build of the default pipeline runs, planned the way the job engine plans it: its four jobs one after the
 * other (each needs the one before), each planned by src/builds/job-simulator.ts with the random source the engine
 * gives it (BUILD_SEED), up to the first one that fails. Tests use it to know a seeded build's story in advance.
 */
import { planJobRun, randomForJob, type JobRunPlan, type JobRunSubject } from '../../src/builds/job-simulator.js';
import type { PlannedLine, StepName } from '../../src/builds/simulator.js';
import { defaultPipeline } from '../../src/pipelines/default.js';
import { resolvePipeline } from '../../src/pipelines/resolve.js';

export interface DefaultBuildPlan {
  outcome: 'success' | 'fail';
  /** What the four jobs would last together if none failed. */
  planned_s: number;
  /** What the jobs that ran lasted together: the build's `duration_s` (they run one after the other). */
  duration_s: number;
  /** The job that fails, on a failing build. */
  failed_step?: StepName;
  /** The jobs that ran, in order, with their plans. */
  jobs: { name: StepName; plan: JobRunPlan }[];
  /** Every line of the jobs that ran, each due at its job's start plus its own time: non-decreasing. */
  lines: PlannedLine[];
}

const round2 = (value: number) => Math.round(value * 100) / 100;

export function planDefaultBuild(subject: Omit<JobRunSubject, 'job'>, failRate: number, seed: string | undefined): DefaultBuildPlan {
  const jobs: DefaultBuildPlan['jobs'] = [];
  const lines: PlannedLine[] = [];
  let planned = 0;
  let start = 0;
  let failed: StepName | undefined;
  for (const job of resolvePipeline(defaultPipeline(failRate), { defaultFailRate: failRate })) {
    const jobSubject: JobRunSubject = { ...subject, job: { name: job.name, attempt: 1, spec: job } };
    const plan = planJobRun(jobSubject, randomForJob(seed, jobSubject));
    planned += plan.planned_s;
    if (failed !== undefined) continue;
    const name = job.name as StepName;
    jobs.push({ name, plan });
    for (const line of plan.lines) lines.push({ at_s: round2(start + line.at_s), text: line.text });
    start += plan.duration_s;
    if (plan.outcome === 'fail') failed = name;
  }
  return {
    outcome: failed === undefined ? 'success' : 'fail',
    planned_s: round2(planned),
    duration_s: round2(start),
    ...(failed === undefined ? {} : { failed_step: failed }),
    jobs,
    lines,
  };
}
