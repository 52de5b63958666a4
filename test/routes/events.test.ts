/**
 * The event log through HTTP: GET /events pages and filters, what each change writes (and what it does not), the
 * events' data against the API's own answers, retention's 410, and live streams resumed with Last-Event-ID.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { components, paths } from '../../clients/typescript/usine.js';
import { createServer } from '../../src/server.js';
import { createScratchDatabase, injectAs, problemOf, testConfig, testDb, uniqueName, useTestApp, waitForBuild, type ScratchDatabase } from '../helper.js';
import { openEventStream, type SseEventItem } from '../sse-client.js';

type EventJson = components['schemas']['Event'];
type EventPage = paths['/events']['get']['responses'][200]['content']['application/json'];

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

async function createProject(app: FastifyInstance, token: string) {
  const response = await injectAs(app, token, { method: 'POST', url: '/projects', payload: { name: uniqueName('ev'), repo: 'https://github.com/demo/repo' } });
  expect(response.statusCode, response.body).toBe(201);
  return response.json<{ id: number; name: string }>();
}

async function trigger(app: FastifyInstance, token: string, projectId: number) {
  const response = await injectAs(app, token, { method: 'POST', url: `/projects/${projectId}/build`, payload: {} });
  expect(response.statusCode, response.body).toBe(201);
  return response.json<{ id: number }>();
}

async function page(app: FastifyInstance, token: string, query: string): Promise<EventPage> {
  const response = await injectAs(app, token, { method: 'GET', url: `/events?${query}` });
  expect(response.statusCode, response.body).toBe(200);
  return response.json<EventPage>();
}

/** Every event of a project, oldest first, once `done` says the log holds what the test waits for. */
async function projectEvents(app: FastifyInstance, token: string, projectId: number, done: (events: EventJson[]) => boolean) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const events: EventJson[] = [];
    let after = 0;
    for (;;) {
      const next = await page(app, token, `project_id=${projectId}&after=${after}&per_page=100`);
      events.push(...next.items);
      if (next.items.length < 100) break;
      after = next.next_after!;
    }
    if (done(events)) return events;
    if (Date.now() > deadline) throw new Error(`events not there in time: ${JSON.stringify(events.map((event) => event.type))}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const terminalBuildEvent = (buildId: number) => (events: EventJson[]) =>
  events.some((event) => event.build_id === buildId && /^build\.(succeeded|failed|canceled)$/.test(event.type));

describe(`GET /events (${testDb})`, () => {
  const ctx = useTestApp({ BUILD_FAIL_RATE: '0' });

  it("logs a project's creation, its build's and jobs' every status, in order, with the API's own representation", async () => {
    const project = await createProject(ctx.app, ctx.adminToken);
    const build = await trigger(ctx.app, ctx.adminToken, project.id);
    const finished = await waitForBuild(ctx.app, ctx.adminToken, build.id);
    const events = await projectEvents(ctx.app, ctx.adminToken, project.id, terminalBuildEvent(build.id));

    const ids = events.map((event) => event.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(ids.length);
    expect(events[0]).toMatchObject({ type: 'project.created', project_id: project.id, build_id: null, job_id: null });
    expect(events[0]!.data).toMatchObject({ id: project.id, name: project.name, last_build_status: null });

    const buildTypes = events.filter((event) => event.type.startsWith('build.')).map((event) => event.type);
    expect(buildTypes).toEqual(['build.queued', 'build.running', 'build.succeeded']);
    for (const event of events) {
      expect(event.created_at).toMatch(ISO_UTC);
      if (event.type !== 'project.created') expect(event.build_id).toBe(build.id);
    }
    // The last build event is the build as GET /builds/:id shows it, without its log.
    const { logs: _logs, ...withoutLogs } = finished;
    expect(events.filter((event) => event.type.startsWith('build.')).at(-1)!.data).toEqual(withoutLogs);

    // Each job: queued, running, succeeded; its last event is the job as GET /jobs/:id shows it.
    const jobs = (await injectAs(ctx.app, ctx.adminToken, { method: 'GET', url: `/builds/${build.id}/jobs` })).json<{ items: { id: number }[] }>().items;
    expect(jobs.length).toBeGreaterThan(1);
    for (const job of jobs) {
      const own = events.filter((event) => event.job_id === job.id);
      expect(own.map((event) => event.type)).toEqual(['job.queued', 'job.running', 'job.succeeded']);
      const shown = (await injectAs(ctx.app, ctx.adminToken, { method: 'GET', url: `/jobs/${job.id}` })).json();
      expect(own.at(-1)!.data).toEqual(shown);
    }
    // A job is queued only once the job it needs succeeded: the log says so in its order.
    const position = (type: string, jobId: number) => events.findIndex((event) => event.type === type && event.job_id === jobId);
    expect(position('job.queued', jobs[1]!.id)).toBeGreaterThan(position('job.succeeded', jobs[0]!.id));
  });

  it('logs a change a user made as project.updated (not the newest build status the triggers keep), and a deletion', async () => {
    const project = await createProject(ctx.app, ctx.adminToken);
    const build = await trigger(ctx.app, ctx.adminToken, project.id);
    await waitForBuild(ctx.app, ctx.adminToken, build.id);
    const patched = await injectAs(ctx.app, ctx.adminToken, { method: 'PATCH', url: `/projects/${project.id}`, payload: { default_branch: 'develop' } });
    expect(patched.statusCode, patched.body).toBe(200);
    const deleted = await injectAs(ctx.app, ctx.adminToken, { method: 'DELETE', url: `/projects/${project.id}` });
    expect(deleted.statusCode).toBe(204);
    const events = await projectEvents(ctx.app, ctx.adminToken, project.id, (all) => all.some((event) => event.type === 'project.deleted'));
    const projectTypes = events.filter((event) => event.type.startsWith('project.')).map((event) => event.type);
    expect(projectTypes).toEqual(['project.created', 'project.updated', 'project.deleted']);
    expect(events.find((event) => event.type === 'project.updated')!.data).toMatchObject({ default_branch: 'develop', last_build_status: 'success' });
    expect(events.at(-1)!.data).toMatchObject({ id: project.id, default_branch: 'develop' });
  });

  it('writes nothing for a change that was refused', async () => {
    const project = await createProject(ctx.app, ctx.adminToken);
    const [created] = await projectEvents(ctx.app, ctx.adminToken, project.id, (all) => all.length > 0);
    const before = created!.id;
    const duplicate = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: '/projects', payload: { name: project.name, repo: 'https://github.com/demo/repo' } });
    expect(duplicate.statusCode).toBe(409);
    // A write that went through afterwards is seen: the refused one left nothing before it.
    const other = await createProject(ctx.app, ctx.adminToken);
    const events = await projectEvents(ctx.app, ctx.adminToken, other.id, (all) => all.length > 0);
    const between = await page(ctx.app, ctx.adminToken, `after=${before}&per_page=100`);
    expect(between.items.map((event) => event.type)).toEqual(['project.created']);
    expect(between.items[0]!.id).toBe(events[0]!.id);
  });

  it('pages newest first with next_before, oldest first after an id with next_after, and filters by type prefix', async () => {
    const project = await createProject(ctx.app, ctx.adminToken);
    for (let i = 0; i < 2; i++) await waitForBuild(ctx.app, ctx.adminToken, (await trigger(ctx.app, ctx.adminToken, project.id)).id);
    const all = await projectEvents(ctx.app, ctx.adminToken, project.id, (events) => events.filter((event) => event.type === 'build.succeeded').length === 2);

    const newest = await page(ctx.app, ctx.adminToken, `project_id=${project.id}&per_page=3`);
    expect(newest.items.map((event) => event.id)).toEqual(all.slice(-3).map((event) => event.id).reverse());
    expect(newest.next_after).toBe(all.at(-1)!.id);
    const older = await page(ctx.app, ctx.adminToken, `project_id=${project.id}&per_page=3&before=${newest.next_before}`);
    expect(older.items.map((event) => event.id)).toEqual(all.slice(-6, -3).map((event) => event.id).reverse());

    const caughtUp = await page(ctx.app, ctx.adminToken, `project_id=${project.id}&after=${all.at(-1)!.id}`);
    expect(caughtUp).toMatchObject({ items: [], next_after: all.at(-1)!.id, next_before: null });

    const builds = await page(ctx.app, ctx.adminToken, `project_id=${project.id}&type=build.&per_page=100`);
    expect(builds.items.map((event) => event.type).sort()).toEqual(
      all.filter((event) => event.type.startsWith('build.')).map((event) => event.type).sort(),
    );
    const succeeded = await page(ctx.app, ctx.adminToken, `project_id=${project.id}&type=build.succeeded`);
    expect(succeeded.items).toHaveLength(2);
    // `_` is a LIKE wildcard elsewhere: here it is refused by the pattern, as is anything but lowercase words.
    for (const bad of ['build_', 'BUILD.', 'build.%', '.x']) {
      const response = await injectAs(ctx.app, ctx.adminToken, { method: 'GET', url: `/events?type=${encodeURIComponent(bad)}` });
      expect(response.statusCode, bad).toBe(400);
      expect(problemOf(response).error).toBe('validation_error');
    }
  });

  it('needs a caller: 401 without a token', async () => {
    const response = await ctx.app.inject({ method: 'GET', url: '/events' });
    expect(response.statusCode).toBe(401);
  });

  it('answers 410 for an id older than retention kept, and purges in bounded batches', async () => {
    const project = await createProject(ctx.app, ctx.adminToken);
    const [created] = await projectEvents(ctx.app, ctx.adminToken, project.id, (events) => events.length > 0);
    const purged = await ctx.app.eventLog.purge(new Date(Date.now() + 8 * 86_400_000));
    expect(purged).toBeGreaterThan(0);
    const emptied = await page(ctx.app, ctx.adminToken, 'per_page=100');
    expect(emptied.items.filter((event) => event.id <= created!.id)).toEqual([]);

    const gone = await injectAs(ctx.app, ctx.adminToken, { method: 'GET', url: `/events?after=${created!.id - 1}` });
    expect(gone.statusCode).toBe(410);
    expect(gone.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(problemOf(gone).error).toBe('gone');
    const streamGone = await injectAs(ctx.app, ctx.adminToken, {
      method: 'GET',
      url: '/events',
      headers: { accept: 'text/event-stream', 'last-event-id': '0' },
    });
    expect(streamGone.statusCode).toBe(410);
    // From the newest purged id on, nothing is missing: answered.
    const newestPurged = Math.max(created!.id, ...emptied.items.map((event) => event.id - 1));
    const fine = await injectAs(ctx.app, ctx.adminToken, { method: 'GET', url: `/events?after=${newestPurged}` });
    expect(fine.statusCode, fine.body).toBe(200);
  });
});

/** An app on a scratch database, listening on a free local port, with the seeded admin logged in. */
async function listeningApp(scratch: ScratchDatabase, env: Record<string, string> = {}) {
  const app = await createServer(testConfig(scratch.url, { SSE_KEEPALIVE_S: '0.2', BUILD_FAIL_RATE: '0', ...env }), { logger: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('not listening on a port');
  const login = await app.inject({ method: 'POST', url: '/login', payload: { username: 'admin', password: 'admin123' } });
  return { app, base: `http://127.0.0.1:${address.port}`, token: login.json<{ access_token: string }>().access_token };
}

