/**
 * A PostgreSQL server of the chaos tests' own: `initdb` into a temporary folder (trust auth), started on its own port
 * with its socket in that folder, stopped and started again at will (the outage scenario), removed at the end. Never
 * the shared server on 5432. `initdb` and `postgres` refuse to run as root: as root, they run as the `postgres` OS user.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { freePorts } from '../processes.js';

const run = promisify(execFile);

/** The directory holding `initdb`, `pg_ctl` and `postgres`: PG_BIN, else the newest /usr/lib/postgresql/<n>/bin. */
export function pgBinDir(): string | undefined {
  if (process.env.PG_BIN && existsSync(join(process.env.PG_BIN, 'pg_ctl'))) return process.env.PG_BIN;
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((name) => existsSync(join(base, name, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(base, versions[0], 'bin');
}

/** Why no instance can be made here, or undefined when one can. */
export function pgInstanceUnavailable(): string | undefined {
  if (!pgBinDir()) return 'no PostgreSQL server binaries (set PG_BIN or install postgresql)';
  if (process.getuid?.() === 0) {
    try {
      osUser('postgres');
    } catch {
      return 'running as root and there is no `postgres` OS user to run the server as';
    }
  }
  return undefined;
}

function osUser(name: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((entry) => entry.startsWith(`${name}:`));
  if (!line) throw new Error(`no OS user ${name}`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

export interface PgInstance {
  port: number;
  /** The temporary folder: data directory, socket and server log. */
  dir: string;
  /** `postgres://postgres@127.0.0.1:<port>/<database>` (default: the `usine` database made at creation). */
  url(database?: string): string;
  /** Starts the server and waits until it accepts connections. */
  start(): Promise<void>;
  /** Stops it (`fast`: connections are cut, as in an outage; `immediate`: no clean shutdown at all). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  running(): boolean;
  /** The server log's tail, for failure messages. */
  logTail(chars?: number): string;
  /** Stops the server if it runs and removes the folder. */
  destroy(): Promise<void>;
}

/** initdb + start + `create database usine`. */
export async function createPgInstance({ fsync = false }: { fsync?: boolean } = {}): Promise<PgInstance> {
  const bin = pgBinDir();
  if (!bin) throw new Error(pgInstanceUnavailable());
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'usine-chaos-pg-'));
  if (asRoot) {
    const { uid, gid } = osUser('postgres');
    chownSync(dir, uid, gid);
  }
  const data = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  const [port] = (await freePorts(1)) as [number];
  const tool = (name: string, args: string[]) => {
    const command = asRoot ? 'runuser' : join(bin, name);
    const argv = asRoot ? ['-u', 'postgres', '--', join(bin, name), ...args] : args;
    return run(command, argv, { cwd: dir, timeout: 90_000, maxBuffer: 8 * 1024 * 1024 });
  };
  let up = false;

  await tool('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync', '--no-instructions']);
  const serverOptions = [
    `-p ${port}`,
    `-k ${dir}`,
    '-c listen_addresses=127.0.0.1',
    '-c max_connections=100',
    `-c fsync=${fsync ? 'on' : 'off'}`,
    '-c synchronous_commit=on',
  ].join(' ');

  const instance: PgInstance = {
    port,
    dir,
    url: (database = 'usine') => `postgres://postgres@127.0.0.1:${port}/${database}`,
    async start() {
      await tool('pg_ctl', ['-D', data, '-l', logFile, '-o', serverOptions, '-w', '-t', '60', 'start']);
      up = true;
    },
    async stop(mode = 'fast') {
      await tool('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']);
      up = false;
    },
    running: () => up,
    logTail: (chars = 4000) => {
      try {
        return readFileSync(logFile, 'utf8').slice(-chars);
      } catch {
        return '(no server log)';
      }
    },
    async destroy() {
      if (up) await instance.stop('immediate').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    await instance.start();
    const admin = postgres(instance.url('postgres'), { max: 1, onnotice: () => {} });
    try {
      await admin.unsafe('create database usine');
    } finally {
      await admin.end({ timeout: 5 });
    }
  } catch (error) {
    await instance.destroy();
    throw error;
  }
  return instance;
}
