import { createHash, randomBytes } from 'node:crypto';
import { artifactName } from './artifact.js';

/** A source of uniform numbers in [0, 1). */
export type Random = () => number;

export const MIN_DURATION_S = 2;
export const MAX_DURATION_S = 10;

/** The four steps every simulated pipeline runs, in order, with their share of the build's duration. */
export const STEPS = [
  { name: 'checkout', share: 0.1 },
  { name: 'install', share: 0.3 },
  { name: 'test', share: 0.45 },
  { name: 'package', share: 0.15 },
] as const;
export type StepName = (typeof STEPS)[number]['name'];

/** One log line, due `at_s` simulated seconds after the run starts. */
export interface PlannedLine {
  at_s: number;
  text: string;
}

export interface RunSubject {
  project: { name: string; repo: string };
  build: { project_id: number; number: number; branch: string; commit_sha: string };
}

/**
 * sfc32 seeded from a SHA-256 of the text: the same text always gives the same sequence. Used with
 * `BUILD_SEED:project:number`, so a build's duration and outcome do not depend on which worker runs it or when.
 */
export function seededRandom(seedText: string): Random {
  const digest = createHash('sha256').update(seedText).digest();
  let a = digest.readUInt32LE(0);
  let b = digest.readUInt32LE(4);
  let c = digest.readUInt32LE(8);
  let d = digest.readUInt32LE(12);
  return () => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    const t = (a + b + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
}

/** A plausible commit hash for triggers that name none. */
export const randomCommitSha = () => randomBytes(20).toString('hex');

const round2 = (value: number) => Math.round(value * 100) / 100;
const between = (random: Random, min: number, max: number) => min + Math.floor(random() * (max - min + 1));

/** The numbers a step's story prints, drawn once per run (see `drawStepDetails`). */
export interface StepDetails {
  /** `added N packages`: 80–900. */
  packages: number;
  /** Test suites: 3–9. */
  suites: number;
  /** Tests in each suite: 4–20. */
  testsPerSuite: number;
  /** Failed tests, all in the last suite: 0 unless the test step fails, then 1 to half a suite. */
  failedTests: number;
}

/**
 * Draws a story's numbers, four or three draws in this order: packages, suites, tests per suite, then failed tests
 * only when `testFails`. The job simulator's default jobs tell their story with them.
 */
export function drawStepDetails(random: Random, testFails: boolean): StepDetails {
  const packages = between(random, 80, 900);
  const suites = between(random, 3, 9);
  const testsPerSuite = between(random, 4, 20);
  // Failures all land in the last suite, so there can be no more of them than it has tests.
  const failedTests = testFails ? between(random, 1, Math.max(1, Math.floor(testsPerSuite / 2))) : 0;
  return { packages, suites, testsPerSuite, failedTests };
}

/**
 * The lines one step prints, from `==> Step <name>` to `✓ Step <name> passed` or, when it `fails`, its error and
 * `✗ Step <name> failed: <why>`: spread over `length` simulated seconds from `start`, each due at
 * `start + length × fraction` rounded to the hundredth (the last one at `start + length`). Pure, draws nothing.
 */
export function stepLines(
  step: StepName,
  subject: RunSubject,
  details: StepDetails,
  fails: boolean,
  start: number,
  length: number,
): PlannedLine[] {
  const { build, project } = subject;
  const { packages, suites, testsPerSuite, failedTests } = details;
  const totalTests = suites * testsPerSuite;
  const shortSha = build.commit_sha.slice(0, 7);
  const lines: PlannedLine[] = [];
  const at = (fraction: number) => round2(start + length * fraction);
  const say = (fraction: number, text: string) => lines.push({ at_s: at(fraction), text });
  say(0, `==> Step ${step}`);
  if (step === 'checkout') {
    say(0.05, `$ git clone --branch ${build.branch} ${project.repo} ${project.name}`);
    if (fails) {
      say(0.6, `fatal: could not read from remote repository ${project.repo}: connection reset by peer`);
    } else {
      say(0.6, `$ git checkout ${build.commit_sha}`);
      say(0.95, `HEAD is now at ${shortSha} on ${build.branch}`);
    }
  } else if (step === 'install') {
    say(0.05, '$ npm ci');
    if (fails) say(0.7, 'npm error code ETARGET: no matching version found for left-pad@^9.9.9');
    else say(0.95, `added ${packages} packages in ${round2(length)}s`);
  } else if (step === 'test') {
    say(0.02, '$ npm test');
    for (let suite = 1; suite <= suites; suite++) {
      const failedHere = suite === suites ? failedTests : 0;
      const mark = failedHere > 0 ? '✗' : '✓';
      say((suite / suites) * 0.9, `${mark} suite ${suite}/${suites}: ${testsPerSuite - failedHere} passed, ${failedHere} failed`);
    }
    say(0.97, `Tests: ${totalTests - failedTests} passed, ${failedTests} failed, ${totalTests} total`);
  } else {
    say(0.05, `$ tar -czf ${artifactName(project.name, build.number)} build-info.json build.log`);
    if (fails) say(0.8, 'tar: write error: no space left on device');
  }
  if (fails) {
    const why =
      step === 'test'
        ? `${failedTests} of ${totalTests} tests failed`
        : step === 'install'
          ? 'a dependency could not be resolved'
          : step === 'checkout'
            ? 'the repository could not be fetched'
            : 'the artifact could not be written';
    say(1, `✗ Step ${step} failed: ${why}`);
  } else {
    say(1, `✓ Step ${step} passed`);
  }
  return lines;
}

/** `[mm:ss.SSS]`: the simulated time since the run started, at the head of each step line. */
export function formatLine(line: PlannedLine): string {
  const ms = Math.round(line.at_s * 1000);
  const minutes = String(Math.floor(ms / 60_000)).padStart(2, '0');
  const seconds = String(Math.floor((ms % 60_000) / 1000)).padStart(2, '0');
  return `[${minutes}:${seconds}.${String(ms % 1000).padStart(3, '0')}] ${line.text}\n`;
}