describe(`GET /events as a live stream (${testDb})`, () => {
  let scratch: ScratchDatabase;
  let server: Awaited<ReturnType<typeof listeningApp>>;
  beforeAll(async () => {
    scratch = await createScratchDatabase();
    server = await listeningApp(scratch);
  });
  afterAll(async () => {
    await server?.app.close();
    await scratch?.drop();
  });

  it('streams new events as they happen, resumes after Last-Event-ID with nothing missed or repeated, and keeps alive', async () => {
    const { app, base, token } = server;
    const auth = { authorization: `Bearer ${token}` };
    const project = await createProject(app, token);
    // Opened once its creation is logged: the stream starts at the head of the log, after it.
    await projectEvents(app, token, project.id, (events) => events.length > 0);
    const url = `${base}/events?project_id=${project.id}`;
    const first = await openEventStream(url, auth, { transport: 'http' });
    expect(first.response.status).toBe(200);
    expect(first.response.headers.get('content-type')).toBe('text/event-stream');
    const build = await trigger(app, token, project.id);
    const finishedFirst = (item: { kind: string; event?: string }) => item.kind === 'event' && item.event === 'build.succeeded';
    await first.waitFor(finishedFirst);
    await first.waitFor((item) => item.kind === 'comment');
    const seen = first.events();
    first.closed.catch(() => undefined);
    await first.abort?.();

    // Another build while no one listens; then a reconnect from the last id seen.
    const second = await trigger(app, token, project.id);
    await waitForBuild(app, token, second.id);
    const resumed = await openEventStream(url, { ...auth, 'last-event-id': seen.at(-1)!.id! }, { transport: 'http' });
    await resumed.waitFor((item) => item.kind === 'event' && item.event === 'build.succeeded');

    const streamed = [...seen, ...resumed.events()];
    const logged = await projectEvents(app, token, project.id, terminalBuildEvent(second.id));
    // Everything since the stream opened (project.created came before it), each once, in order, as the log has it.
    expect(streamed.map((item) => Number(item.id))).toEqual(logged.slice(1).map((event) => event.id));
    for (const item of streamed as SseEventItem[]) {
      const event = JSON.parse(item.data) as EventJson;
      expect(item.event).toBe(event.type);
      expect(Number(item.id)).toBe(event.id);
    }
    expect(streamed.some((item) => JSON.parse(item.data).build_id === build.id)).toBe(true);
    await resumed.abort?.();
  });
});

