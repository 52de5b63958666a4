/**
 * The simulated run of ONE job of a build. Pure:
 * given the job and a random source it plans the run up front — how long it would last, whether it fails, and every
 * log line with the simulated second it is due — and the job engine plays the plan out.
 *
 * Draw order, fixed so that a seed always gives the same plan:
 * 1. the planned duration, uniform in `spec.duration_s`;
 * 2. the outcome: `random() < spec.fail_rate` fails;
 * 3. the rest, which depends on the kind of job:
 *    - a job of the default pipeline (./pipelines/default.ts: its name and its script unchanged) tells the step's
 *      story as the single-script builds before pipelines did (./simulator.ts's `stepLines`), and draws its numbers
 *      as they did (`drawStepDetails`: packages, suites, tests
 *      per suite, and failed tests when the test job fails); it lasts its whole planned duration, failing or not;
 *    - any other job prints its script, and only when it fails draws the line it fails at, then the point of that
 *      line's slot where it fails.
 */
import { defaultPipeline } from '../pipelines/default.js';
import type { JobSpec } from '../pipelines/resolve.js';
import {
  drawStepDetails,
  seededRandom,
  STEPS,
  stepLines,
  type PlannedLine,
  type Random,
  type StepName,
} from './simulator.js';

export interface JobRunSubject {
  project: { name: string; repo: string };
  build: { project_id: number; number: number; branch: string; commit_sha: string };
  job: { name: string; attempt: number; spec: JobSpec };
}

export interface JobRunPlan {
  outcome: 'success' | 'fail';
  /** Simulated seconds the job would last if it ran to the end: drawn uniformly in spec.duration_s. */
  planned_s: number;
  /** Simulated seconds it lasts: planned_s on success, the time of its failure otherwise (its last line's at_s). */
  duration_s: number;
  /** Each due `at_s` simulated seconds after the job starts: non-decreasing, none after `duration_s`. */
  lines: PlannedLine[];
}

const round2 = (value: number) => Math.round(value * 100) / 100;

/** The default pipeline's script of each step: a job that kept both its step's name and this script tells its story. */
const DEFAULT_SCRIPTS: ReadonlyMap<string, readonly string[]> = (() => {
  const { jobs } = defaultPipeline(0);
  return new Map(STEPS.map(({ name }) => [name, jobs[name]?.script ?? []]));
})();

function defaultStep(spec: JobSpec): StepName | undefined {
  const script = DEFAULT_SCRIPTS.get(spec.job);
  if (script === undefined || script.length !== spec.script.length) return undefined;
  if (!script.every((line, index) => line === spec.script[index])) return undefined;
  return spec.job as StepName;
}

/**
 * Uniform in `[min, max]`, to the hundredth. Rounding never leaves the range when its ends are hundredths; when they
 * are not, the value moves a hundredth back inside (a range with no hundredth in it gives its nearest hundredth).
 */
function drawDuration(random: Random, [min = 0, max = min]: readonly number[]): number {
  let value = round2(min + random() * (max - min));
  if (value < min && round2(value + 0.01) <= max) value = round2(value + 0.01);
  else if (value > max && round2(value - 0.01) >= min) value = round2(value - 0.01);
  return value;
}

/** The GitLab-style variables a script line may name, with their values for this job. */
function variables({ project, build, job }: JobRunSubject): ReadonlyMap<string, string> {
  return new Map([
    ['CI_PROJECT_NAME', project.name],
    ['CI_REPOSITORY_URL', project.repo],
    ['CI_COMMIT_BRANCH', build.branch],
    ['CI_COMMIT_SHA', build.commit_sha],
    ['CI_PIPELINE_IID', String(build.number)],
    ['CI_JOB_NAME', job.name],
  ]);
}

