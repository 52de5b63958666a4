/**
 * A pipeline's duration in simulated seconds: the longest chain of jobs through the graph, each job starting the
 * moment its last need ends (as it would with a free worker at hand). It does not depend on how many workers ran the
 * build or on BUILD_TIME_SCALE, so a build's `duration_s` is the same at scale 0 as in real time, as it was for the
 * four-step build. Jobs that did not run (skipped, manual, canceled before starting) last 0 s.
 */
export interface TimedJob {
  name: string;
  needs: readonly string[];
  /** Simulated seconds it ran, null when it did not. */
  duration_s: number | null;
}

/** Linear in jobs and needs: jobs are taken in an order where needs come first (the graph has no cycles). */
export function criticalPathSeconds(jobs: readonly TimedJob[]): number {
  const byName = new Map(jobs.map((job) => [job.name, job]));
  const endOf = new Map<string, number>();
  const end = (root: TimedJob): number => {
    // Depth-first without recursion: a chain of 200 jobs must not depend on the stack's depth.
    const stack: { job: TimedJob; visited: boolean }[] = [{ job: root, visited: false }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as { job: TimedJob; visited: boolean };
      if (endOf.has(top.job.name)) {
        stack.pop();
        continue;
      }
      const pending = top.job.needs.map((name) => byName.get(name)).filter((need): need is TimedJob => need !== undefined && !endOf.has(need.name));
      if (!top.visited && pending.length > 0) {
        top.visited = true;
        for (const need of pending) stack.push({ job: need, visited: false });
        continue;
      }
      const start = Math.max(0, ...top.job.needs.map((name) => endOf.get(name) ?? 0));
      endOf.set(top.job.name, start + (top.job.duration_s ?? 0));
      stack.pop();
    }
    return endOf.get(root.name) ?? 0;
  };
  let longest = 0;
  for (const job of jobs) longest = Math.max(longest, end(job));
  return Math.round(longest * 100) / 100;
}
