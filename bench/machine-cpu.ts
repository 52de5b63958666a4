/** The whole machine's busy CPU time (every process, user + system + interrupts; /proc/stat, Linux). */
import { readFileSync } from 'node:fs';

const TICKS_PER_S = 100; // USER_HZ

/** Milliseconds of CPU the machine has spent busy since boot (all cores), or undefined without /proc. */
export function machineBusyMs(): number | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    // cpu user nice system idle iowait irq softirq steal …: busy is all but idle and iowait.
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    return (((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) * 1000) / TICKS_PER_S;
  } catch {
    return undefined;
  }
}
