/**
 * Limits, over a real socket where the HTTP parser matters: bodies over BODY_LIMIT (announced and chunked), slow-loris
 * headers, idle connections, absurd headers and query strings; then every maxLength/maximum of the OpenAPI document.
 *
 * The server's timeouts are settings (HTTP_CONNECTION_TIMEOUT_S 60, HTTP_HEADERS_TIMEOUT_S 10, HTTP_REQUEST_TIMEOUT_S 30,
 * HTTP_KEEP_ALIVE_TIMEOUT_S 72 by default; src/server.ts has Node sweep for them every second). The timeout scenarios
 * start a server of their own with them lowered to a second or two, so that they do not wait minutes.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from '../../src/server.js';
import { createScratchDatabase, injectAs, login, testConfig, testDb, waitForBuild, type ScratchDatabase } from '../helper.js';
import { changedTables, snapshotDb } from './db-snapshot.js';
import { operationsOf, resolve, type JsonSchema, type OpenApiDocument } from './openapi-arbitraries.js';
import { recordScenario } from './record.js';

const BODY_LIMIT = 64 * 1024;

function parseStatus(text: string): number {
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  return match ? Number(match[1]) : 0;
}

/** Opens a raw TCP connection to the app. */
async function open(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  socket.setNoDelay(true);
  return socket;
}

