/**
 * Real Usine server processes for multi-process tests and benchmarks: `node --import tsx src/main.ts` from the
 * repository root, each on its own free port, with helpers to wait for readiness, talk to the API, and stop them
 * (SIGTERM, then SIGKILL) or kill them outright. No vitest import, so `bench/` can use it under plain Node.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createNetServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/** Keeps this many characters of each child's output (the tail), for failure messages. */
const OUTPUT_TAIL = 64 * 1024;
const NOTABLE_LINES = 20;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  name: string;
  port: number;
  /** `http://127.0.0.1:<port>` */
  url: string;
  child: ChildProcess;
  pid: number;
  /** The tail of what the child wrote on stdout and stderr, interleaved. */
  output(): string;
  /** Log lines of answers with a 5xx status other than 503, from the start (the first 20). */
  notable(): string;
  /** True until the child has exited. */
  alive(): boolean;
  /** Resolves when the child exits. */
  exited: Promise<Exit>;
}

/** `count` distinct free TCP ports on 127.0.0.1 (all held open together, so none is handed out twice). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let index = 0; index < count; index++) {
      const server = createNetServer();
      servers.push(server);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => {
            const address = server.address();
            if (typeof address === 'object' && address) resolve(address.port);
            else reject(new Error('no port'));
          });
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

export interface StartOptions {
  name: string;
  port: number;
  /** Added to the environment below (and to the caller's own environment), winning over both. */
  env: Record<string, string>;
}

/** Settings every spawned server gets unless `env` says otherwise: quiet logs, no throttling, no Redis. */
export const BASE_SERVER_ENV: Record<string, string> = {
  NODE_ENV: 'test',
  // `--import tsx` does not show up where @fastify/autoload looks for a TypeScript loader (it finds one under vitest
  // only through the inherited VITEST variable): without this, plugins/*.ts and routes/*.ts are refused.
  FASTIFY_AUTOLOAD_TYPESCRIPT: '1',
  HOST: '127.0.0.1',
  LOG_LEVEL: 'warn',
  REDIS_URL: '',
  RATE_LIMIT_MAX: '1000000',
  RATE_LIMIT_LOGIN_IP_MAX: '1000000',
  RATE_LIMIT_LOGIN_USER_MAX: '1000000',
  // A busy 2-core box can lag its event loop; shedding load with 503s is not what these runs measure.
  UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
};

/** Spawns one server; does not wait for it to be ready (see waitReady). */
export function spawnServer({ name, port, env }: StartOptions): ServerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: repoRoot,
    env: { ...process.env, ...BASE_SERVER_ENV, ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  // Lines that answered a 5xx other than a 503 (a bug, where a 503 is the expected answer to an outage), kept
  // whatever the tail loses: the first NOTABLE_LINES of them.
  const notable: string[] = [];
  let partial = '';
  const collect = (chunk: Buffer) => {
    const text = chunk.toString();
    output += text;
    if (output.length > OUTPUT_TAIL * 2) output = output.slice(-OUTPUT_TAIL);
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    if (partial.length > OUTPUT_TAIL) partial = '';
    for (const line of lines) if (notable.length < NOTABLE_LINES && /"status":5(?!03)\d\d\b/.test(line)) notable.push(line);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  // A spawn failure (no such file) arrives as 'error' and may come without 'exit'.
  child.once('error', (error) => collect(Buffer.from(`\n[spawn error] ${error.message}\n`)));
  return {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    child,
    pid: child.pid ?? -1,
    output: () => output.slice(-OUTPUT_TAIL),
    notable: () => notable.join('\n'),
    alive: () => child.exitCode === null && child.signalCode === null,
    exited,
  };
}

/** Resolves once `GET /health/ready` answers 200; throws (with the child's output) if it exits or time runs out. */
export async function waitReady(server: ServerProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!server.alive()) throw new Error(`${server.name} exited before it was ready:\n${server.output()}`);
    const status = await fetch(`${server.url}/health/ready`, { signal: AbortSignal.timeout(2000) }).then(
      (response) => response.status,
      () => 0,
    );
    if (status === 200) return;
    await sleep(100);
  }
  throw new Error(`${server.name} was not ready within ${timeoutMs} ms:\n${server.output()}`);
}

