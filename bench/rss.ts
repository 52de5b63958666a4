/** Samples a process's resident set size (VmRSS in /proc/<pid>/status, Linux) at a fixed interval. */
import { readFileSync } from 'node:fs';

export function readRssMb(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

export interface RssSampler {
  /** Largest sample so far (MB), or the largest since the last `mark()`. */
  max(): number;
  maxSinceMark(): number;
  mark(): void;
  /** Every sample: [ms since start, MB]. */
  samples(): Array<[number, number]>;
  last(): number;
  stop(): void;
}

export function sampleRss(pid: number, everyMs = 250): RssSampler {
  const started = Date.now();
  const all: Array<[number, number]> = [];
  let markMax = 0;
  const take = () => {
    const mb = readRssMb(pid);
    if (mb === undefined) return;
    all.push([Date.now() - started, mb]);
    markMax = Math.max(markMax, mb);
  };
  take();
  const timer = setInterval(take, everyMs);
  timer.unref();
  return {
    max: () => all.reduce((max, [, mb]) => Math.max(max, mb), 0),
    maxSinceMark: () => markMax,
    mark: () => {
      markMax = readRssMb(pid) ?? 0;
    },
    samples: () => all,
    last: () => all.at(-1)?.[1] ?? 0,
    stop: () => clearInterval(timer),
  };
}
