/** The engine's own lines in a build's log, in order: what the multi-process and scale-out tests check. */
export type LogEvent =
  | { kind: 'pickup'; owner: string; attempt: number }
  | { kind: 'takeover'; owner: string }
  | { kind: 'release'; owner: string }
  | { kind: 'giveup'; owner: string }
  | { kind: 'finished'; status: string };

const EVENT_PATTERNS: [RegExp, (match: RegExpExecArray) => LogEvent][] = [
  [/^\[usine\] Build #\d+ of .* picked up by (\S+), attempt (\d+)$/, (m) => ({ kind: 'pickup', owner: m[1]!, attempt: Number(m[2]) })],
  [/^\[usine\] Worker (\S+) stopped renewing its lease: the build is queued again/, (m) => ({ kind: 'takeover', owner: m[1]! })],
  [/^\[usine\] Worker (\S+) stopped renewing its lease, and this build has been claimed/, (m) => ({ kind: 'giveup', owner: m[1]! })],
  [/^\[usine\] (\S+) is shutting down: the build goes back to the queue/, (m) => ({ kind: 'release', owner: m[1]! })],
  [/^Build finished: (\S+) in [\d.]+ s$/, (m) => ({ kind: 'finished', status: m[1]! })],
];

export function logEvents(logs: string): LogEvent[] {
  const events: LogEvent[] = [];
  for (const line of logs.split('\n')) {
    for (const [pattern, make] of EVENT_PATTERNS) {
      const match = pattern.exec(line);
      if (match) {
        events.push(make(match));
        break;
      }
    }
  }
  return events;
}

/** Owners are `<host>:<pid>:<tag>/w<n>`. */
export const pidOf = (owner: string) => Number(owner.split(':').at(-2));