const isNameCharacter = (code: number) =>
  (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || (code >= 48 && code <= 57) || code === 95; // A-Z a-z 0-9 _

/** Where the variable name starting at `from` ends (`from` itself if there is none). */
function nameEnd(line: string, from: number): number {
  let end = from;
  while (end < line.length && isNameCharacter(line.charCodeAt(end))) end++;
  return end;
}

/**
 * `$VAR`, `${VAR}` and `"$VAR"` (quotes dropped, as the shell would) replaced by the value of a known variable, in one
 * left-to-right pass: linear in the line, and a value is never scanned again (a branch named `$CI_JOB_NAME` stays
 * so). A name is read whole, as the shell reads it: `$CI_COMMIT_SHAX` is another, unknown, variable and stays as is.
 */
export function substituteVariables(line: string, values: ReadonlyMap<string, string>): string {
  let out = '';
  let copiedTo = 0;
  let index = 0;
  while (index < line.length) {
    const char = line[index];
    if (char === '"' && line[index + 1] === '$') {
      const end = nameEnd(line, index + 2);
      const value = values.get(line.slice(index + 2, end));
      if (value !== undefined && line[end] === '"') {
        out += line.slice(copiedTo, index) + value;
        index = copiedTo = end + 1;
        continue;
      }
      index++; // the `$` is looked at on its own next
    } else if (char === '$' && line[index + 1] === '{') {
      const end = nameEnd(line, index + 2);
      const value = values.get(line.slice(index + 2, end));
      if (value !== undefined && line[end] === '}') {
        out += line.slice(copiedTo, index) + value;
        index = copiedTo = end + 1;
        continue;
      }
      index += 2;
    } else if (char === '$') {
      const end = nameEnd(line, index + 1);
      const value = values.get(line.slice(index + 1, end));
      if (value !== undefined) {
        out += line.slice(copiedTo, index) + value;
        index = copiedTo = end;
        continue;
      }
      index = Math.max(end, index + 1);
    } else {
      index++;
    }
  }
  return out + line.slice(copiedTo);
}

/**
 * A script's lines `$ <line>`, variables substituted, line i of n due at `planned_s × i / n` (each gets an even slot,
 * the first at 0); `Running <job name>…` for a job without script. On failure it fails at a drawn line, at a drawn
 * point of that line's slot: the lines up to that one, then `<command> exited with code 1` at that point.
 */
function scriptLines(subject: JobRunSubject, planned_s: number, fails: boolean, random: Random) {
  const { job } = subject;
  const values = variables(subject);
  const commands = job.spec.script.map((line) => substituteVariables(line, values));
  const texts = commands.length === 0 ? [`Running ${job.name}…`] : commands.map((command) => `$ ${command}`);
  const count = texts.length;
  const at = (slot: number) => round2((planned_s * slot) / count);
  if (!fails) return { lines: texts.map((text, index) => ({ at_s: at(index), text })), duration_s: planned_s };

  const failing = Math.min(count - 1, Math.floor(random() * count));
  const failedAt = at(failing + random());
  const lines = texts.slice(0, failing + 1).map((text, index) => ({ at_s: at(index), text }));
  lines.push({ at_s: failedAt, text: `${commands[failing] ?? job.name} exited with code 1` });
  return { lines, duration_s: failedAt };
}

/**
 * Plans one run of one job (see the draw order at the top of this file). A copy of a `parallel` job says which in
 * its first line. Pure: a seeded random source gives the same plan every time.
 */
export function planJobRun(subject: JobRunSubject, random: Random): JobRunPlan {
  const { spec } = subject.job;
  const planned_s = drawDuration(random, spec.duration_s);
  const outcome = random() < spec.fail_rate ? 'fail' : 'success';
  const fails = outcome === 'fail';

  const step = defaultStep(spec);
  let lines: PlannedLine[];
  let duration_s: number;
  if (step !== undefined) {
    const details = drawStepDetails(random, fails && step === 'test');
    lines = stepLines(step, subject, details, fails, 0, planned_s);
    // Its last line, `✓ Step … passed` or `✗ Step … failed: …`, falls at the end of its planned time, failing or
    // not, as each step of the single-script builds did: the default pipeline keeps their durations.
    duration_s = planned_s;
  } else {
    ({ lines, duration_s } = scriptLines(subject, planned_s, fails, random));
  }
  if (spec.parallel) lines.unshift({ at_s: 0, text: `Parallel copy ${spec.parallel.index} of ${spec.parallel.total}` });
  return { outcome, planned_s, duration_s, lines };
}

/** Reproducible under BUILD_SEED: seededRandom(`${seed}:${project_id}:${number}:${job name}:${attempt}`); Math.random without a seed. */
export function randomForJob(seed: string | undefined, subject: JobRunSubject): Random {
  const { build, job } = subject;
  return seed === undefined ? Math.random : seededRandom(`${seed}:${build.project_id}:${build.number}:${job.name}:${job.attempt}`);
}

/** The job's last line, written with its terminal status: GitLab's wording. */
export const jobFinishedLine = (outcome: 'success' | 'fail', duration_s: number): string =>
  outcome === 'success' ? `Job succeeded in ${duration_s} s\n` : `ERROR: Job failed in ${duration_s} s\n`;