describe(`GET /events streams: caps and the caller's access (${testDb})`, () => {
  let scratch: ScratchDatabase;
  let server: Awaited<ReturnType<typeof listeningApp>>;
  beforeAll(async () => {
    scratch = await createScratchDatabase();
    server = await listeningApp(scratch, { SSE_MAX_STREAMS_PER_USER: '2', BUILD_CONCURRENCY: '0' });
  });
  afterAll(async () => {
    await server?.app.close();
    await scratch?.drop();
  });

  it('counts event streams with log streams against one per-user cap (429 + Retry-After beyond), and frees a slot on close', async () => {
    const { app, base, token } = server;
    const auth = { authorization: `Bearer ${token}` };
    const project = await createProject(app, token);
    const build = await trigger(app, token, project.id);
    const events = await openEventStream(`${base}/events`, auth, { transport: 'http' });
    const log = await openEventStream(`${base}/builds/${build.id}/logs`, auth, { transport: 'http' });
    expect([events.response.status, log.response.status]).toEqual([200, 200]);
    const refused = await fetch(`${base}/events`, { headers: { ...auth, accept: 'text/event-stream' } });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(((await refused.json()) as { error: string }).error).toBe('rate_limited');
    events.abort();
    // The slot comes back once the server has seen the client go.
    const deadline = Date.now() + 3000;
    for (;;) {
      const again = await openEventStream(`${base}/events`, auth, { transport: 'http' });
      if (again.response.status === 200) {
        again.abort();
        break;
      }
      if (Date.now() > deadline) throw new Error('the closed stream never gave its slot back');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    log.abort();
  });

  it('ends a stream with `end` {reason: session_revoked} when its caller logs out', async () => {
    const { app, base } = server;
    const login = await app.inject({ method: 'POST', url: '/login', payload: { username: 'admin', password: 'admin123' } });
    const token = login.json<{ access_token: string }>().access_token;
    const stream = await openEventStream(`${base}/events`, { authorization: `Bearer ${token}` }, { transport: 'http' });
    expect(stream.response.status).toBe(200);
    expect((await injectAs(app, token, { method: 'POST', url: '/logout' })).statusCode).toBe(204);
    const end = await stream.waitFor((item) => item.kind === 'event' && item.event === 'end');
    expect(JSON.parse((end as SseEventItem).data)).toEqual({ reason: 'session_revoked' });
    await stream.waitClosed();
  });
});
