/**
 * The processes a benchmark run talks to, all children of the bench, on one database: the Usine server (the built
 * `dist/src/main.js`, which `npm run bench` builds first, or `src/main.ts` under tsx with --tsx; test/processes.ts'
 * settings) and the baseline server (bench/baseline-server.ts).
 * BENCH_CPU_PROF=<dir> makes the Usine server write a V8 CPU profile there when it exits (--cpu-prof), and the baseline
 * server one in <dir>/baseline.
 * The server runs with the process settings `npm start` and the Docker image use (APP_NODE_FLAGS, APP_PROCESS_ENV);
 * The baseline server runs with the same settings. BENCH_APP_NODE_FLAGS (space-separated, may be empty) replaces the
 * flags of both, to compare others.
 */
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BASE_SERVER_ENV, freePorts, repoRoot, waitReady, type Exit, type ServerProcess } from '../test/processes.js';

export const JWT = {
  JWT_SECRET: randomBytes(32).toString('hex'),
  JWT_ISSUER: 'usine',
  JWT_AUDIENCE: 'usine-api',
};

/**
 * Node flags of a production server (package.json's `start`, the Dockerfile's CMD): V8's young generation capped at
 * 2 × 2 MiB semi-spaces (instead of growing to 2 × 16 MiB: request garbage dies young either way), and the old
 * generation collected once it grows 20 % past what the last collection kept (instead of letting garbage pile up
 * to several times the live data, as it did with 1,000 open log streams). No hard heap limit: nothing fails for
 * want of memory, the collector only runs sooner.
 */
export const APP_NODE_FLAGS = ['--max-semi-space-size=2', '--heap-growing-percent=20'];

/**
 * Environment of a production server (the Dockerfile's ENV): one malloc arena, so that the 7 MiB each argon2 hash
 * allocates is reused by the next hash on any thread instead of staying resident in one arena per thread-pool thread.
 */
export const APP_PROCESS_ENV: Record<string, string> = { MALLOC_ARENA_MAX: '1' };

/** Builds take 0.2–1 s of wall time: the log streams have lines to deliver, triggered builds do not pile up. */
export const BENCH_TIME_SCALE = 0.1;

export function appEnv(databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...BASE_SERVER_ENV,
    ...JWT,
    DATABASE_URL: databaseUrl,
    BUILD_TIME_SCALE: String(BENCH_TIME_SCALE),
    BUILD_CONCURRENCY: '10',
    BUILD_QUEUE_LIMIT: '100000',
    BUILD_FAIL_RATE: '0.5',
    BUILD_DRAIN_S: '1',
    // The benches open their log streams (1,000 in the soak) as one user: caps above anything they open.
    SSE_MAX_STREAMS_PER_USER: '100000',
    SSE_MAX_STREAMS: '100000',
    ...extra,
  };
}

/** The node flags of both servers: the production ones, or BENCH_APP_NODE_FLAGS. */
const appNodeFlags = () =>
  process.env.BENCH_APP_NODE_FLAGS === undefined ? APP_NODE_FLAGS : process.env.BENCH_APP_NODE_FLAGS.split(' ').filter(Boolean);

/** Spawns `node <args>` from the repository root on a free port and waits until GET /health/ready answers. */
function spawnNode(name: string, args: string[], env: Record<string, string | undefined>): Promise<ServerProcess> {
  return spawnReady(name, (port) => ({ file: process.execPath, args, env: { ...env, PORT: String(port) } }));
}

/**
 * Spawns the command `command(port)` gives for a free port (added to this process's environment), from the repository
 * root, and waits until GET /health/ready answers on that port; kills it if it never does.
 */
export async function spawnReady(
  name: string,
  command: (port: number) => { file: string; args: string[]; env: Record<string, string | undefined> },
): Promise<ServerProcess> {
  const [port] = await freePorts(1);
  const { file, args, env } = command(port!);
  const child = spawn(file, args, {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-16_384);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const server: ServerProcess = {
    name,
    port: port!,
    url: `http://127.0.0.1:${port}`,
    child,
    pid: child.pid ?? -1,
    output: () => output,
    // The benchmark's servers answer no outage: no line of theirs is set aside.
    notable: () => '',
    alive: () => child.exitCode === null && child.signalCode === null,
    exited: new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
  };
  try {
    await waitReady(server, 60_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return server;
}

export async function startApp(databaseUrl: string, name: string, options: { dist?: boolean; env?: Record<string, string> } = {}): Promise<ServerProcess> {
  const profileDir = process.env.BENCH_CPU_PROF;
  const profile = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const env: Record<string, string | undefined> = { ...APP_PROCESS_ENV, ...appEnv(databaseUrl, options.env) };
  const flags = appNodeFlags();
  let entry = ['--import', 'tsx', join('src', 'main.ts')];
  if (options.dist) {
    const built = join('dist', 'src', 'main.js');
    if (!existsSync(join(repoRoot, built))) throw new Error(`${built} is missing (npm run build first, or --tsx)`);
    entry = [built];
    env.FASTIFY_AUTOLOAD_TYPESCRIPT = undefined;
  }
  return spawnNode(name, [...profile, ...flags, ...entry], env);
}

/**
 * Starts bench/baseline-server.ts on the same database, with the same node flags and process environment as the Usine
 * server: a ratio then measures what the code costs, not a difference in garbage-collector settings.
 */
export async function startBaseline(databaseUrl: string): Promise<ServerProcess> {
  const profileDir = process.env.BENCH_CPU_PROF;
  const profile = profileDir ? ['--cpu-prof', '--cpu-prof-dir', join(profileDir, 'baseline')] : [];
  return spawnNode('baseline', [...profile, ...appNodeFlags(), '--import', 'tsx', join('bench', 'baseline-server.ts')], { ...APP_PROCESS_ENV, ...JWT, DATABASE_URL: databaseUrl });
}
