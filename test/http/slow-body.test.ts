/**
 * Slow and broken clients on a real socket: a body that stops arriving is the client's delay, answered once with a
 * 408 problem by the request timeout, never blamed on the database (no 503, no error log, no extra ping); what Node
 * refuses itself (headers too large, bytes that are not HTTP) is a problem document too.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createServer } from '../../src/server.js';
import { createScratchDatabase, login, testConfig, testDb, type ScratchDatabase } from '../helper.js';
import { exchange, jsonHead, type RawResponse } from './raw-http.js';

interface LogLine {
  level: number;
  msg?: string;
}

const ERROR_LEVEL = 50;

function expectProblem(response: RawResponse | undefined, status: number, error: string): void {
  expect(response?.status, response?.body).toBe(status);
  expect(response?.headers['content-type']).toBe('application/problem+json');
  const body = JSON.parse(response?.body ?? '') as { status: number; error: string; type: string; detail: string };
  expect(body.status).toBe(status);
  expect(body.error).toBe(error);
  expect(body.type).toBe(`urn:usine:problem:${error}`);
  expect(body.detail.length).toBeGreaterThan(0);
}

describe(`slow and broken clients on a socket (${testDb})`, () => {
  let app: FastifyInstance;
  let scratch: ScratchDatabase;
  let port: number;
  let token: string;
  let pings = 0;
  const output: string[] = [];
  const errorLines = () =>
    output
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as LogLine)
      .filter((line) => line.level >= ERROR_LEVEL);

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    const config = testConfig(scratch.url, {
      LOG_LEVEL: 'info',
      // The database deadline is far shorter than the time a client has to send its request: before the fix a
      // stalled body was blamed on the database long before the request timeout.
      DATABASE_REQUEST_TIMEOUT_S: '0.5',
      HTTP_HEADERS_TIMEOUT_S: '1',
      HTTP_REQUEST_TIMEOUT_S: '2',
      // No background ping during the test: any ping is one the slow body caused.
      DATABASE_PING_INTERVAL_MS: '60000',
    });
    app = await createServer(config, { logStream: { write: (line: string) => void output.push(line) } });
    const ping = app.database.ping.bind(app.database);
    app.database.ping = () => {
      pings++;
      return ping();
    };
    // A handler that never answers: only the database deadline ends its wait.
    app.post('/test/stuck', () => new Promise(() => undefined));
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
    token = await login(app, config.ADMIN_USERNAME, config.ADMIN_PASSWORD);
  });

  afterAll(async () => {
    await app?.close();
    await scratch?.drop();
  });

  beforeEach(() => {
    output.length = 0;
    pings = 0;
  });

  async function expectDatabaseNotBlamed(): Promise<void> {
    expect(errorLines()).toEqual([]);
    expect(pings).toBe(0);
    expect(app.databaseAvailability.available).toBe(true);
    const ready = await app.inject({ url: '/health/ready' });
    expect(ready.statusCode, ready.body).toBe(200);
  }

  it('answers a body that stops arriving with exactly one 408 problem, and does not blame the database', async () => {
    const body = JSON.stringify({ username: 'admin', password: 'admin123' });
    const responses = await exchange(port, [jsonHead('POST', '/login', body.length), body.slice(0, 5)]);
    expect(responses).toHaveLength(1);
    expectProblem(responses[0], 408, 'request_timeout');
    expect(responses[0]?.headers.connection).toBe('close');
    await expectDatabaseNotBlamed();
  });

  it('does the same on an authenticated route, whose authentication came before the body', async () => {
    const body = JSON.stringify({ name: 'slow-body', repo: 'https://github.com/demo/slow' });
    const head = jsonHead('POST', '/projects', body.length, { Authorization: `Bearer ${token}` });
    const responses = await exchange(port, [head, body.slice(0, 10)]);
    expect(responses.map((response) => response.status)).toEqual([408]);
    expectProblem(responses[0], 408, 'request_timeout');
    await expectDatabaseNotBlamed();
    const list = await app.inject({ url: '/projects?q=slow-body', headers: { authorization: `Bearer ${token}` } });
    expect(list.json<{ total: number }>().total).toBe(0);
  });

  it('answers a request refused before its body once: no 408 follows the 401 when the body never comes', async () => {
    const body = JSON.stringify({ name: 'never', repo: 'https://github.com/demo/never' });
    const responses = await exchange(port, [jsonHead('POST', '/projects', body.length), body.slice(0, 3)]);
    expect(responses.map((response) => response.status)).toEqual([401]);
    expectProblem(responses[0], 401, 'unauthorized');
    await expectDatabaseNotBlamed();
  });

  it('still gives a request whose body came slowly its full database deadline, counted from the end of the body', async () => {
    const body = JSON.stringify({ anything: true });
    // The body takes longer than the 0.5 s deadline (and less than the 2 s request timeout) to arrive, then the
    // handler never answers.
    const head = jsonHead('POST', '/test/stuck', body.length, { Connection: 'close' });
    const responses = await exchange(port, [head, body.slice(0, 4), 900, body.slice(4)]);
    expect(responses.map((response) => response.status)).toEqual([503]);
    expectProblem(responses[0], 503, 'service_unavailable');
    expect(JSON.parse(responses[0]?.body ?? '{}')).toMatchObject({ detail: expect.stringContaining('No answer from the database') });
  });

  it('answers headers larger than Node reads with a 431 problem', async () => {
    const responses = await exchange(port, [`GET /status HTTP/1.1\r\nHost: usine.test\r\nX-Padding: ${'p'.repeat(20_000)}\r\n\r\n`]);
    expect(responses).toHaveLength(1);
    expectProblem(responses[0], 431, 'headers_too_large');
  });

  it('answers a request line longer than Node reads with the same 431 problem', async () => {
    const responses = await exchange(port, [`GET /projects?q=${'q'.repeat(20_000)} HTTP/1.1\r\nHost: usine.test\r\n\r\n`]);
    expect(responses).toHaveLength(1);
    expectProblem(responses[0], 431, 'headers_too_large');
  });

  it('answers bytes that are not HTTP with a 400 problem', async () => {
    const responses = await exchange(port, ['NOT HTTP AT ALL\r\n\r\n']);
    expect(responses).toHaveLength(1);
    expectProblem(responses[0], 400, 'validation_error');
  });
});
