/**
 * Slow bodies among normal traffic, over real sockets: clients that send their headers and part of a body, then stall,
 * while four lanes of ordinary requests (reads, a write, a build trigger, the readiness probe) go on. A stalled body is
 * the client's delay: each such connection gets exactly one answer, a 408 `request_timeout` problem from the request
 * timeout (or the 401 it had already been given, when it was refused from its headers), and the database is never
 * blamed for it: no 503, no error-level log line, no suspicion ping, /health/ready ready throughout.
 *
 * The database deadline (DATABASE_REQUEST_TIMEOUT_S 0.5) is far shorter than the request timeout (HTTP_REQUEST_TIMEOUT_S
 * 2): before the fix every stalled body was answered 503 by the deadline, blamed on the database, then 408 on the
 * same socket.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from '../../src/server.js';
import { createScratchDatabase, injectAs, login, testConfig, testDb, type ScratchDatabase } from '../helper.js';
import { exchange, jsonHead, type RawResponse } from '../http/raw-http.js';
import { probe, recordScenario, RequestTally } from './record.js';

const SLOW_BODIES = 24;
const LANES = 4;
const ERROR_LEVEL = 50;

/** One stalled body: what it sends before stalling, and what it must get. */
interface SlowClient {
  kind: string;
  script: (string | number)[];
  expected: number;
}

