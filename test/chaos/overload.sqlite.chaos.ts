/**
 * Overload (issue #8): a real server whose event loop gets blocked must shed load with 503 problems carrying
 * `Retry-After` (@fastify/under-pressure), keep its health probes answering, and serve 2xx again by itself once the
 * block has passed.
 *
 * The block is test-only: test/chaos/overload-block-loop.mjs, preloaded through NODE_OPTIONS, busy-loops the event
 * loop for CHAOS_BLOCK_MS on SIGWINCH. The server runs with UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS=50 sampled every
 * 100 ms, while 12 lanes of clients keep requesting. Not a database scenario: it runs once, in the sqlite project.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeServers, killServer, loginAdmin, startServer, type ServerProcess } from '../processes.js';
import { isUnavailableProblem, probe, recordScenario, RequestTally, type Probe } from './record.js';

const BLOCK_MS = 4000;
const RECOVERY_BOUND_MS = 5000;
const LANES = 12;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const preload = pathToFileURL(join(import.meta.dirname, 'overload-block-loop.mjs')).href;

interface Sample extends Probe {
  route: string;
  phase: 'before' | 'blocked' | 'after';
}

describe('overload: a blocked event loop sheds load with 503 + Retry-After, then recovers', () => {
  let server: ServerProcess | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'usine-chaos-overload-'));

  beforeAll(async () => {
    server = await startServer(
      'overload',
      {
        DATABASE_URL: `sqlite:${join(dir, 'usine.db')}`,
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${preload}`.trim(),
        CHAOS_BLOCK_MS: String(BLOCK_MS),
        UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '50',
        UNDER_PRESSURE_SAMPLE_INTERVAL_MS: '100',
        UNDER_PRESSURE_RETRY_AFTER_S: '2',
        BUILD_CONCURRENCY: '0',
      },
      undefined,
      90_000,
    );
  }, 120_000);

  afterAll(async () => {
    if (server) await killServer(server);
    rmSync(dir, { recursive: true, force: true });
  });

  it('sheds with 503 problems + Retry-After while blocked, keeps the probes up, serves 2xx again after', async () => {
    const base = server!.url;
    // Just started, the process may still be over its (tiny) threshold: wait until a login gets through.
    let token = '';
    for (let tries = 0; token === '' && tries < 100; tries++) {
      token = await loginAdmin(base).catch(async () => {
        await sleep(300);
        return '';
      });
    }
    expect(token, 'a login gets through once the server has settled').not.toBe('');
    const auth = { authorization: `Bearer ${token}` };
    const calls: [string, () => Promise<Probe>][] = [
      ['GET /projects', () => probe(`${base}/projects`, { headers: auth }, 20_000)],
      ['GET /me', () => probe(`${base}/me`, { headers: auth }, 20_000)],
      [
        'POST /projects',
        () =>
          probe(
            `${base}/projects`,
            {
              method: 'POST',
              headers: { ...auth, 'content-type': 'application/json' },
              body: JSON.stringify({ name: `overload-${process.hrtime.bigint()}`, repo: 'https://example.com/o.git' }),
            },
            20_000,
          ),
      ],
      ['GET /health/live', () => probe(`${base}/health/live`, {}, 20_000)],
      ['GET /health/ready', () => probe(`${base}/health/ready`, {}, 20_000)],
    ];

    // Normal service first (retrying while the start-up's own event loop delay lasts).
    for (const [route, call] of calls) {
      let answer = await call();
      for (let tries = 0; answer.status === 503 && tries < 50; tries++) {
        await sleep(200);
        answer = await call();
      }
      expect(answer.status, `${route} before the block: ${JSON.stringify(answer.body)}`).toBeLessThan(300);
    }

    const samples: Sample[] = [];
    let phase: Sample['phase'] = 'before';
    let loadOn = true;
    const lane = async (offset: number) => {
      for (let turn = offset; loadOn; turn++) {
        const startedIn = phase;
        const [route, call] = calls[turn % calls.length]!;
        samples.push({ ...(await call()), route, phase: startedIn });
        await sleep(10);
      }
    };
    const lanes = Array.from({ length: LANES }, (_unused, index) => lane(index));
    await sleep(1000);

    phase = 'blocked';
    const blockedAt = Date.now();
    process.kill(server!.pid, 'SIGWINCH');
    await sleep(BLOCK_MS);
    const unblockedAt = Date.now();
    phase = 'after';

    // Recovery: the first 2xx on a shed-able route after the block, then 20 in a row.
    let recoveredMs: number | undefined;
    let streak = 0;
    while (Date.now() - unblockedAt < 20_000 && streak < 20) {
      const answer = await probe(`${base}/projects`, { headers: auth }, 20_000);
      if (answer.status === 200) {
        recoveredMs ??= Date.now() - unblockedAt;
        streak++;
      } else {
        streak = 0;
        recoveredMs = undefined;
      }
      await sleep(25);
    }
    loadOn = false;
    await Promise.all(lanes);

    const tally = new RequestTally();
    for (const sample of samples) tally.add(sample.status === 0 ? 'error' : sample.status);
    const shed = samples.filter((sample) => sample.status === 503);
    const goodShed = shed.filter((sample) => isUnavailableProblem(sample) && sample.retryAfter !== null && Number(sample.retryAfter) > 0);
    const badShed = shed.filter((sample) => !goodShed.includes(sample));
    const wrong5xx = samples.filter((sample) => sample.status >= 500 && sample.status !== 503);
    const noAnswer = samples.filter((sample) => sample.status === 0);
    const probesShed = samples.filter((sample) => sample.route.startsWith('GET /health/') && sample.status === 503);
    const other = samples.filter((sample) => sample.status !== 0 && sample.status !== 503 && sample.status >= 300);

    const failures: string[] = [];
    if (!server!.alive()) failures.push('the server process died');
    if (goodShed.length === 0) failures.push('no request was shed with a 503 problem + Retry-After while the event loop was blocked');
    if (badShed.length > 0) failures.push(`${badShed.length} 503 without a problem body or Retry-After: ${JSON.stringify([badShed[0]?.retryAfter, badShed[0]?.body])}`);
    if (wrong5xx.length > 0) failures.push(`${wrong5xx.length} 5xx other than 503: ${JSON.stringify(wrong5xx.slice(0, 3).map((s) => [s.route, s.status, s.body]))}`);
    if (noAnswer.length > 0) failures.push(`${noAnswer.length} requests got no answer: ${[...new Set(noAnswer.map((s) => s.error))].join('; ')}`);
    if (probesShed.length > 0) failures.push(`${probesShed.length} health probes were shed (they must never be)`);
    if (other.length > 0) failures.push(`${other.length} unexpected statuses: ${[...new Set(other.map((s) => `${s.route} → ${s.status}`))].join(', ')}`);
    if (recoveredMs === undefined || recoveredMs > RECOVERY_BOUND_MS) failures.push(`2xx again (20 in a row) ${recoveredMs ?? 'never within 20 s'} ms after the block`);

    recordScenario({
      scenario: 'overload',
      db: 'sqlite',
      what: `Event loop busy-blocked for ${BLOCK_MS / 1000} s (test-only preload, SIGWINCH) under ${LANES} client lanes; UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS=50, sampled every 100 ms`,
      happened:
        failures.length === 0
          ? `${goodShed.length} requests shed with a 503 problem + Retry-After, health probes never shed, no other 5xx, no dropped connection; 2xx again ${recoveredMs} ms after the block ended`
          : failures.join('; '),
      ok: failures.length === 0,
      figures: {
        requests: tally.requests,
        '5xx': tally.fiveXX,
        lost: noAnswer.length,
        shed_503: goodShed.length,
        non_503_5xx: wrong5xx.length,
        during_block: samples.filter((sample) => sample.phase === 'blocked').length,
        slowest_ms: Math.max(0, ...samples.map((sample) => sample.ms)),
        recovered_ms: recoveredMs ?? null,
        block_ms: unblockedAt - blockedAt,
      },
    });

    expect(failures, `${failures.join('\n')}\n${describeServers([server!]).slice(-3000)}`).toEqual([]);
  }, 120_000);
});

/**
 * The same bar under a genuine flood: no preload, UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS=1 (the smallest threshold)
 * and autocannon's 100 connections on `GET /projects?per_page=100` for 6 s. Whatever is shed must be a 503 (never
 * another 5xx, never a dropped connection), and 2xx must come back within 5 s of the flood's end.
 */