/** Collects what a socket receives until it closes or `waitMs` passes. */
function collect(socket: Socket) {
  const chunks: Buffer[] = [];
  let closed = false;
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const closedPromise = new Promise<void>((resolveClosed) => {
    socket.on('close', () => {
      closed = true;
      resolveClosed();
    });
    socket.on('error', () => {});
  });
  return {
    text: () => Buffer.concat(chunks).toString('latin1'),
    isClosed: () => closed,
    closedWithin: (ms: number) => Promise.race([closedPromise.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]),
    answered: async (ms: number) => {
      const deadline = Date.now() + ms;
      while (!/\r\n\r\n/.test(Buffer.concat(chunks).toString('latin1')) && !closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return parseStatus(Buffer.concat(chunks).toString('latin1'));
    },
  };
}

/** Writes `total` bytes in `chunk`-sized pieces, stopping as soon as `stop()` says so or the socket dies. */
async function pump(socket: Socket, total: number, chunkSize: number, stop: () => boolean, format: (chunk: Buffer) => Buffer = (c) => c): Promise<number> {
  const chunk = Buffer.alloc(chunkSize, 'a');
  let written = 0;
  while (written < total && !stop() && !socket.destroyed) {
    const ok = socket.write(format(chunk));
    written += chunkSize;
    if (!ok) {
      // once() rejects on 'error' (EPIPE, ECONNRESET: the server hung up, which is what a limit should do).
      const drained = await Promise.race([
        once(socket, 'drain').then(
          () => true,
          () => false,
        ),
        new Promise<boolean>((r) => setTimeout(() => r(false), 2000)),
      ]);
      if (!drained) break;
    }
  }
  return written;
}

describe(`limits of size and time (${testDb})`, () => {
  let scratch: ScratchDatabase;
  let app: FastifyInstance;
  let port: number;
  let admin: string;
  const figures: Record<string, number | string | boolean> = {};
  const findings: string[] = [];

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    app = await createServer(
      testConfig(scratch.url, { BODY_LIMIT: String(BODY_LIMIT), BUILD_CONCURRENCY: '1', UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0' }),
      { logger: false },
    );
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    port = typeof address === 'object' && address ? address.port : 0;
    admin = await login(app);
    await injectAs(app, admin, { method: 'POST', url: '/projects', payload: { name: 'limits', repo: 'https://example.com/limits.git' } });
  });

  afterAll(async () => {
    recordScenario({
      scenario: 'limits',
      db: testDb,
      what: `Bodies over BODY_LIMIT=${BODY_LIMIT} (Content-Length of 1 GiB, and chunked), slow-loris headers, idle connections, a 20 KB header and a 100 KB query string over real sockets; every maxLength/maximum of the OpenAPI document exceeded by one.`,
      happened: findings.length ? findings.join(' ') : 'Every limit held: 413 before the body, 431 for oversized heads, timeouts closing slow and idle sockets, 400 one past each documented bound.',
      ok: findings.length === 0,
      figures,
    });
    await app?.close();
    await scratch?.drop();
  });

  it('runs with the timeouts its settings give (defaults: 60 s idle, 10 s for headers, 30 s per request, 72 s keep-alive)', () => {
    const server = app.server;
    figures.connection_timeout_ms = server.timeout;
    figures.request_timeout_ms = server.requestTimeout;
    figures.headers_timeout_ms = server.headersTimeout;
    figures.keep_alive_timeout_ms = server.keepAliveTimeout;
    expect(server.timeout).toBe(60_000);
    expect(server.headersTimeout).toBe(10_000);
    expect(server.requestTimeout).toBe(30_000);
    expect(server.keepAliveTimeout).toBe(72_000);
  });

  it('a Content-Length of 1 GiB is refused with 413 before the body is sent, and the body is not read to its end', async () => {
    const socket = await open(port);
    const seen = collect(socket);
    const started = Date.now();
    socket.write(
      `POST /projects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${admin}\r\nContent-Type: application/json\r\nContent-Length: ${2 ** 30}\r\n\r\n`,
    );
    const status = await seen.answered(30_000);
    figures.announced_body_status = status;
    expect(status).toBe(413);
    expect(seen.text()).toMatch(/application\/problem\+json/i);
    expect(seen.text()).toContain('"error":"payload_too_large"');
    // Now try to push the announced gigabyte anyway: the server must not swallow it all. 64 MiB is the bound here.
    const written = await pump(socket, 64 * 2 ** 20, 256 * 1024, () => seen.isClosed());
    const closed = await seen.closedWithin(5_000);
    figures.announced_body_bytes_written_after_413 = written;
    figures.announced_body_connection_closed = closed;
    figures.announced_body_ms = Date.now() - started;
    socket.destroy();
    if (!closed) findings.push(`After a 413 for Content-Length 1 GiB the server kept the connection open and read ${written} bytes of the body.`);
    expect(written, 'the server read on after its 413 (it should close the connection)').toBeLessThan(64 * 2 ** 20);
  });

  it('a chunked body over the limit is cut at the limit with 413 (not read to its end)', async () => {
    const socket = await open(port);
    const seen = collect(socket);
    socket.write(`POST /projects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${admin}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const total = 32 * 2 ** 20;
    const written = await pump(socket, total, 16 * 1024, () => parseStatus(seen.text()) !== 0 || seen.isClosed(), (chunk) =>
      Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]),
    );
    const status = await seen.answered(30_000);
    figures.chunked_body_status = status;
    figures.chunked_body_bytes_written = written;
    socket.destroy();
    expect(status).toBe(413);
    expect(written).toBeLessThan(total);
  });

  /** A server of its own (transport-level: SQLite in memory) with the given HTTP timeout settings, listening. */
  async function withServer(env: Record<string, string>, use: (timedPort: number) => Promise<void>): Promise<void> {
    const timed = await createServer(testConfig(':memory:', { BUILD_CONCURRENCY: '0', UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0', ...env }), { logger: false });
    try {
      await timed.listen({ host: '127.0.0.1', port: 0 });
      const address = timed.server.address();
      await use(typeof address === 'object' && address ? address.port : 0);
    } finally {
      await timed.close();
    }
  }

  it('slow-loris: headers sent a byte at a time are cut off (HTTP_HEADERS_TIMEOUT_S=1, HTTP_REQUEST_TIMEOUT_S=2)', async () => {
    await withServer({ HTTP_HEADERS_TIMEOUT_S: '1', HTTP_REQUEST_TIMEOUT_S: '2' }, async (timedPort) => {
      const socket = await open(timedPort);
      const seen = collect(socket);
      const started = Date.now();
      const head = `GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ${'z'.repeat(2000)}`;
      let sent = 0;
      while (!seen.isClosed() && Date.now() - started < 20_000 && sent < head.length) {
        socket.write(head[sent++] ?? 'z');
        await new Promise((r) => setTimeout(r, 100));
      }
      const closed = seen.isClosed() || (await seen.closedWithin(2_000));
      figures.slowloris_closed = closed;
      figures.slowloris_bytes_sent = sent;
      figures.slowloris_status = parseStatus(seen.text());
      figures.slowloris_ms = Date.now() - started;
      socket.destroy();
      if (!closed) findings.push('A slow-loris connection was still open after 20 s with a 1 s headers timeout.');
      expect(closed).toBe(true);
      expect([0, 408]).toContain(parseStatus(seen.text()));
    });
  }, 60_000);

  it('an idle connection is closed by HTTP_CONNECTION_TIMEOUT_S (1 s here), and an idle keep-alive one by HTTP_KEEP_ALIVE_TIMEOUT_S (1 s)', async () => {
    await withServer({ HTTP_CONNECTION_TIMEOUT_S: '1', HTTP_KEEP_ALIVE_TIMEOUT_S: '1', SSE_KEEPALIVE_S: '0.5' }, async (timedPort) => {
      const idle = await open(timedPort);
      const idleSeen = collect(idle);
      const idleClosed = await idleSeen.closedWithin(15_000);
      figures.idle_connection_closed = idleClosed;
      idle.destroy();
      expect(idleClosed).toBe(true);

      const kept = await open(timedPort);
      const keptSeen = collect(kept);
      kept.write('GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n');
      expect(await keptSeen.answered(10_000)).toBe(200);
      const keptClosed = await keptSeen.closedWithin(15_000);
      figures.keepalive_connection_closed = keptClosed;
      kept.destroy();
      expect(keptClosed).toBe(true);
    });
  }, 60_000);

  it('a 20 KB header and a 100 KB query string are refused with 431 (never 5xx), and the server still answers after', async () => {
    const statuses: Record<string, number> = {};
    for (const [name, head] of [
      ['header_20kb', `GET /status HTTP/1.1\r\nHost: x\r\nX-Big: ${'h'.repeat(20 * 1024)}\r\n\r\n`],
      ['many_headers', `GET /status HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 3000 }, (_, i) => `X-H${i}: v`).join('\r\n')}\r\n\r\n`],
      ['query_100kb', `GET /projects?q=${'q'.repeat(100 * 1024)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${admin}\r\n\r\n`],
      ['authorization_20kb', `GET /me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'t'.repeat(20 * 1024)}\r\n\r\n`],
    ] as const) {
      const socket = await open(port);
      const seen = collect(socket);
      socket.write(head);
      statuses[name] = await seen.answered(15_000);
      socket.destroy();
    }
    for (const [name, status] of Object.entries(statuses)) figures[`${name}_status`] = status;
    for (const status of Object.values(statuses)) {
      expect(status).toBeGreaterThanOrEqual(400);
      expect(status).toBeLessThan(500);
    }
    expect(statuses.header_20kb).toBe(431);
    expect(statuses.query_100kb).toBe(431);
    // 100 headers is Node's default maxHeadersCount: the rest are dropped, not refused; whatever the answer, not a 5xx.
    const after = await fetch(`http://127.0.0.1:${port}/health/live`);
    expect(after.status).toBe(200);
  });

  it('one past every maxLength and maximum of the OpenAPI document answers 400 naming the field', async () => {
    const document = (await app.inject({ method: 'GET', url: '/apidocs/json' })).json<OpenApiDocument & { paths: Record<string, Record<string, { requestBody?: { content?: Record<string, { example?: Record<string, unknown> }> } }>> }>();
    const operations = operationsOf(document);
    const ids: Record<string, string> = { id: '1', name: 'none.tar.gz' };
    // A finished build 1 for the build routes.
    const build = await injectAs(app, admin, { method: 'POST', url: '/projects/1/builds' });
    await waitForBuild(app, admin, build.json<{ id: number }>().id);
    let checked = 0;
    const failures: string[] = [];
    const before = await snapshotDb(app.database);
    for (const op of operations) {
      const url = op.path.replace(/\{(\w+)\}/g, (_m, name: string) => ids[name] ?? '1');
      const example = document.paths[op.path]?.[op.method.toLowerCase()]?.requestBody?.content?.['application/json']?.example ?? {};
      const bodySchema = op.body ? resolve(op.body.schema, document) : undefined;
      for (const [field, raw] of Object.entries(bodySchema?.properties ?? {})) {
        const schema = resolve(raw as JsonSchema, document);
        if (schema.maxLength === undefined) continue;
        const payload = { ...example, [field]: 'a'.repeat(schema.maxLength + 1) };
        const response = await injectAs(app, admin, { method: op.method as 'POST', url, payload });
        checked++;
        const errors = (response.json<{ errors?: { path: string }[] }>().errors ?? []).map((e) => e.path);
        if (response.statusCode !== 400 || !errors.includes(`/body/${field}`)) failures.push(`${op.method} ${url} ${field}×${schema.maxLength + 1} → ${response.statusCode} ${response.body.slice(0, 200)}`);
      }
      for (const parameter of op.queryParams) {
        const schema = resolve(parameter.schema ?? {}, document);
        const bounds: string[] = [];
        if (schema.maximum !== undefined) bounds.push(String(schema.maximum + 1), `${schema.maximum}0`);
        if (schema.minimum !== undefined) bounds.push(String(schema.minimum - 1));
        if (schema.maxLength !== undefined) bounds.push('a'.repeat(schema.maxLength + 1));
        for (const value of bounds) {
          const response = await injectAs(app, admin, { method: op.method as 'GET', url: `${url}?${parameter.name}=${value}` });
          checked++;
          if (response.statusCode !== 400) failures.push(`${op.method} ${url}?${parameter.name}=${value.slice(0, 30)} → ${response.statusCode}`);
        }
      }
    }
    // The seed's pagination bound, spelled out: per_page 100 is fine, 101 is a 400.
    expect((await injectAs(app, admin, { method: 'GET', url: '/projects?per_page=100' })).statusCode).toBe(200);
    expect((await injectAs(app, admin, { method: 'GET', url: '/projects?per_page=101' })).statusCode).toBe(400);
    const changed = changedTables(before, await snapshotDb(app.database));
    // Build logs are bounded: a whole simulated run stays far below a megabyte.
    const logs = await injectAs(app, admin, { method: 'GET', url: `/builds/${build.json<{ id: number }>().id}/logs` });
    figures.bounds_checked = checked;
    figures.bounds_failures = failures.length;
    figures.log_bytes_of_one_build = logs.body.length;
    if (failures.length) findings.push(`Bounds not enforced: ${failures.join('; ')}.`);
    expect(failures).toEqual([]);
    expect(changed, 'refused over-long requests changed the database').toEqual([]);
    expect(checked).toBeGreaterThan(15);
    expect(logs.statusCode).toBe(200);
    expect(logs.body.length).toBeLessThan(64 * 1024);
  });
});
