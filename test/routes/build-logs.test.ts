import type { AccessTokenClaims } from '../../plugins/external/jwt.js';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { linesFrom, parseByteRange } from '../../src/builds/log-slice.js';
import { acceptsEventStream, formatComment, formatEvent } from '../../src/http/sse.js';
import { createServer } from '../../src/server.js';
import {
  createScratchDatabase,
  injectAs,
  login,
  problemOf,
  testConfig,
  testDb,
  uniqueName,
  useTestApp,
  type ScratchDatabase,
} from '../helper.js';
import { openEventStream, SseParser, type OpenedStream, type SseEventItem, type SseItem } from '../sse-client.js';

interface BuildBody {
  id: number;
  status: string;
  logs: string;
}

const TERMINAL = ['success', 'fail', 'canceled'];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const byteLength = (text: string) => Buffer.byteLength(text, 'utf8');
const isEnd = (item: SseItem) => item.kind === 'event' && item.event === 'end';
const lineEvents = (events: SseEventItem[]) => events.filter((event) => event.event === 'message');

/** Creates a project (its name has multibyte characters, and appears in the log) and triggers one build of it. */
async function triggerBuild(app: FastifyInstance, token: string): Promise<BuildBody> {
  const project = await injectAs(app, token, {
    method: 'POST',
    url: '/projects',
    payload: { name: uniqueName('café-ünïcödé'), repo: 'https://github.com/demo/repo' },
  });
  expect(project.statusCode, project.body).toBe(201);
  const build = await injectAs(app, token, { method: 'POST', url: `/projects/${project.json<{ id: number }>().id}/builds` });
  expect(build.statusCode, build.body).toBe(201);
  return build.json<BuildBody>();
}

async function getBuild(app: FastifyInstance, token: string, id: number): Promise<BuildBody> {
  const response = await injectAs(app, token, { method: 'GET', url: `/builds/${id}` });
  expect(response.statusCode, response.body).toBe(200);
  return response.json<BuildBody>();
}

async function waitFinished(app: FastifyInstance, token: string, id: number, timeoutMs = 15_000): Promise<BuildBody> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const build = await getBuild(app, token, id);
    if (TERMINAL.includes(build.status)) return build;
    if (Date.now() > deadline) throw new Error(`build ${id} still ${build.status} after ${timeoutMs} ms`);
    await sleep(25);
  }
}

/** Each event's id is the byte offset just past its line, and the lines are the log's. */
function expectLinesMatchLog(events: SseEventItem[], log: string, from = 0) {
  let offset = from;
  for (const event of events) {
    offset += byteLength(`${event.data}\n`);
    expect(event.id).toBe(String(offset));
  }
  expect(events.map((event) => `${event.data}\n`).join('')).toBe(Buffer.from(log).subarray(from).toString('utf8'));
}

