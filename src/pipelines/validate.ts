/**
 * Checks a pipeline definition and reports EVERY problem, each with a JSON pointer into the definition
 * (`/jobs/unit/needs/0`: unknown job `compyle`), so that a user fixes them all in one round.
 *
 * Two passes: the schema (./definition.ts) checks each field's shape, then the rules that span fields run on whatever
 * parts have the right shape: stage names listed once, each job's stage one of `stages`, its needs known jobs of the
 * same or an earlier stage and listed once, no cycle among needs, names unique once `parallel` has made its copies, the
 * job limit after those copies, `duration_s` min ≤ max. Every step is linear in the size of the input (cycles: Kahn's
 * algorithm, then one walk per cycle found), and no lookup goes through a plain object's prototype (a job may be named
 * `constructor`), so any input, however hostile, costs at most a pass over it.
 *
 * Needs within the same stage are allowed, as GitLab allows them since 14.2: a `lint` job may wait for `compile` of its
 * own stage. A need on a later stage is an error (it would invert the stage order), and so is a cycle.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { LIMITS, NAME_PATTERN, PipelineDefinition, pointer, WHEN_VALUES, type DefinitionProblem } from './definition.js';

/** Beyond this many, the rest are summed up in one last problem: enough to fix a definition, bounded for a hostile one. */
export const MAX_PROBLEMS = 100;

export type Validation = { valid: true; definition: PipelineDefinition } | { valid: false; problems: DefinitionProblem[] };

const ajv = new Ajv({ allErrors: true, strict: false });
const checkShape = ajv.compile<PipelineDefinition>(PipelineDefinition);

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const quote = (name: string) => `\`${name}\``;

/** Ajv's errors in the API's words (the same as src/http/problem.ts gives for request validation). */
function shapeProblems(errors: ErrorObject[]): DefinitionProblem[] {
  return errors.map((error) => {
    const params = error.params as Record<string, unknown>;
    const field = params.missingProperty ?? params.additionalProperty;
    const path = `${error.instancePath}${typeof field === 'string' ? pointer(field) : ''}`;
    if (error.keyword === 'additionalProperties') return { path, message: 'is not an accepted field' };
    if (error.keyword === 'enum' && error.instancePath.endsWith('/when')) return { path, message: `must be one of ${WHEN_VALUES.join(', ')}` };
    // The only pattern is "no control characters": its regular expression tells a user nothing.
    if (error.keyword === 'pattern') return { path, message: 'must not contain control characters (tabs and line breaks included)' };
    return { path, message: error.message ?? 'is invalid' };
  });
}

/** What is wrong with a stage or job name beyond its shape (the schema checks length and control characters). */
function nameProblem(name: string, what: 'stage' | 'job'): string | undefined {
  if (NAME_PATTERN.test(name) && name.length <= LIMITS.name) return undefined;
  return `${what} names are 1–${LIMITS.name} characters, without control characters or blanks at either end`;
}

const isFiniteNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);

interface Edge {
  /** Index of the needed job. */
  target: number;
  /** Position in the job's `needs`, for the problem's path. */
  at: number;
}

/** Cycles among needs, each reported once at the need that closes into the next job of the cycle. */
function cycleProblems(names: string[], edges: Edge[][]): DefinitionProblem[] {
  const count = names.length;
  // Kahn: peel off jobs whose needs are all peeled off; what stays is on a cycle or waits for one.
  const waitingOn = edges.map((needs) => needs.length);
  const dependents: number[][] = names.map(() => []);
  edges.forEach((needs, job) => needs.forEach(({ target }) => dependents[target]?.push(job)));
  const ready: number[] = [];
  for (let job = 0; job < count; job++) if (waitingOn[job] === 0) ready.push(job);
  const peeled = new Uint8Array(count);
  while (ready.length > 0) {
    const job = ready.pop() as number;
    peeled[job] = 1;
    for (const dependent of dependents[job] ?? []) {
      waitingOn[dependent] = (waitingOn[dependent] ?? 0) - 1;
      if (waitingOn[dependent] === 0) ready.push(dependent);
    }
  }
  // Every job left has a need that is left too: following such needs from any of them must come back to a job already
  // on the walk (a new cycle) or reach one walked before (a cycle already reported). Each job is walked once.
  const problems: DefinitionProblem[] = [];
  const state = new Uint8Array(count); // 0 not walked, 1 on the current walk, 2 done
  const positionOnWalk = new Int32Array(count);
  for (let start = 0; start < count; start++) {
    if (peeled[start] || state[start]) continue;
    const walk: { job: number; via: Edge }[] = [];
    let job = start;
    while (state[job] === 0) {
      const via = edges[job]?.find(({ target }) => !peeled[target]) as Edge;
      state[job] = 1;
      positionOnWalk[job] = walk.length;
      walk.push({ job, via });
      job = via.target;
    }
    if (state[job] === 1) {
      const cycle = walk.slice(positionOnWalk[job]);
      const first = cycle[0] as { job: number; via: Edge };
      const route = [...cycle.map((step) => quote(names[step.job] ?? '')), quote(names[first.job] ?? '')].join(' → ');
      problems.push({
        path: pointer('jobs', names[first.job] ?? '', 'needs', first.via.at),
        message: `needs form a cycle: ${route}`,
      });
    }
    for (const step of walk) state[step.job] = 2;
  }
  return problems;
}

