import { randomBytes } from 'node:crypto';

export interface SimulatedRun {
  status: 'success' | 'fail';
  duration_s: number;
  logs: string;
}

/** A source of uniform numbers in [0, 1): Math.random by default, seeded in tests. */
export type Random = () => number;

export const MIN_DURATION_S = 2;
export const MAX_DURATION_S = 10;

/** The seed's instant build: a duration drawn in 2–10 s, success or fail, one short log line. */
export function simulateRun(failRate: number, now: Date, random: Random = Math.random): SimulatedRun {
  const duration_s = Math.round((MIN_DURATION_S + random() * (MAX_DURATION_S - MIN_DURATION_S)) * 100) / 100;
  const status = random() < failRate ? 'fail' : 'success';
  return { status, duration_s, logs: `Build simulated at ${now.toISOString()}. Status: ${status}` };
}

/** A plausible commit hash for triggers that name none. */
export const randomCommitSha = () => randomBytes(20).toString('hex');
