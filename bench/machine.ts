/** The machine a run measured: CPU, cores, Node.js, database versions, date. */
import { cpus, totalmem } from 'node:os';
import { databaseVersions } from './database.js';
import type { Dialect } from './options.js';

export async function describeMachine(dialects: readonly Dialect[]): Promise<string[]> {
  const cpu = cpus();
  const versions = await databaseVersions(dialects);
  return [
    `CPU: ${cpu[0]?.model.trim() ?? 'unknown'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM`,
    `Node.js ${process.version}`,
    ...(versions.sqlite ? [`SQLite ${versions.sqlite} (better-sqlite3, a file in WAL mode)`] : []),
    ...(versions.pg ? [`PostgreSQL ${versions.pg} (same machine, loopback)`] : []),
    `Date: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
  ];
}
