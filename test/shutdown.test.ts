/**
 * Graceful shutdown of the real server process (src/main.ts under tsx): on SIGTERM readiness turns 503 at once,
 * an in-flight request (its body still arriving) completes, the listener closes, and the process exits 0 within 10 s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, testDb, type ScratchDatabase } from './helper.js';

const root = new URL('..', import.meta.url).pathname;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

interface Answer {
  status: number;
  body: string;
}

function read(response: IncomingMessage): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let body = '';
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => (body += chunk));
    response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    response.on('error', reject);
  });
}

/** One request on its own connection (no keep-alive), so that the server's closing is seen as it is. */
function get(port: number, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 3000 }, (response) => {
      read(response).then(resolve, reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

describe(`graceful shutdown of the real server (${testDb})`, () => {
  let child: ChildProcess | undefined;
  let scratch: ScratchDatabase | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'usine-shutdown-'));

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await scratch?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('on SIGTERM reports not-ready, finishes the in-flight request, closes and exits 0 within 10 s', async () => {
    const port = await freePort();
    const databaseUrl = testDb === 'pg' ? (scratch = await createScratchDatabase('pg')).url : `sqlite:${join(dir, 'usine.db')}`;
    let output = '';
    child = spawn(join(root, 'node_modules/.bin/tsx'), ['src/main.ts'], {
      cwd: root,
      env: {
        ...process.env,
        NODE_ENV: 'test',
        PORT: String(port),
        HOST: '127.0.0.1',
        DATABASE_URL: databaseUrl,
        LOG_LEVEL: 'info',
        REDIS_URL: '',
        // Readiness is 503 for this long before the listener closes.
        SHUTDOWN_DELAY_MS: '1000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));

    // Ready once the database is migrated.
    let ready: Answer | undefined;
    for (let waited = 0; waited < 20_000 && ready?.status !== 200; waited += 100) {
      if (child.exitCode !== null) throw new Error(`the server exited early:\n${output}`);
      ready = await get(port, '/health/ready').catch(() => undefined);
      if (ready?.status !== 200) await sleep(100);
    }
    expect(ready?.status, output).toBe(200);

    // An in-flight request: POST /login whose body arrives only after shutdown has begun.
    const payload = JSON.stringify({ username: 'admin', password: 'admin123' });
    let inFlightDone = false;
    const inFlight = new Promise<Answer>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/login',
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        },
        (response) => read(response).then(resolve, reject),
      );
      req.on('error', reject);
      req.write(payload.slice(0, 10));
      setTimeout(() => req.end(payload.slice(10)), 1800);
    }).finally(() => (inFlightDone = true));
    await sleep(200);

    const signalledAt = Date.now();
    const exit = exited(child);
    child.kill('SIGTERM');
    await sleep(300);

    // Shutting down: not ready any more, but still alive and serving during SHUTDOWN_DELAY_MS.
    const notReady = await get(port, '/health/ready');
    expect(notReady.status).toBe(503);
    expect(JSON.parse(notReady.body)).toMatchObject({ error: 'service_unavailable', detail: expect.stringMatching(/shutting down/) });
    expect((await get(port, '/health/live')).status).toBe(200);
    expect(inFlightDone).toBe(false);

    // After the delay the listener is closed: new connections are refused while the in-flight request still runs.
    await sleep(1000);
    await expect(get(port, '/health/live')).rejects.toThrow();
    expect(inFlightDone).toBe(false);

    const answer = await inFlight;
    expect(answer.status, answer.body).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ token_type: 'bearer' });

    const { code, signal } = await exit;
    expect({ code, signal }, output).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalledAt).toBeLessThan(10_000);
    expect(output).toMatch(/shutting down/);
    expect(output).toMatch(/closed: in-flight requests finished, database closed/);
  }, 30_000);
});