describe('overload: an autocannon flood with a tiny event loop threshold', () => {
  let server: ServerProcess | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'usine-chaos-flood-'));

  beforeAll(async () => {
    server = await startServer(
      'flood',
      {
        DATABASE_URL: `sqlite:${join(dir, 'usine.db')}`,
        UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '1',
        UNDER_PRESSURE_SAMPLE_INTERVAL_MS: '100',
        UNDER_PRESSURE_RETRY_AFTER_S: '1',
        BUILD_CONCURRENCY: '0',
      },
      undefined,
      90_000,
    );
  }, 120_000);

  afterAll(async () => {
    if (server) await killServer(server);
    rmSync(dir, { recursive: true, force: true });
  });

  it('sheds only with 503s and serves 2xx again within 5 s of the flood', async () => {
    const base = server!.url;
    let token = '';
    for (let tries = 0; token === '' && tries < 100; tries++) {
      token = await loginAdmin(base).catch(async () => {
        await sleep(300);
        return '';
      });
    }
    expect(token).not.toBe('');
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    for (let index = 0; index < 60; index++) {
      await probe(`${base}/projects`, { method: 'POST', headers, body: JSON.stringify({ name: `flood-${index}`, repo: 'https://example.com/f.git' }) });
    }

    const result = await autocannon({
      url: `${base}/projects?per_page=100`,
      headers: { authorization: `Bearer ${token}` },
      connections: 100,
      duration: 6,
      timeout: 10,
    });
    const floodEnd = Date.now();
    const codes = Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, stat]) => [code, stat.count ?? 0]));
    const shed = codes['503'] ?? 0;
    const other5xx = Object.entries(codes).filter(([code]) => Number(code) >= 500 && code !== '503').reduce((sum, [, n]) => sum + n, 0);
    const requests = Object.values(codes).reduce((sum, n) => sum + n, 0) + result.errors;

    // Recovery: 20 consecutive 200s, timed from the flood's end.
    let recoveredMs: number | undefined;
    let streak = 0;
    while (Date.now() - floodEnd < 20_000 && streak < 20) {
      const answer = await probe(`${base}/projects`, { headers: { authorization: `Bearer ${token}` } }, 10_000);
      if (answer.status === 200) {
        recoveredMs ??= Date.now() - floodEnd;
        streak++;
      } else {
        streak = 0;
        recoveredMs = undefined;
        await sleep(100);
      }
    }

    const failures: string[] = [];
    if (!server!.alive()) failures.push('the server process died');
    if (other5xx > 0) failures.push(`${other5xx} 5xx other than 503: ${JSON.stringify(codes)}`);
    if (result.errors > 0) failures.push(`${result.errors} connection errors (${result.timeouts} timeouts)`);
    if (shed === 0) failures.push(`the flood never made the server shed load (statuses ${JSON.stringify(codes)})`);
    if (recoveredMs === undefined || recoveredMs > RECOVERY_BOUND_MS) failures.push(`2xx again (20 in a row) ${recoveredMs ?? 'never within 20 s'} ms after the flood`);

    recordScenario({
      scenario: 'overload-flood',
      db: 'sqlite',
      what: 'autocannon, 100 connections for 6 s on GET /projects?per_page=100 (60 projects), UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS=1 sampled every 100 ms',
      happened:
        failures.length === 0
          ? `${shed} of ${requests} requests shed with 503, no other 5xx, no connection error; 2xx again ${recoveredMs} ms after the flood`
          : failures.join('; '),
      ok: failures.length === 0,
      figures: {
        requests,
        '5xx': shed + other5xx,
        lost: result.errors,
        shed_503: shed,
        non_503_5xx: other5xx,
        ok_2xx: result['2xx'],
        req_per_s: Math.round(result.requests.average),
        p99_ms: result.latency.p99,
        recovered_ms: recoveredMs ?? null,
      },
    });

    expect(failures, `${failures.join('\n')}\n${describeServers([server!]).slice(-3000)}`).toEqual([]);
  }, 120_000);
});