/** Caps the list at MAX_PROBLEMS, saying how many were left out. */
function capped(problems: DefinitionProblem[]): DefinitionProblem[] {
  if (problems.length <= MAX_PROBLEMS) return problems;
  const rest = problems.length - MAX_PROBLEMS + 1;
  return [...problems.slice(0, MAX_PROBLEMS - 1), { path: '', message: `and ${rest} more problems` }];
}

/**
 * Validates a definition as parsed from JSON or YAML. `earlier` are problems found while parsing (YAML's duplicate
 * keys) that make the definition invalid whatever it now looks like; they come first.
 */
export function validateDefinition(input: unknown, earlier: DefinitionProblem[] = []): Validation {
  const problems = [...earlier];
  if (!checkShape(input)) problems.push(...shapeProblems(checkShape.errors ?? []));
  if (!isObject(input)) return { valid: false, problems: capped(problems) };

  // Stages: names, listed once. Their position orders the jobs.
  const stageIndex = new Map<string, number>();
  const stages = Array.isArray(input.stages) ? input.stages : [];
  stages.forEach((stage, index) => {
    if (typeof stage !== 'string') return;
    const wrongName = nameProblem(stage, 'stage');
    if (wrongName && stage.length > 0 && stage.length <= LIMITS.name) problems.push({ path: pointer('stages', index), message: wrongName });
    const first = stageIndex.get(stage);
    if (first === undefined) stageIndex.set(stage, index);
    else problems.push({ path: pointer('stages', index), message: `stage ${quote(stage)} is already listed at /stages/${first}` });
  });
  const stagesKnown = Array.isArray(input.stages) && stages.every((stage) => typeof stage === 'string');

  const jobs = isObject(input.jobs) ? Object.entries(input.jobs) : [];
  const jobIndex = new Map<string, number>(jobs.map(([name], index) => [name, index]));
  const jobStage: (number | undefined)[] = [];
  const copies: number[] = [];

  // Each job alone: its name, stage, copies and duration.
  jobs.forEach(([name, job], index) => {
    const wrongName = nameProblem(name, 'job');
    if (wrongName) problems.push({ path: pointer('jobs', name), message: wrongName });
    const definition = isObject(job) ? job : {};
    const { stage, parallel, duration_s: duration } = definition;
    jobStage[index] = typeof stage === 'string' ? stageIndex.get(stage) : undefined;
    if (typeof stage === 'string' && stagesKnown && jobStage[index] === undefined) {
      problems.push({
        path: pointer('jobs', name, 'stage'),
        message: `unknown stage ${quote(stage)}: stages are ${[...stageIndex.keys()].map(quote).join(', ') || 'none'}`,
      });
    }
    copies[index] = Number.isInteger(parallel) && (parallel as number) >= 1 && (parallel as number) <= LIMITS.parallel ? (parallel as number) : 1;
    if (Array.isArray(duration)) {
      const [min, max] = duration;
      if (duration.length === 2 && isFiniteNumber(min) && isFiniteNumber(max) && min > max) {
        problems.push({ path: pointer('jobs', name, 'duration_s'), message: `min (${min}) must not be greater than max (${max})` });
      }
    }
  });

  // The job limit counts copies; names must stay unique once the copies are named `name i/n`.
  const total = copies.reduce((sum, n) => sum + n, 0);
  if (total > LIMITS.jobs && jobs.length <= LIMITS.jobs) {
    problems.push({ path: '/jobs', message: `${total} jobs once \`parallel\` makes its copies: at most ${LIMITS.jobs}` });
  } else if (total <= LIMITS.jobs) {
    jobs.forEach(([name], index) => {
      const n = copies[index] ?? 1;
      for (let i = 1; n > 1 && i <= n; i++) {
        const copy = `${name} ${i}/${n}`;
        if (jobIndex.has(copy)) {
          problems.push({ path: pointer('jobs', copy), message: `job ${quote(copy)} has the name of a copy of ${quote(name)} (parallel: ${n})` });
        }
      }
    });
  }

  // Needs: known jobs, listed once, of the same or an earlier stage.
  const edges: Edge[][] = jobs.map(() => []);
  jobs.forEach(([name, job], index) => {
    const needs = isObject(job) && Array.isArray(job.needs) ? job.needs : [];
    const listed = new Map<string, number>();
    needs.forEach((need, at) => {
      if (typeof need !== 'string') return; // a shape problem, already reported
      const refuse = (message: string) => problems.push({ path: pointer('jobs', name, 'needs', at), message });
      const before = listed.get(need);
      if (before !== undefined) return void refuse(`${quote(need)} is already listed at ${pointer('jobs', name, 'needs', before)}`);
      listed.set(need, at);
      const target = jobIndex.get(need);
      if (target === undefined) return void refuse(`unknown job ${quote(need)}`);
      if (target === index) return void refuse('a job cannot need itself');
      const own = jobStage[index];
      const theirs = jobStage[target];
      if (own !== undefined && theirs !== undefined && theirs > own) {
        return void refuse(
          `${quote(need)} is in the later stage ${quote(String(stages[theirs]))}: a job can only need jobs of its own or earlier stages`,
        );
      }
      edges[index]?.push({ target, at });
    });
  });
  problems.push(...cycleProblems(jobs.map(([name]) => name), edges));

  return problems.length === 0 ? { valid: true, definition: input as PipelineDefinition } : { valid: false, problems: capped(problems) };
}