describe(`GET /builds/:id/logs as plain text (${testDb})`, () => {
  const ctx = useTestApp();
  let build: BuildBody;
  let log: Buffer;

  beforeAll(async () => {
    const queued = await triggerBuild(ctx.app, ctx.adminToken);
    build = await waitFinished(ctx.app, ctx.adminToken, queued.id);
    log = Buffer.from(build.logs, 'utf8');
    // The log holds multibyte characters: byte offsets and character offsets differ.
    expect(log.length).toBeGreaterThan(build.logs.length);
  });

  const get = (url: string, headers: Record<string, string> = {}) => injectAs(ctx.app, ctx.adminToken, { method: 'GET', url, headers });

  it('answers the whole log as text/plain, with the status and the size in bytes', async () => {
    const response = await get(`/builds/${build.id}/logs`);
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(response.headers['x-build-status']).toBe(build.status);
    expect(response.headers['x-log-size']).toBe(String(log.length));
    expect(response.headers['x-request-id']).toBeTruthy();
    expect(response.rawPayload.equals(log)).toBe(true);
    expect(response.body).toBe(build.logs);
    expect(response.body).toContain('café-ünïcödé');
  });

  it('answers only the bytes after ?offset=, counted in UTF-8 bytes', async () => {
    const cut = log.indexOf('é') + 2; // just past the first "é" (2 bytes)
    for (const offset of [0, 1, cut, log.indexOf('\n') + 1, log.length - 1]) {
      const response = await get(`/builds/${build.id}/logs?offset=${offset}`);
      expect(response.statusCode, `offset ${offset}`).toBe(200);
      expect(response.rawPayload.equals(log.subarray(offset)), `offset ${offset}`).toBe(true);
      expect(response.headers['x-log-size']).toBe(String(log.length));
    }
    // Inside a multibyte character: the raw bytes, so that a poller's concatenation stays exact.
    const inside = log.indexOf('é') + 1;
    const middle = await get(`/builds/${build.id}/logs?offset=${inside}`);
    expect(Buffer.concat([log.subarray(0, inside), middle.rawPayload]).equals(log)).toBe(true);
  });

  it('answers an empty 200 for an offset at or past the end', async () => {
    for (const offset of [log.length, log.length + 1, 2 ** 40]) {
      const response = await get(`/builds/${build.id}/logs?offset=${offset}`);
      expect(response.statusCode).toBe(200);
      expect(response.body).toBe('');
      expect(response.headers['x-log-size']).toBe(String(log.length));
      expect(response.headers['x-build-status']).toBe(build.status);
    }
  });

  it('serves Range: bytes=N- as 206 with Content-Range, and 416 past the end', async () => {
    const from = log.indexOf('\n') + 1;
    const partial = await get(`/builds/${build.id}/logs`, { range: `bytes=${from}-` });
    expect(partial.statusCode).toBe(206);
    expect(partial.headers['content-range']).toBe(`bytes ${from}-${log.length - 1}/${log.length}`);
    expect(partial.rawPayload.equals(log.subarray(from))).toBe(true);

    const bounded = await get(`/builds/${build.id}/logs`, { range: 'bytes=0-9' });
    expect(bounded.statusCode).toBe(206);
    expect(bounded.rawPayload.equals(log.subarray(0, 10))).toBe(true);

    const suffix = await get(`/builds/${build.id}/logs`, { range: 'bytes=-5' });
    expect(suffix.statusCode).toBe(206);
    expect(suffix.rawPayload.equals(log.subarray(log.length - 5))).toBe(true);

    const past = await get(`/builds/${build.id}/logs`, { range: `bytes=${log.length}-` });
    expect(past.statusCode).toBe(416);
    expect(past.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(past.headers['content-range']).toBe(`bytes */${log.length}`);

    // Not a single byte range: ignored, the whole log.
    const other = await get(`/builds/${build.id}/logs`, { range: 'lines=1-2' });
    expect(other.statusCode).toBe(200);
    expect(other.rawPayload.equals(log)).toBe(true);
  });

  it('answers the log of a build that has not run yet as an empty text', async () => {
    const app = ctx.app;
    // Instant builds finish fast: read the queued build right away, then accept whatever status it reached.
    const queued = await triggerBuild(app, ctx.adminToken);
    const response = await get(`/builds/${queued.id}/logs`);
    expect(response.statusCode).toBe(200);
    expect(Number(response.headers['x-log-size'])).toBe(response.rawPayload.length);
    await waitFinished(app, ctx.adminToken, queued.id);
  });

  it('answers 404 problem details for an unknown build, in plain and stream modes', async () => {
    for (const headers of [{}, { accept: 'text/event-stream' }] as Record<string, string>[]) {
      const response = await get('/builds/999999/logs', headers);
      expect(response.statusCode).toBe(404);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(problemOf(response)).toMatchObject({ status: 404, error: 'not_found', detail: 'Build 999999 does not exist' });
    }
  });

  it('answers 400 for a bad offset, Last-Event-ID or id', async () => {
    for (const query of ['offset=-1', 'offset=abc', 'offset=1.5']) {
      const response = await get(`/builds/${build.id}/logs?${query}`);
      expect(response.statusCode, query).toBe(400);
      expect(problemOf(response).error).toBe('validation_error');
      expect(problemOf(response).errors?.[0]?.path).toBe('/querystring/offset');
    }
    const badId = await get(`/builds/${build.id}/logs`, { accept: 'text/event-stream', 'last-event-id': 'nope' });
    expect(badId.statusCode).toBe(400);
    expect(problemOf(badId).error).toBe('validation_error');
    expect((await get('/builds/abc/logs')).statusCode).toBe(400);
  });

  it('answers HEAD with the headers only', async () => {
    const response = await injectAs(ctx.app, ctx.adminToken, { method: 'HEAD', url: `/builds/${build.id}/logs`, headers: { accept: 'text/event-stream' } });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(response.headers['x-log-size']).toBe(String(log.length));
    expect(response.body).toBe('');
  });

  it('answers 401 without a token', async () => {
    for (const headers of [{}, { accept: 'text/event-stream' }]) {
      const response = await ctx.app.inject({ method: 'GET', url: `/builds/${build.id}/logs`, headers });
      expect(response.statusCode).toBe(401);
      expect(problemOf(response).error).toBe('unauthorized');
    }
  });

  it('documents text/plain and text/event-stream for 200 in the OpenAPI document', async () => {
    const response = await ctx.app.inject({ method: 'GET', url: '/apidocs/json' });
    const operation = response.json<{ paths: Record<string, { get: { responses: Record<string, { content: object }> } }> }>().paths[
      '/builds/{id}/logs'
    ]?.get;
    expect(Object.keys(operation?.responses['200']?.content ?? {}).sort()).toEqual(['text/event-stream', 'text/plain']);
  });
});

/** An app on a scratch database, listening on a free local port, with the seeded admin logged in. */
async function listeningApp(env: Record<string, string>) {
  const scratch: ScratchDatabase = await createScratchDatabase();
  const app = await createServer(testConfig(scratch.url, env), { logger: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('not listening on a port');
  const base = `http://127.0.0.1:${address.port}`;
  const login = await fetch(`${base}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: 'admin123' }),
  });
  expect(login.status).toBe(200);
  const token = ((await login.json()) as { access_token: string }).access_token;

  // Counts the event-bus subscriptions taken from now on and still held (the workers' are older).
  let subscribed = 0;
  const bus = app.buildEvents;
  const subscribe = bus.subscribe.bind(bus);
  bus.subscribe = (listener) => {
    subscribed++;
    const unsubscribe = subscribe(listener);
    let once = false;
    return () => {
      if (!once) subscribed--;
      once = true;
      unsubscribe();
    };
  };

  let closed = false;
  return {
    app,
    base,
    token,
    auth: { authorization: `Bearer ${token}` },
    subscriptions: () => subscribed,
    async close() {
      if (!closed) await app.close();
      closed = true;
      await scratch.drop();
    },
    markClosed() {
      closed = true;
    },
  };
}

async function eventually(check: () => boolean, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}

describe(`GET /builds/:id/logs as a live event stream (${testDb})`, () => {
  let server: Awaited<ReturnType<typeof listeningApp>>;

  beforeAll(async () => {
    server = await listeningApp({ BUILD_TIME_SCALE: '0.3' });
  });
  afterAll(async () => {
    await server?.close();
  });

  const logsUrl = (id: number, query = '') => `${server.base}/builds/${id}/logs${query}`;

  it('sends lines while the build runs, then `end` with the final status, then closes', async () => {
    const queued = await triggerBuild(server.app, server.token);
    const stream = await openEventStream(logsUrl(queued.id), server.auth);
    expect(stream.response.status).toBe(200);
    expect(stream.response.headers.get('content-type')).toBe('text/event-stream');
    expect(stream.response.headers.get('cache-control')).toBe('no-cache');
    expect(stream.response.headers.get('x-accel-buffering')).toBe('no');
    // Fastify's hooks ran on the streamed response too.
    expect(stream.response.headers.get('x-request-id')).toBeTruthy();
    expect(stream.response.headers.get('x-content-type-options')).toBe('nosniff');

    // (a) A first line arrives before the build has finished.
    await stream.waitFor((item) => item.kind === 'event' && item.event === 'message');
    const during = await getBuild(server.app, server.token, queued.id);
    expect(TERMINAL).not.toContain(during.status);

    // (b) `end` with the final status, then the stream closes.
    const end = await stream.waitFor(isEnd, 15_000);
    await stream.waitClosed(2000);
    const finished = await getBuild(server.app, server.token, queued.id);
    expect(TERMINAL).toContain(finished.status);
    expect(end.kind === 'event' && JSON.parse(end.data)).toEqual({ status: finished.status });
    expect(end.kind === 'event' && end.id).toBe(String(byteLength(finished.logs)));

    expect(stream.raw.startsWith('retry: 2000\n\n')).toBe(true);
    const events = stream.events();
    expect(events.at(-1)).toBe(end);
    const lines = lineEvents(events);
    expect(lines.length).toBeGreaterThan(3);
    expectLinesMatchLog(lines, finished.logs);
    // The lines came over time, not all at the end.
    expect((lines.at(-1)?.at ?? 0) - (lines[0]?.at ?? 0)).toBeGreaterThan(100);

    // (c) Reconnecting with Last-Event-ID from the middle gives exactly the rest.
    const middle = lines[Math.floor(lines.length / 2)];
    const rest = await openEventStream(logsUrl(queued.id), { ...server.auth, 'last-event-id': String(middle?.id) });
    await rest.waitClosed(5000);
    const restEvents = rest.events();
    expect(restEvents.at(-1)).toMatchObject({ event: 'end', data: JSON.stringify({ status: finished.status }) });
    expectLinesMatchLog(lineEvents(restEvents), finished.logs, Number(middle?.id));
    expect(lineEvents(restEvents).map((e) => e.data)).toEqual(lines.slice(Math.floor(lines.length / 2) + 1).map((e) => e.data));

    // ?offset= resumes the same way, and Last-Event-ID wins over it.
    const byOffset = await openEventStream(logsUrl(queued.id, `?offset=${middle?.id}`), server.auth);
    await byOffset.waitClosed(5000);
    expect(byOffset.events()).toEqual(restEvents.map((e) => ({ ...e, at: expect.any(Number) })));
    const both = await openEventStream(logsUrl(queued.id, '?offset=0'), { ...server.auth, 'last-event-id': String(middle?.id) });
    await both.waitClosed(5000);
    expect(lineEvents(both.events()).map((e) => e.id)).toEqual(lineEvents(restEvents).map((e) => e.id));

    await eventually(() => server.subscriptions() === 0);
  });

  it('streams a finished build whole, then `end`, at once', async () => {
    const queued = await triggerBuild(server.app, server.token);
    const finished = await waitFinished(server.app, server.token, queued.id);
    const started = Date.now();
    const stream = await openEventStream(logsUrl(queued.id), server.auth);
    await stream.waitClosed(1500);
    expect(Date.now() - started).toBeLessThan(1500);
    const events = stream.events();
    expect(events.at(-1)).toMatchObject({ event: 'end', id: String(byteLength(finished.logs)), data: JSON.stringify({ status: finished.status }) });
    expectLinesMatchLog(lineEvents(events), finished.logs);

    // Resuming at the very end: only `end`.
    const atEnd = await openEventStream(logsUrl(queued.id), { ...server.auth, 'last-event-id': String(byteLength(finished.logs)) });
    await atEnd.waitClosed(1500);
    expect(atEnd.events()).toEqual([expect.objectContaining({ event: 'end' })]);
    await eventually(() => server.subscriptions() === 0);
  });

  it('follows several clients of one build at once, each getting every line once', async () => {
    const queued = await triggerBuild(server.app, server.token);
    const streams = await Promise.all([1, 2, 3].map(() => openEventStream(logsUrl(queued.id), server.auth)));
    await Promise.all(streams.map((stream) => stream.waitClosed(15_000)));
    const finished = await getBuild(server.app, server.token, queued.id);
    for (const stream of streams) expectLinesMatchLog(lineEvents(stream.events()), finished.logs);
    await eventually(() => server.subscriptions() === 0);
  });
});

describe(`GET /builds/:id/logs stream of a build that waits (${testDb})`, () => {
  let server: Awaited<ReturnType<typeof listeningApp>>;

  beforeAll(async () => {
    // No workers: builds stay queued. Keep-alives every 100 ms.
    server = await listeningApp({ BUILD_CONCURRENCY: '0', SSE_KEEPALIVE_S: '0.1' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('sends keep-alive comments, and lets go of everything when the client leaves', async () => {
    const queued = await triggerBuild(server.app, server.token);
    // node:http, not fetch: after an abort, fetch reconnects at once (see test/sse-client.ts).
    const stream = await openEventStream(`${server.base}/builds/${queued.id}/logs`, server.auth, { transport: 'http' });
    expect(stream.response.status).toBe(200);
    expect(stream.response.headers.get('x-build-status')).toBe('queued');
    await stream.waitFor((item) => item.kind === 'comment' && item.text === 'keep-alive' && stream.items.filter((i) => i.kind === 'comment').length >= 3, 3000);
    expect(stream.events()).toEqual([]);
    expect(server.subscriptions()).toBe(1);

    stream.abort();
    await stream.waitClosed(1000);
    await eventually(() => server.subscriptions() === 0);
  });

  it('ends open streams when the app closes, so that closing does not wait for them', async () => {
    const other = await listeningApp({ BUILD_CONCURRENCY: '0', SSE_KEEPALIVE_S: '0.1' });
    try {
      const queued = await triggerBuild(other.app, other.token);
      const streams = await Promise.all([1, 2].map(() => openEventStream(`${other.base}/builds/${queued.id}/logs`, other.auth)));
      await Promise.all(streams.map((stream) => stream.waitFor((item) => item.kind === 'comment')));
      const started = Date.now();
      await other.app.close();
      other.markClosed();
      expect(Date.now() - started).toBeLessThan(2000);
      await Promise.all(streams.map((stream) => stream.waitClosed(1000)));
      for (const stream of streams) {
        expect(stream.items.at(-1)).toMatchObject({ kind: 'comment', text: 'server shutting down: reconnect to resume' });
        expect(stream.events()).toEqual([]);
      }
      expect(other.subscriptions()).toBe(0);
    } finally {
      await other.close();
    }
  });
});

/** Creates a user with the role and logs it in (a session of its own); the user's id and bearer headers. */
async function newUser(app: FastifyInstance, adminToken: string, role: 'viewer' | 'maintainer' = 'viewer') {
  const username = uniqueName(role);
  const password = `Pw-${uniqueName('secret')}-x9`;
  const created = await injectAs(app, adminToken, { method: 'POST', url: '/users', payload: { username, password, role } });
  expect(created.statusCode, created.body).toBe(201);
  const token = await login(app, username, password);
  return { id: created.json<{ id: number }>().id, username, password, token, auth: { authorization: `Bearer ${token}` } };
}

/** A stream request answered with a problem: its status, Retry-After and body (openEventStream does not read those). */
async function refusedStream(url: string, headers: Record<string, string>) {
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers } });
  const text = await response.text();
  return { status: response.status, retryAfter: response.headers.get('retry-after'), type: response.headers.get('content-type'), body: text };
}

/** Tries to open a stream until one is accepted (a slot given back is seen by the server a moment after the client hangs up). */
async function openWhenAccepted(url: string, headers: Record<string, string>, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const stream = await openEventStream(url, headers, { transport: 'http' });
    if (stream.response.status === 200) return stream;
    expect(stream.response.status).toBe(429);
    if (Date.now() > deadline) throw new Error(`still 429 after ${timeoutMs} ms`);
    await sleep(20);
  }
}

const isRetry = (item: SseItem) => item.kind === 'retry';

describe(`GET /builds/:id/logs stream caps (${testDb})`, () => {
  let server: Awaited<ReturnType<typeof listeningApp>>;
  let buildId: number;
  const opened: OpenedStream[] = [];

  beforeAll(async () => {
    // No workers: the build stays queued and its streams stay open. The per-user cap is the default (50).
    server = await listeningApp({ BUILD_CONCURRENCY: '0' });
    buildId = (await triggerBuild(server.app, server.token)).id;
  });
  afterAll(async () => {
    for (const stream of opened) stream.abort();
    await server?.close();
  });

  const url = () => `${server.base}/builds/${buildId}/logs`;

  it("refuses a user's 51st stream with 429 and Retry-After, serves another user, and takes one more once one closes", async () => {
    // node:http streams, one connection each (see test/sse-client.ts on aborted fetches).
    const mine = await Promise.all(Array.from({ length: 50 }, () => openEventStream(url(), server.auth, { transport: 'http' })));
    opened.push(...mine);
    expect(mine.map((stream) => stream.response.status)).toEqual(Array.from({ length: 50 }, () => 200));

    const refused = await refusedStream(url(), server.auth);
    expect(refused.status).toBe(429);
    expect(refused.type).toBe('application/problem+json');
    expect(Number(refused.retryAfter)).toBeGreaterThan(0);
    const problem = JSON.parse(refused.body) as { status: number; error: string; detail: string };
    expect(problem).toMatchObject({ status: 429, error: 'rate_limited' });
    expect(problem.detail).toMatch(/\b50\b/);
    // The plain-text log is not capped.
    expect((await injectAs(server.app, server.token, { method: 'GET', url: `/builds/${buildId}/logs` })).statusCode).toBe(200);

    const viewer = await newUser(server.app, server.token);
    const theirs = await openEventStream(url(), viewer.auth, { transport: 'http' });
    opened.push(theirs);
    expect(theirs.response.status).toBe(200);

    // One of the 50 hangs up: its slot comes back, and the next stream is accepted.
    mine[0]!.abort();
    await mine[0]!.waitClosed(1000);
    const again = await openWhenAccepted(url(), server.auth);
    opened.push(again);
    expect(again.response.status).toBe(200);
    // …and only one: the 52nd is refused again.
    expect((await refusedStream(url(), server.auth)).status).toBe(429);
    // The earlier streams are still open and were not disturbed.
    expect(mine.slice(1).every((stream) => !stream.isClosed())).toBe(true);
  });
});

describe(`GET /builds/:id/logs process cap and slots given back (${testDb})`, () => {
  let server: Awaited<ReturnType<typeof listeningApp>>;

  beforeAll(async () => {
    server = await listeningApp({ BUILD_CONCURRENCY: '0', SSE_MAX_STREAMS_PER_USER: '2', SSE_MAX_STREAMS: '3' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('refuses any user once the process holds SSE_MAX_STREAMS, and accepts again once one closes', async () => {
    const queued = await triggerBuild(server.app, server.token);
    const url = `${server.base}/builds/${queued.id}/logs`;
    const [alice, bob, carol] = await Promise.all([1, 2, 3].map(() => newUser(server.app, server.token)));
    const aliceStreams = [await openEventStream(url, alice!.auth, { transport: 'http' }), await openEventStream(url, alice!.auth, { transport: 'http' })];
    // Alice's own cap first…
    const aliceThird = await refusedStream(url, alice!.auth);
    expect(aliceThird.status).toBe(429);
    expect(JSON.parse(aliceThird.body)).toMatchObject({ error: 'rate_limited', detail: expect.stringMatching(/\b2\b.*one user/) });
    // …then the process's: Bob gets the third slot, Carol none.
    const bobStream = await openEventStream(url, bob!.auth, { transport: 'http' });
    expect([...aliceStreams, bobStream].map((stream) => stream.response.status)).toEqual([200, 200, 200]);
    const carolRefused = await refusedStream(url, carol!.auth);
    expect(carolRefused.status).toBe(429);
    expect(Number(carolRefused.retryAfter)).toBeGreaterThan(0);
    expect(JSON.parse(carolRefused.body)).toMatchObject({ error: 'rate_limited', detail: expect.stringMatching(/server .*\b3\b/) });

    bobStream.abort();
    const carolStream = await openWhenAccepted(url, carol!.auth);
    expect(carolStream.response.status).toBe(200);
    for (const stream of [...aliceStreams, carolStream]) stream.abort();
    await Promise.all([...aliceStreams, carolStream].map((stream) => stream.waitClosed(1000)));
    // Every slot comes back: three users stream again.
    const next = [await openWhenAccepted(url, alice!.auth), await openWhenAccepted(url, bob!.auth), await openWhenAccepted(url, carol!.auth)];
    expect(next.map((stream) => stream.response.status)).toEqual([200, 200, 200]);
    for (const stream of next) stream.abort();
    await eventually(() => server.subscriptions() === 0);
  });

  it('gives the slot back when the server ends the stream: a finished build, a revoked session', async () => {
    const viewer = await newUser(server.app, server.token);
    const queued = await triggerBuild(server.app, server.token);
    // Canceled: finished, so each stream sends the log and `end`, then closes. Three in a row with a cap of 2.
    expect((await injectAs(server.app, server.token, { method: 'POST', url: `/builds/${queued.id}/cancel` })).statusCode).toBe(200);
    for (let round = 0; round < 3; round++) {
      const stream = await openEventStream(`${server.base}/builds/${queued.id}/logs`, viewer.auth, { transport: 'http' });
      expect(stream.response.status, `round ${round}`).toBe(200);
      await stream.waitClosed(5000);
      expect(stream.events().at(-1)).toMatchObject({ event: 'end', data: JSON.stringify({ status: 'canceled' }) });
    }

    // Two streams of a session that logs out: both end, and a new session of the same user streams twice again.
    const waiting = await triggerBuild(server.app, server.token);
    const url = `${server.base}/builds/${waiting.id}/logs`;
    const before = [await openEventStream(url, viewer.auth, { transport: 'http' }), await openEventStream(url, viewer.auth, { transport: 'http' })];
    expect((await refusedStream(url, viewer.auth)).status).toBe(429);
    expect((await injectAs(server.app, viewer.token, { method: 'POST', url: '/logout' })).statusCode).toBe(204);
    await Promise.all(before.map((stream) => stream.waitClosed(5000)));
    const relogged = { authorization: `Bearer ${await login(server.app, viewer.username, viewer.password)}` };
    const after = [await openWhenAccepted(url, relogged), await openWhenAccepted(url, relogged)];
    expect(after.map((stream) => stream.response.status)).toEqual([200, 200]);
    for (const stream of after) stream.abort();
    await eventually(() => server.subscriptions() === 0);
  });
});

describe(`GET /builds/:id/logs stream of a caller whose access ends (${testDb})`, () => {
  let server: Awaited<ReturnType<typeof listeningApp>>;
  let buildId: number;
  let adminStream: OpenedStream;

  beforeAll(async () => {
    server = await listeningApp({ BUILD_CONCURRENCY: '0' });
    buildId = (await triggerBuild(server.app, server.token)).id;
    // The admin's stream of the same build runs alongside every test: only the caller whose access ended is cut.
    adminStream = await openEventStream(`${server.base}/builds/${buildId}/logs`, server.auth, { transport: 'http' });
    await adminStream.waitFor(isRetry);
  });
  afterAll(async () => {
    adminStream?.abort();
    await server?.close();
  });

  /** Opens a stream as `user`, runs `end` (what ends their access), and returns the stream once it closed. */
  async function cutBy(user: { auth: Record<string, string> }, end: () => Promise<void>) {
    const stream = await openEventStream(`${server.base}/builds/${buildId}/logs`, user.auth, { transport: 'http' });
    expect(stream.response.status).toBe(200);
    await stream.waitFor(isRetry);
    await end();
    const last = await stream.waitFor(isEnd, 10_000);
    await stream.waitClosed(2000);
    // The `end` event is the last thing sent; it carries the status, the reason, and where to resume.
    expect(stream.items.at(-1)).toBe(last);
    expect(stream.events()).toEqual([last]);
    expect(adminStream.isClosed()).toBe(false);
    expect(adminStream.events()).toEqual([]);
    return last.kind === 'event' ? { id: last.id, data: JSON.parse(last.data) as unknown } : undefined;
  }

  it('ends the stream with `end` {reason: session_revoked} when its session logs out; other sessions stream on', async () => {
    const viewer = await newUser(server.app, server.token);
    const otherLogin = { authorization: `Bearer ${await login(server.app, viewer.username, viewer.password)}` };
    const otherStream = await openEventStream(`${server.base}/builds/${buildId}/logs`, otherLogin, { transport: 'http' });
    await otherStream.waitFor(isRetry);
    const end = await cutBy(viewer, async () => {
      expect((await injectAs(server.app, viewer.token, { method: 'POST', url: '/logout' })).statusCode).toBe(204);
    });
    expect(end).toEqual({ id: '0', data: { status: 'queued', reason: 'session_revoked' } });
    // The same user's other login was not logged out: its stream is still open.
    expect(otherStream.isClosed()).toBe(false);
    otherStream.abort();
  });

  it('ends the stream with `end` {reason: session_revoked} when the password changes', async () => {
    const viewer = await newUser(server.app, server.token);
    const end = await cutBy(viewer, async () => {
      const changed = await injectAs(server.app, server.token, {
        method: 'PATCH',
        url: `/users/${viewer.id}`,
        payload: { password: `Pw-${uniqueName('new')}-x9` },
      });
      expect(changed.statusCode, changed.body).toBe(200);
    });
    expect(end).toEqual({ id: '0', data: { status: 'queued', reason: 'session_revoked' } });
  });

  it('ends the stream with `end` {reason: session_revoked} when a refresh token of its session is reused', async () => {
    const viewer = await newUser(server.app, server.token);
    const session = await server.app.inject({
      method: 'POST',
      url: '/login',
      payload: { username: viewer.username, password: viewer.password },
    });
    const { access_token, refresh_token } = session.json<{ access_token: string; refresh_token: string }>();
    const end = await cutBy({ auth: { authorization: `Bearer ${access_token}` } }, async () => {
      const refresh = (token: string) => server.app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: token } });
      expect((await refresh(refresh_token)).statusCode).toBe(200);
      // The same token again: reuse detection revokes the whole session, the stream's access token with it.
      expect((await refresh(refresh_token)).statusCode).toBe(401);
    });
    expect(end).toEqual({ id: '0', data: { status: 'queued', reason: 'session_revoked' } });
  });

  it('ends the stream with `end` {reason: token_expired} when the access token it was opened with expires', async () => {
    const viewer = await newUser(server.app, server.token);
    // The viewer's own claims (its live session), in a token that expires two seconds from now.
    const { iat: _iat, exp: _exp, iss: _iss, aud: _aud, ...claims } = server.app.jwt.decode<AccessTokenClaims & Record<'iat' | 'exp' | 'iss' | 'aud', unknown>>(viewer.token)!;
    const shortLived = server.app.jwt.sign(claims, { expiresIn: '2s' });
    const end = await cutBy({ auth: { authorization: `Bearer ${shortLived}` } }, async () => {});
    expect(end).toEqual({ id: '0', data: { status: 'queued', reason: 'token_expired' } });
    // The session itself lives on: a fresh token of it streams again.
    const again = await openEventStream(`${server.base}/builds/${buildId}/logs`, viewer.auth, { transport: 'http' });
    expect(again.response.status).toBe(200);
    again.abort();
  });

  it('ends the stream with `end` {reason: user_deleted} when the user is deleted', async () => {
    const viewer = await newUser(server.app, server.token);
    const end = await cutBy(viewer, async () => {
      expect((await injectAs(server.app, server.token, { method: 'DELETE', url: `/users/${viewer.id}` })).statusCode).toBe(204);
    });
    expect(end).toEqual({ id: '0', data: { status: 'queued', reason: 'user_deleted' } });
    await eventually(() => server.subscriptions() === 1);
  });
});

describe('log slicing and event formatting', () => {
  it('cuts whole lines at byte offsets, a last partial line only once the log is final', () => {
    const log = Buffer.from('é1\nline 2\npart', 'utf8');
    expect(linesFrom(log, 0)).toEqual({ lines: [{ text: 'é1', end: 4 }, { text: 'line 2', end: 11 }], next: 11 });
    expect(linesFrom(log, 11)).toEqual({ lines: [], next: 11 });
    expect(linesFrom(log, 11, true)).toEqual({ lines: [{ text: 'part', end: 15 }], next: 15 });
    // Inside "é": from the next character; mid-line: the rest of that line.
    expect(linesFrom(log, 1).lines[0]).toEqual({ text: '1', end: 4 });
    expect(linesFrom(log, 6).lines[0]).toEqual({ text: 'ne 2', end: 11 });
    expect(linesFrom(log, 99, true)).toEqual({ lines: [], next: 99 });
  });

  it('reads single byte ranges and ignores the rest', () => {
    expect(parseByteRange('bytes=5-', 10)).toEqual({ start: 5, end: 9 });
    expect(parseByteRange('bytes=2-4', 10)).toEqual({ start: 2, end: 4 });
    expect(parseByteRange('bytes=2-400', 10)).toEqual({ start: 2, end: 9 });
    expect(parseByteRange('bytes=-3', 10)).toEqual({ start: 7, end: 9 });
    expect(parseByteRange('bytes=10-', 10)).toBe('unsatisfiable');
    expect(parseByteRange('bytes=0-', 0)).toBe('unsatisfiable');
    for (const ignored of [undefined, '', 'bytes=4-2', 'bytes=1-2,4-5', 'items=1-2', 'bytes=-']) {
      expect(parseByteRange(ignored, 10), String(ignored)).toBeUndefined();
    }
  });

  it('formats events that an SSE parser reads back, line breaks in data included', () => {
    const text = formatEvent({ retry: 2000 }) + formatEvent({ id: 7, data: 'a\nb' }) + formatComment('keep-alive') + formatEvent({ event: 'end\nx', data: '' });
    expect(text).toBe('retry: 2000\n\nid: 7\ndata: a\ndata: b\n\n: keep-alive\n\nevent: end x\ndata: \n\n');
    const items = new SseParser().push(text);
    expect(items.map(({ at: _at, ...item }) => item)).toEqual([
      { kind: 'retry', ms: 2000 },
      { kind: 'event', event: 'message', id: '7', data: 'a\nb' },
      { kind: 'comment', text: 'keep-alive' },
      { kind: 'event', event: 'end x', id: '7', data: '' },
    ]);
  });

  it('recognises Accept headers that ask for an event stream', () => {
    expect(acceptsEventStream('text/event-stream')).toBe(true);
    expect(acceptsEventStream('text/plain, Text/Event-Stream;q=0.5')).toBe(true);
    expect(acceptsEventStream('text/event-stream;q=0')).toBe(false);
    expect(acceptsEventStream('*/*')).toBe(false);
    expect(acceptsEventStream(undefined)).toBe(false);
  });
});
