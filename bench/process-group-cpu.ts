/** CPU time split by who used it: given processes (the Usine servers) and the PostgreSQL server (Linux /proc). */
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_S = 100; // USER_HZ

interface Stat {
  command: string;
  parentPid: number;
  /** Own user + system ticks. */
  ticks: number;
  /** User + system ticks of children that exited and were waited for. */
  childTicks: number;
}

function readStat(pid: number): Stat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const command = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    // Fields after the command name: state [0], ppid [1], utime [11], stime [12], cutime [13], cstime [14].
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    return { command, parentPid: fields[1]!, ticks: fields[11]! + fields[12]!, childTicks: fields[13]! + fields[14]! };
  } catch {
    return undefined; // exited meanwhile, or no /proc
  }
}

export interface GroupCpuMs {
  /** The given processes (threads included). */
  processesMs: number;
  /**
   * Every `postgres` process, plus what the postmaster's exited children used (a connection closed during the
   * interval still counts).
   */
  postgresMs: number;
}

/** CPU (ms) used so far by `pids` and by PostgreSQL, or undefined without /proc. */
export function groupCpuMs(pids: number[]): GroupCpuMs | undefined {
  let names: string[];
  try {
    names = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return undefined;
  }
  let postgresTicks = 0;
  for (const name of names) {
    const stat = readStat(Number(name));
    if (!stat?.command.startsWith('postgres')) continue;
    postgresTicks += stat.ticks;
    // The postmaster is the postgres process whose parent is not one.
    if (!readStat(stat.parentPid)?.command.startsWith('postgres')) postgresTicks += stat.childTicks;
  }
  const processTicks = pids.reduce((sum, pid) => sum + (readStat(pid)?.ticks ?? 0), 0);
  return { processesMs: (processTicks * 1000) / TICKS_PER_S, postgresMs: (postgresTicks * 1000) / TICKS_PER_S };
}