/**
 * Spawns one server on a free port (or `port`) and waits until it is ready (a loaded box may need more than the 30 s
 * default: `readyTimeoutMs`); kills it if it never gets there.
 */
export async function startServer(name: string, env: Record<string, string>, port?: number, readyTimeoutMs?: number): Promise<ServerProcess> {
  const server = spawnServer({ name, port: port ?? (await freePorts(1))[0]!, env });
  try {
    await waitReady(server, readyTimeoutMs);
  } catch (error) {
    await stopServer(server, 1000);
    throw error;
  }
  return server;
}

/** Spawns `count` servers with the same settings on distinct free ports and waits until every one is ready. */
export async function startServers(
  count: number,
  env: Record<string, string>,
  prefix = 'server',
  readyTimeoutMs?: number,
): Promise<ServerProcess[]> {
  const ports = await freePorts(count);
  const servers = ports.map((port, index) => spawnServer({ name: `${prefix}-${index + 1}`, port, env }));
  try {
    await Promise.all(servers.map((server) => waitReady(server, readyTimeoutMs)));
  } catch (error) {
    await Promise.all(servers.map((server) => stopServer(server, 1000)));
    throw error;
  }
  return servers;
}

/** SIGKILL, and wait until the child is gone. */
export async function killServer(server: ServerProcess): Promise<Exit> {
  if (server.alive()) server.child.kill('SIGKILL');
  return server.exited;
}

/** SIGTERM; SIGKILL if the child is still there after `timeoutMs`. Resolves once it has exited. */
export async function stopServer(server: ServerProcess, timeoutMs = 12_000): Promise<Exit> {
  if (!server.alive()) return server.exited;
  server.child.kill('SIGTERM');
  const timer = sleep(timeoutMs, 'timeout' as const);
  if ((await Promise.race([server.exited, timer])) === 'timeout') server.child.kill('SIGKILL');
  return server.exited;
}

/** Every child's output tail, headed by its name, pid and exit state: for failure messages. */
export function describeServers(servers: readonly ServerProcess[]): string {
  return servers
    .map((server) => {
      const state = server.alive() ? 'running' : `exited (code ${server.child.exitCode}, signal ${server.child.signalCode})`;
      const output = server.output().trim() || '(no output)';
      return `--- ${server.name} (pid ${server.pid}, port ${server.port}, ${state}) ---\n${output}`;
    })
    .join('\n');
}

export interface ApiAnswer<T> {
  status: number;
  body: T;
}

/** A small JSON client for one server; `token` is sent as a bearer token when set. */
export function apiClient(baseUrl: string, token?: string) {
  const call = async <T>(method: string, path: string, body?: unknown): Promise<ApiAnswer<T>> => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: response.status, body: parsed as T };
  };
  return {
    get: <T>(path: string) => call<T>('GET', path),
    post: <T>(path: string, body?: unknown) => call<T>('POST', path, body),
    /** Like `get`/`post`, but throws unless the status is `expected`. */
    async expect<T>(expected: number, method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<T> {
      const answer = await call<T>(method, path, body);
      if (answer.status !== expected) {
        throw new Error(`${method} ${baseUrl}${path}: expected ${expected}, got ${answer.status} ${JSON.stringify(answer.body)}`);
      }
      return answer.body;
    },
  };
}
export type ApiClient = ReturnType<typeof apiClient>;

/** Logs in as the seeded admin through `baseUrl` and returns the access token. */
export async function loginAdmin(baseUrl: string, username = 'admin', password = 'admin123'): Promise<string> {
  const body = await apiClient(baseUrl).expect<{ access_token: string }>(200, 'POST', '/login', { username, password });
  return body.access_token;
}

/** Runs `task` over `items` with at most `limit` running at once; results in the items' order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index] as T, index);
    }
  });
  await Promise.all(lanes);
  return results;
}

/** `GET /status`'s build queue figures (every replica's builds), or undefined when the server does not report them. */
export async function queueFigures(baseUrl: string): Promise<{ queued: number; running: number } | undefined> {
  const answer = await apiClient(baseUrl).get<{ queue?: { queued: number; running: number } | null }>('/status');
  const queue = typeof answer.body === 'object' ? answer.body?.queue : undefined;
  return queue && typeof queue.queued === 'number' && typeof queue.running === 'number' ? queue : undefined;
}