describe(`slow request bodies among normal traffic (${testDb})`, () => {
  let scratch: ScratchDatabase;
  let app: FastifyInstance;
  let base: string;
  let port: number;
  let token: string;
  let projectId: number;
  let suspicions = 0;
  const logLines: string[] = [];
  const figures: Record<string, number | string | boolean> = {};
  const findings: string[] = [];

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    const config = testConfig(scratch.url, {
      LOG_LEVEL: 'info',
      DATABASE_REQUEST_TIMEOUT_S: '0.5',
      HTTP_HEADERS_TIMEOUT_S: '1',
      HTTP_REQUEST_TIMEOUT_S: '2',
      BUILD_CONCURRENCY: '1',
      UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
    });
    app = await createServer(config, { logStream: { write: (line: string) => void logLines.push(line) } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
    // Every suspicion of the database (a ping at once) is counted: a slow body must cause none.
    const suspect = app.databaseAvailability.suspect.bind(app.databaseAvailability);
    app.databaseAvailability.suspect = () => {
      suspicions++;
      suspect();
    };
    token = await login(app, config.ADMIN_USERNAME, config.ADMIN_PASSWORD);
    const project = await injectAs(app, token, { method: 'POST', url: '/projects', payload: { name: 'slow-bodies', repo: 'https://example.com/slow.git' } });
    projectId = project.json<{ id: number }>().id;
  });

  afterAll(async () => {
    recordScenario({
      scenario: 'slow-bodies',
      db: testDb,
      what: `${SLOW_BODIES} connections send their headers and part of a JSON body (Content-Length or chunked; login, an authenticated create, a build trigger, an unauthenticated create) and stall, while ${LANES} lanes of normal requests go on; DATABASE_REQUEST_TIMEOUT_S 0.5, HTTP_REQUEST_TIMEOUT_S 2.`,
      happened: findings.length
        ? findings.join(' ')
        : 'Each stalled connection got exactly one answer (a 408 request_timeout problem, or the 401 it was refused with from its headers) and was closed; no 503, no error log, no suspicion of the database; the normal requests all answered without a 5xx.',
      ok: findings.length === 0,
      figures,
    });
    await app?.close();
    await scratch?.drop();
  });

  it('answers every stalled body once (408, or its early 401), blames nothing on the database, and serves the others', async () => {
    const auth = { Authorization: `Bearer ${token}` };
    const login = JSON.stringify({ username: 'admin', password: 'admin123' });
    const create = JSON.stringify({ name: 'never-created', repo: 'https://example.com/never.git' });
    const trigger = JSON.stringify({ branch: 'main' });
    const chunked = (path: string, headers: Record<string, string>) =>
      `POST ${path} HTTP/1.1\r\nHost: usine.test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n` +
      Object.entries(headers)
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join('') +
      '\r\n5\r\n{"bra\r\n';
    const kinds: SlowClient[] = [
      { kind: 'login', script: [jsonHead('POST', '/login', login.length), login.slice(0, 8)], expected: 408 },
      { kind: 'authenticated create', script: [jsonHead('POST', '/projects', create.length, auth), create.slice(0, 12)], expected: 408 },
      { kind: 'chunked build trigger', script: [chunked(`/projects/${projectId}/builds`, auth)], expected: 408 },
      // Some bytes, a pause past the database deadline, a few more bytes, then the stall.
      { kind: 'trickled build trigger', script: [jsonHead('POST', `/projects/${projectId}/build`, trigger.length, auth), trigger.slice(0, 3), 700, trigger.slice(3, 6)], expected: 408 },
      { kind: 'unauthenticated create (401 from its headers)', script: [jsonHead('POST', '/projects', create.length), create.slice(0, 5)], expected: 401 },
      { kind: 'headers only, no body byte', script: [jsonHead('POST', '/login', login.length)], expected: 408 },
    ];
    const clients = Array.from({ length: SLOW_BODIES }, (_, i) => kinds[i % kinds.length] as SlowClient);

    const normal = new RequestTally();
    let notReady = 0;
    let done = false;
    const slow = Promise.all(clients.map((client) => exchange(port, client.script))).finally(() => {
      done = true;
    });
    const requests: [string, RequestInit][] = [
      [`/projects?per_page=5`, { headers: { authorization: `Bearer ${token}` } }],
      [`/projects/${projectId}/builds`, { method: 'POST', headers: { authorization: `Bearer ${token}` } }],
      ['/status', {}],
      ['/health/ready', {}],
    ];
    const lanes = Array.from({ length: LANES }, async (_, lane) => {
      for (let i = lane; !done; i++) {
        const [path, init] = requests[i % requests.length] as [string, RequestInit];
        const answer = await probe(`${base}${path}`, init, 10_000);
        normal.add(answer.status === 0 ? 'error' : answer.status);
        if (path === '/health/ready' && answer.status !== 200) notReady++;
      }
    });
    const answers: RawResponse[][] = await slow;
    await Promise.all(lanes);

    const answerCounts = answers.map((responses) => responses.length);
    const statuses = answers.flatMap((responses) => responses.map((response) => response.status));
    const wrong = clients.filter((client, i) => answers[i]?.length !== 1 || answers[i]?.[0]?.status !== client.expected);
    const problems = answers.filter((responses) => responses[0]?.headers['content-type'] === 'application/problem+json').length;
    const timeouts = answers.filter((responses) => responses[0]?.status === 408 && JSON.parse(responses[0].body).error === 'request_timeout').length;
    const errorLogs = logLines
      .join('')
      .split('\n')
      .filter(Boolean)
      .filter((line) => (JSON.parse(line) as { level: number }).level >= ERROR_LEVEL);

    Object.assign(figures, {
      requests: normal.requests + SLOW_BODIES,
      '5xx': normal.fiveXX + statuses.filter((status) => status >= 500).length,
      lost: normal.errors,
      slow_connections: SLOW_BODIES,
      slow_answers_min: Math.min(...answerCounts),
      slow_answers_max: Math.max(...answerCounts),
      slow_408_request_timeout: timeouts,
      slow_401_before_body: statuses.filter((status) => status === 401).length,
      slow_problem_bodies: problems,
      slow_503: statuses.filter((status) => status === 503).length,
      normal_requests: normal.requests,
      normal_5xx: normal.fiveXX,
      normal_by_status: JSON.stringify(normal.byStatus),
      ready_not_200: notReady,
      database_suspicions: suspicions,
      error_log_lines: errorLogs.length,
    });
    if (wrong.length > 0) findings.push(`${wrong.length} stalled connections did not get exactly one expected answer (${wrong.map((client) => client.kind).join(', ')}).`);
    if (figures.slow_503 !== 0 || normal.fiveXX !== 0) findings.push(`5xx answers: ${figures.slow_503} to stalled bodies, ${normal.fiveXX} to normal requests.`);
    if (suspicions > 0 || errorLogs.length > 0) findings.push(`The database was blamed: ${suspicions} suspicion pings, ${errorLogs.length} error log lines.`);

    expect(wrong.map((client) => client.kind)).toEqual([]);
    expect(answerCounts.every((count) => count === 1)).toBe(true);
    expect(timeouts).toBe(clients.filter((client) => client.expected === 408).length);
    expect(problems).toBe(SLOW_BODIES);
    expect(statuses.filter((status) => status >= 500)).toEqual([]);
    expect(normal.requests).toBeGreaterThan(0);
    expect(normal.fiveXX).toBe(0);
    expect(normal.errors).toBe(0);
    expect(notReady).toBe(0);
    expect(suspicions).toBe(0);
    expect(errorLogs).toEqual([]);
  });
});
