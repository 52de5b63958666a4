/**
 * The engine's own lines in a build's log, in order: what the multi-process, scale-out and chaos tests check. A
 * build's log holds every line of its jobs, each prefixed with `[<job name>] `, and the build's own lines unprefixed;
 * the engine's lines about a job (its claims, take-overs, hand-backs, its end) are among its job's lines.
 */
export type JobLogEvent =
  | { kind: 'pickup'; job: string; owner: string; claim: number }
  | { kind: 'takeover'; job: string; owner: string }
  | { kind: 'release'; job: string; owner: string }
  | { kind: 'giveup'; job: string; owner: string }
  | { kind: 'job_finished'; job: string; status: 'success' | 'fail' };

export type LogEvent = JobLogEvent | { kind: 'finished'; status: string };

/** `[name] ` then the rest: job names may hold spaces and brackets, so the name is the one the line repeats or ends. */
const JOB_PATTERNS: [RegExp, (match: RegExpExecArray) => JobLogEvent][] = [
  [/^\[(.+)\] \[usine\] Job \1 \(attempt \d+\) picked up by (\S+), claim (\d+)$/, (m) => ({ kind: 'pickup', job: m[1]!, owner: m[2]!, claim: Number(m[3]) })],
  [/^\[(.+)\] \[usine\] Worker (\S+) stopped renewing its lease: the job is queued again/, (m) => ({ kind: 'takeover', job: m[1]!, owner: m[2]! })],
  [/^\[(.+)\] \[usine\] Worker (\S+) stopped renewing its lease, and this job has been claimed/, (m) => ({ kind: 'giveup', job: m[1]!, owner: m[2]! })],
  [/^\[(.+)\] \[usine\] (\S+) is shutting down: the job goes back to the queue/, (m) => ({ kind: 'release', job: m[1]!, owner: m[2]! })],
  [/^\[(.+)\] Job succeeded in [\d.]+ s$/, (m) => ({ kind: 'job_finished', job: m[1]!, status: 'success' })],
  [/^\[(.+)\] ERROR: Job failed in [\d.]+ s$/, (m) => ({ kind: 'job_finished', job: m[1]!, status: 'fail' })],
];
const BUILD_FINISHED = /^Build finished: (\S+) in [\d.]+ s/;

export function logEvents(logs: string): LogEvent[] {
  const events: LogEvent[] = [];
  for (const line of logs.split('\n')) {
    const finished = BUILD_FINISHED.exec(line);
    if (finished) {
      events.push({ kind: 'finished', status: finished[1]! });
      continue;
    }
    if (!line.startsWith('[') || line.startsWith('[usine]')) continue;
    for (const [pattern, make] of JOB_PATTERNS) {
      const match = pattern.exec(line);
      if (match) {
        events.push(make(match));
        break;
      }
    }
  }
  return events;
}

/** Each job's events, in the order they were written, by job name (jobs in the order they first appear). */
export function eventsByJob(logs: string): Map<string, JobLogEvent[]> {
  const byJob = new Map<string, JobLogEvent[]>();
  for (const event of logEvents(logs)) {
    if (event.kind === 'finished') continue;
    const list = byJob.get(event.job) ?? [];
    list.push(event);
    byJob.set(event.job, list);
  }
  return byJob;
}

/**
 * What is wrong with one job's run, from its events: they must read (pickup (takeover|release))* pickup job_finished
 * — one run completed, once, by the worker that last picked it up. `killedPid`: a process killed between a claim and
 * its first write leaves a take-over with no pickup before it, which is accepted for that process only. Give-ups
 * (too many claims) are reported too.
 */
export function jobRunProblems(events: readonly JobLogEvent[], killedPid?: number): string[] {
  const problems: string[] = [];
  const finishes = events.filter((event) => event.kind === 'job_finished').length;
  if (finishes !== 1) problems.push(`${finishes} job-finished lines`);
  events.forEach((event, index) => {
    const previous = events[index - 1];
    if (event.kind === 'pickup' && !(index === 0 || previous?.kind === 'takeover' || previous?.kind === 'release')) {
      problems.push(`event ${index + 1}: picked up again without a take-over or release before`);
    }
    const diedBeforeWriting = event.kind === 'takeover' && killedPid !== undefined && pidOf(event.owner) === killedPid && previous?.kind !== 'pickup';
    const heldBy = previous?.kind === 'pickup' ? previous.owner : undefined;
    if ((event.kind === 'takeover' || event.kind === 'release') && !diedBeforeWriting && heldBy !== event.owner) {
      problems.push(`event ${index + 1}: ${event.kind} of ${event.owner}, which never logged picking the job up`);
    }
    if (event.kind === 'job_finished' && (index !== events.length - 1 || previous?.kind !== 'pickup')) {
      problems.push(`event ${index + 1}: job finished, but not right after its last pickup`);
    }
    if (event.kind === 'giveup') problems.push('failed after too many claims');
  });
  return problems;
}

/** Owners are `<host>:<pid>:<tag>/w<n>`. */
export const pidOf = (owner: string) => Number(owner.split(':').at(-2));
