import { pbkdf2 } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { promisify } from 'node:util';

const CLOCK_TICK_MS = 10;

/** CPU time (ms, in clock ticks of 10 ms) of each thread of this process; undefined where /proc is missing. */
function threadCpuMs(): Map<number, number> | undefined {
  try {
    const times = new Map<number, number>();
    for (const name of readdirSync('/proc/self/task')) {
      try {
        // Fields after the command name: state is [0], utime [11], stime [12].
        const fields = readFileSync(`/proc/self/task/${name}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
        times.set(Number(name), (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MS);
      } catch {
        // the thread exited meanwhile
      }
    }
    return times;
  } catch {
    return undefined; // not Linux
  }
}

/**
 * Lowers the scheduling priority (raises the nice value) of libuv's thread pool, where argon2 hashes passwords, so
 * that the event loop (every other request) gets a core first while logins flood; a nice value changes nothing
 * while cores are free, so logins are as fast as before on an otherwise idle machine. Linux only (elsewhere it does
 * nothing and returns 0).
 *
 * Node names no thread, so the pool's are found by their work: as many CPU-bound tasks as the pool has threads are
 * queued together (about 55 ms of CPU each on Node 26, 85 on Node 20, once, at start-up), and the threads that gained
 * at least 20 ms (two clock ticks) are the pool. (At 150,000 iterations Node 26 took 20 ms: at times no thread
 * counted.) Returns how many threads were changed.
 */
export async function lowerThreadPoolPriority(nice: number, poolSize = Number(process.env.UV_THREADPOOL_SIZE) || 4): Promise<number> {
  if (nice <= 0) return 0;
  const before = threadCpuMs();
  if (!before) return 0;
  const work = promisify(pbkdf2);
  await Promise.all(Array.from({ length: poolSize }, (_, index) => work(`probe-${index}`, 'usine', 400_000, 32, 'sha256')));
  const after = threadCpuMs() ?? new Map<number, number>();
  let changed = 0;
  for (const [id, ms] of after) {
    if (id === process.pid || ms - (before.get(id) ?? 0) < 2 * CLOCK_TICK_MS) continue;
    try {
      setPriority(id, nice);
      changed++;
    } catch {
      // a thread that exited meanwhile, or a system that refuses: leave it
    }
  }
  return changed;
}
