import { sql } from 'drizzle-orm';
import type { BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { createServer } from '../../src/server.js';
import {
  createScratchDatabase,
  injectAs,
  problemOf,
  testConfig,
  testDb,
  uniqueName,
  useTestApp,
  waitForBuild,
  UNTHROTTLED,
  type ScratchDatabase,
  type TestContext,
} from '../helper.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  samples: Sample[];
  help: Map<string, string>;
  type: Map<string, string>;
}

/** A small reader of the Prometheus text format (enough for prom-client's output). */
function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const help = new Map<string, string>();
  const type = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      (meta[1] === 'HELP' ? help : type).set(meta[2] ?? '', meta[3] ?? '');
      continue;
    }
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1] ?? ''] = pair[2] ?? '';
    const raw = match[3] ?? '';
    samples.push({ name: match[1] ?? '', labels, value: raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw) });
  }
  return { samples, help, type };
}

const select = (exposition: Exposition, name: string, labels: Record<string, string> = {}) =>
  exposition.samples.filter((s) => s.name === name && Object.entries(labels).every(([key, value]) => s.labels[key] === value));

const valueOf = (exposition: Exposition, name: string, labels: Record<string, string> = {}) => {
  const found = select(exposition, name, labels);
  expect(found, `${name} ${JSON.stringify(labels)}`).toHaveLength(1);
  return found[0]?.value ?? NaN;
};

async function scrape(app: FastifyInstance): Promise<Exposition> {
  const response = await app.inject({ method: 'GET', url: '/metrics' });
  expect(response.statusCode, response.body).toBe(200);
  return parseExposition(response.body);
}

const STATUSES = ['queued', 'running', 'success', 'fail', 'canceled'];

async function createProject(ctx: TestContext): Promise<number> {
  const project = await injectAs(ctx.app, ctx.adminToken, {
    method: 'POST',
    url: '/projects',
    payload: { name: uniqueName('Metrics'), repo: 'https://github.com/demo/repo' },
  });
  expect(project.statusCode, project.body).toBe(201);
  return project.json<{ id: number }>().id;
}

async function triggerBuild(ctx: TestContext, projectId: number): Promise<number> {
  const response = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/projects/${projectId}/build` });
  expect(response.statusCode, response.body).toBe(201);
  expect(response.json<{ status: string }>().status).toBe('queued');
  return response.json<{ id: number }>().id;
}

/** Scrapes until `check` holds (the workers update their gauge asynchronously), failing after two seconds. */
async function scrapeUntil(app: FastifyInstance, check: (exposition: Exposition) => boolean): Promise<Exposition> {
  const deadline = Date.now() + 2000;
  for (;;) {
    const exposition = await scrape(app);
    if (check(exposition) || Date.now() > deadline) return exposition;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const workerGauge = (exposition: Exposition, state: 'busy' | 'idle') =>
  select(exposition, 'usine_build_workers', { state })[0]?.value;

describe(`GET /metrics (${testDb})`, () => {
  const ctx = useTestApp();

  it('answers 200 in the Prometheus text format, without a token (none set), under the global rate limit', async () => {
    const response = await ctx.app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(response.headers['ratelimit-limit']).toBe(UNTHROTTLED.RATE_LIMIT_MAX);
    // Parses line by line, and is not a JSON-quoted string.
    expect(response.body.startsWith('"')).toBe(false);
    const exposition = parseExposition(response.body);
    expect(exposition.samples.length).toBeGreaterThan(0);
    expect(exposition.type.get('http_request_duration_seconds')).toBe('histogram');
    expect(exposition.type.get('http_requests_total')).toBe('counter');
    expect(exposition.type.get('usine_builds')).toBe('gauge');
  });

  it('measures requests by route pattern and status; unknown paths share the not_found label', async () => {
    const listed = await injectAs(ctx.app, ctx.adminToken, { method: 'GET', url: '/projects' });
    expect(listed.statusCode).toBe(200);
    const missing = await ctx.app.inject({ method: 'GET', url: '/no/such/path-4242' });
    expect(missing.statusCode).toBe(404);
    const unknownProject = await injectAs(ctx.app, ctx.adminToken, { method: 'GET', url: '/projects/987654' });
    expect(unknownProject.statusCode).toBe(404);

    const exposition = await scrape(ctx.app);
    const projects = { method: 'GET', route: '/projects', status_code: '200' };
    const buckets = select(exposition, 'http_request_duration_seconds_bucket', projects);
    expect(buckets.length).toBeGreaterThan(5);
    const counts = buckets.map((b) => b.value);
    expect(counts).toEqual([...counts].sort((a, b) => a - b)); // cumulative
    expect(valueOf(exposition, 'http_request_duration_seconds_bucket', { ...projects, le: '+Inf' })).toBe(1);
    expect(valueOf(exposition, 'http_request_duration_seconds_count', projects)).toBe(1);
    expect(valueOf(exposition, 'http_request_duration_seconds_sum', projects)).toBeGreaterThan(0);
    expect(valueOf(exposition, 'http_requests_total', projects)).toBe(1);

    const notFound = { method: 'GET', route: 'not_found', status_code: '404' };
    expect(valueOf(exposition, 'http_request_duration_seconds_count', notFound)).toBe(1);
    expect(valueOf(exposition, 'http_requests_total', notFound)).toBe(1);
    // A 404 from a route that exists keeps that route's pattern; no raw path or id becomes a label.
    expect(valueOf(exposition, 'http_requests_total', { method: 'GET', route: '/projects/:id', status_code: '404' })).toBe(1);
    const routes = new Set(exposition.samples.map((s) => s.labels.route).filter((r) => r !== undefined));
    for (const route of routes) expect(route === 'not_found' || (route.startsWith('/') && !/\d/.test(route)), route).toBe(true);

    // The scrape itself is measured by the next one.
    const next = await scrape(ctx.app);
    expect(valueOf(next, 'http_requests_total', { method: 'GET', route: '/metrics', status_code: '200' })).toBeGreaterThanOrEqual(1);
  });

  it('counts builds by status, every status present, from one grouped query per scrape', async () => {
    const before = await scrape(ctx.app);
    for (const status of STATUSES) valueOf(before, 'usine_builds', { status });
    const finishedBefore = valueOf(before, 'usine_builds', { status: 'success' }) + valueOf(before, 'usine_builds', { status: 'fail' });

    const projectId = await createProject(ctx);
    const triggered = 7;
    const ids: number[] = [];
    for (let i = 0; i < triggered; i++) ids.push(await triggerBuild(ctx, projectId));
    // Compared once the workers have run them all, so that no build changes status between the two counts.
    for (const id of ids) await waitForBuild(ctx.app, ctx.adminToken, id);

    const spy = vi.spyOn(ctx.app.buildsRepository, 'countByStatus');
    try {
      const after = await scrape(ctx.app);
      expect(spy).toHaveBeenCalledTimes(1);
      const finished = valueOf(after, 'usine_builds', { status: 'success' }) + valueOf(after, 'usine_builds', { status: 'fail' });
      expect(finished - finishedBefore).toBe(triggered);
      expect(select(after, 'usine_builds').map((s) => s.labels.status).sort()).toEqual([...STATUSES].sort());
      for (const status of ['queued', 'running', 'canceled']) expect(valueOf(after, 'usine_builds', { status })).toBe(0);
      expect(valueOf(after, 'usine_build_queue_depth')).toBe(valueOf(after, 'usine_builds', { status: 'queued' }));

      // Counted by the database, not by this process: the repository says the same.
      const counts = await ctx.app.buildsRepository.countByStatus();
      for (const status of STATUSES) expect(valueOf(after, 'usine_builds', { status }), status).toBe(counts[status as keyof typeof counts]);
    } finally {
      spy.mockRestore();
    }
  });

  it('reports the worker pool at rest: BUILD_CONCURRENCY (4) idle workers, none busy', async () => {
    const exposition = await scrape(ctx.app);
    expect(valueOf(exposition, 'usine_build_workers', { state: 'busy' })).toBe(0);
    expect(valueOf(exposition, 'usine_build_workers', { state: 'idle' })).toBe(4);
    expect(exposition.type.get('usine_build_workers')).toBe('gauge');
    expect(exposition.help.get('usine_build_workers')).toMatch(/busy/);
    expect(exposition.help.get('usine_build_workers')).toMatch(/idle/);
    expect(exposition.type.get('usine_build_queue_depth')).toBe('gauge');
    expect(valueOf(exposition, 'usine_build_queue_depth')).toBe(0);
  });

  it('includes the default process and event-loop figures under their standard names', async () => {
    const exposition = await scrape(ctx.app);
    for (const name of [
      'process_cpu_user_seconds_total',
      'process_start_time_seconds',
      'nodejs_eventloop_lag_seconds',
      'nodejs_eventloop_lag_p99_seconds',
      'nodejs_heap_size_used_bytes',
      'nodejs_active_handles_total',
    ]) {
      expect(select(exposition, name).length, name).toBeGreaterThan(0);
    }
    expect(valueOf(exposition, 'process_start_time_seconds')).toBeGreaterThan(1_600_000_000);
  });

  it('still answers when the database does not: the build series are left out (queue depth NaN) rather than stale', async () => {
    const spy = vi.spyOn(ctx.app.buildsRepository, 'countByStatus').mockRejectedValue(new Error('database down'));
    try {
      const exposition = await scrape(ctx.app);
      expect(select(exposition, 'usine_builds')).toEqual([]);
      expect(valueOf(exposition, 'usine_build_queue_depth')).toBeNaN();
      expect(select(exposition, 'http_requests_total').length).toBeGreaterThan(0);
    } finally {
      spy.mockRestore();
    }
    const back = await scrape(ctx.app);
    expect(select(back, 'usine_builds')).toHaveLength(STATUSES.length);
    expect(valueOf(back, 'usine_build_queue_depth')).toBe(0);
  });

  it('is documented as public text/plain under the monitoring tag', async () => {
    const document = (await ctx.app.inject({ method: 'GET', url: '/apidocs/json' })).json<{
      paths: Record<string, Record<string, { tags?: string[]; security?: unknown[]; responses: Record<string, { content?: Record<string, { schema?: { type?: string }; example?: unknown }> }> }>>;
    }>();
    const operation = document.paths['/metrics']?.get;
    expect(operation?.tags).toEqual(['monitoring']);
    expect(operation?.security ?? []).toEqual([]);
    const media = operation?.responses['200']?.content?.['text/plain'];
    expect(media?.schema?.type).toBe('string');
    expect(media?.example).toEqual(expect.stringContaining('usine_builds{status="success"}'));
  });
});

describe(`GET /metrics without build workers (BUILD_CONCURRENCY=0) (${testDb})`, () => {
  const ctx = useTestApp({ BUILD_CONCURRENCY: '0' });

  it('reports 0 busy and 0 idle workers, and counts the builds left waiting as queue depth', async () => {
    const empty = await scrape(ctx.app);
    expect(valueOf(empty, 'usine_build_workers', { state: 'busy' })).toBe(0);
    expect(valueOf(empty, 'usine_build_workers', { state: 'idle' })).toBe(0);
    expect(valueOf(empty, 'usine_build_queue_depth')).toBe(0);

    const [a, b] = [await createProject(ctx), await createProject(ctx)];
    const ids: number[] = [];
    for (const projectId of [a, b, a, b, a]) ids.push(await triggerBuild(ctx, projectId));
    const queued = await scrape(ctx.app);
    expect(valueOf(queued, 'usine_build_queue_depth')).toBe(5);
    expect(valueOf(queued, 'usine_builds', { status: 'queued' })).toBe(5);
    for (const status of ['running', 'success', 'fail', 'canceled']) expect(valueOf(queued, 'usine_builds', { status }), status).toBe(0);
    expect(valueOf(queued, 'usine_build_workers', { state: 'idle' })).toBe(0);

    const cancel = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/builds/${ids[0]}/cancel` });
    expect(cancel.statusCode, cancel.body).toBe(200);
    const after = await scrape(ctx.app);
    expect(valueOf(after, 'usine_build_queue_depth')).toBe(4);
    expect(valueOf(after, 'usine_builds', { status: 'queued' })).toBe(4);
    expect(valueOf(after, 'usine_builds', { status: 'canceled' })).toBe(1);
  });
});

describe(`GET /metrics while a build runs (BUILD_CONCURRENCY=2, slow builds) (${testDb})`, () => {
  // 0.5 wall seconds per simulated second: a build runs 1–5 s, long enough to be seen running.
  const ctx = useTestApp({ BUILD_CONCURRENCY: '2', BUILD_TIME_SCALE: '0.5' });

  it('moves one worker from idle to busy while it runs a build, and back once it is canceled', async () => {
    const atRest = await scrapeUntil(ctx.app, (e) => workerGauge(e, 'idle') === 2);
    expect(valueOf(atRest, 'usine_build_workers', { state: 'busy' })).toBe(0);
    expect(valueOf(atRest, 'usine_build_workers', { state: 'idle' })).toBe(2);

    const id = await triggerBuild(ctx, await createProject(ctx));
    await waitForBuild(ctx.app, ctx.adminToken, id, { until: (build) => build.status !== 'queued' });
    const running = await scrapeUntil(ctx.app, (e) => workerGauge(e, 'busy') === 1);
    expect(valueOf(running, 'usine_build_workers', { state: 'busy' })).toBe(1);
    expect(valueOf(running, 'usine_build_workers', { state: 'idle' })).toBe(1);
    expect(valueOf(running, 'usine_builds', { status: 'running' })).toBe(1);
    expect(valueOf(running, 'usine_build_queue_depth')).toBe(0);

    const cancel = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/builds/${id}/cancel` });
    expect(cancel.statusCode, cancel.body).toBe(200);
    const idle = await scrapeUntil(ctx.app, (e) => workerGauge(e, 'busy') === 0);
    expect(valueOf(idle, 'usine_build_workers', { state: 'busy' })).toBe(0);
    expect(valueOf(idle, 'usine_build_workers', { state: 'idle' })).toBe(2);
    expect(valueOf(idle, 'usine_builds', { status: 'canceled' })).toBe(1);
  });
});

describe(`GET /metrics with METRICS_ENABLED=false (${testDb})`, () => {
  const ctx = useTestApp({ METRICS_ENABLED: 'false' });

  it('is not served (404 problem) and not documented, and nothing is measured', async () => {
    const response = await ctx.app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(404);
    expect(problemOf(response).error).toBe('not_found');
    expect(ctx.app.hasRoute({ method: 'GET', url: '/metrics' })).toBe(false);
    expect(ctx.app.metrics).toBeUndefined();
    const document = (await ctx.app.inject({ method: 'GET', url: '/apidocs/json' })).json<{ paths: Record<string, unknown> }>();
    expect(Object.keys(document.paths)).not.toContain('/metrics');
  });
});

describe(`METRICS_ENABLED setting`, () => {
  it('defaults to true, reads true/false, and names the variable when it is neither', () => {
    expect(loadConfig({}).METRICS_ENABLED).toBe(true);
    expect(loadConfig({ METRICS_ENABLED: 'false' }).METRICS_ENABLED).toBe(false);
    expect(loadConfig({ METRICS_ENABLED: 'true' }).METRICS_ENABLED).toBe(true);
    expect(() => loadConfig({ METRICS_ENABLED: 'sometimes' })).toThrow(ConfigError);
    expect(() => loadConfig({ METRICS_ENABLED: 'sometimes' })).toThrow(/METRICS_ENABLED/);
  });
});

describe(`two apps in one process (${testDb})`, () => {
  const apps: FastifyInstance[] = [];
  const scratches: ScratchDatabase[] = [];

  beforeAll(async () => {
    for (let i = 0; i < 2; i++) {
      const scratch = await createScratchDatabase();
      scratches.push(scratch);
      const app = await createServer(testConfig(scratch.url), { logger: false });
      await app.ready();
      apps.push(app);
    }
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    for (const scratch of scratches) await scratch.drop();
  });

  it('each serves its own metrics, without clashing', async () => {
    const [first, second] = apps as [FastifyInstance, FastifyInstance];
    for (let i = 0; i < 3; i++) expect((await first.inject({ method: 'GET', url: '/status' })).statusCode).toBe(200);
    expect((await second.inject({ method: 'GET', url: '/status' })).statusCode).toBe(200);

    const status = { method: 'GET', route: '/status', status_code: '200' };
    expect(valueOf(await scrape(first), 'http_requests_total', status)).toBe(3);
    expect(valueOf(await scrape(second), 'http_requests_total', status)).toBe(1);
    expect(first.metrics?.registry).not.toBe(second.metrics?.registry);
  });
});

/** Runs raw SQL on the app's own connection (both dialects); returns the rows of a query. */
async function runSql(app: FastifyInstance, statement: string): Promise<Record<string, unknown>[]> {
  const { database } = app;
  if (database.dialect === 'pg') return (await database.db.execute(sql.raw(statement))) as unknown as Record<string, unknown>[];
  const sqlite = database.db as unknown as BetterSQLite3Database;
  if (/^\s*select/i.test(statement)) return sqlite.all(sql.raw(statement));
  sqlite.run(sql.raw(statement));
  return [];
}

/** Every status's count, straight from the builds table (what a scrape used to run). */
async function countedInBuilds(app: FastifyInstance): Promise<Record<string, number>> {
  const rows = await runSql(app, 'select status, count(*) as n from builds group by status');
  const counts: Record<string, number> = Object.fromEntries(STATUSES.map((status) => [status, 0]));
  for (const row of rows) counts[String(row.status)] = Number(row.n);
  return counts;
}

describe(`a scrape's cost does not grow with the builds kept (${testDb})`, () => {
  // No workers: nothing else reads builds while the table is hidden.
  const ctx = useTestApp({ BUILD_CONCURRENCY: '0' });

  it('reads the counts without touching the builds table: they come back with the table renamed away', async () => {
    const projectId = await createProject(ctx);
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) ids.push(await triggerBuild(ctx, projectId));
    const cancel = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/builds/${ids[0]}/cancel` });
    expect(cancel.statusCode, cancel.body).toBe(200);

    // A scrape that counted over builds (today's grouped count) would fail now, and leave the build series out.
    await runSql(ctx.app, 'alter table builds rename to builds_hidden_from_metrics');
    try {
      const exposition = await scrape(ctx.app);
      expect(valueOf(exposition, 'usine_builds', { status: 'queued' })).toBe(2);
      expect(valueOf(exposition, 'usine_builds', { status: 'canceled' })).toBe(1);
      expect(valueOf(exposition, 'usine_build_queue_depth')).toBe(2);
    } finally {
      await runSql(ctx.app, 'alter table builds_hidden_from_metrics rename to builds');
    }
  });

  it('keeps the counts equal to the builds table through inserts, status changes, bulk updates and cascaded deletes', async () => {
    const kept = await createProject(ctx);
    const doomed = await createProject(ctx);
    for (const projectId of [kept, kept, kept, doomed, doomed]) await triggerBuild(ctx, projectId);
    // Writers other than the app count too: a bulk status change and a bulk insert in plain SQL.
    await runSql(ctx.app, `update builds set status = 'running' where project_id = ${kept} and number <= 2`);
    await runSql(ctx.app, `update builds set status = 'success' where project_id = ${kept} and number = 1`);
    await runSql(
      ctx.app,
      `insert into builds (project_id, number, branch, commit_sha, status, logs) values ` +
        `(${kept}, 100, 'main', 'abcdef1', 'fail', ''), (${kept}, 101, 'main', 'abcdef2', 'canceled', '')`,
    );
    const deleted = await injectAs(ctx.app, ctx.adminToken, { method: 'DELETE', url: `/projects/${doomed}` });
    expect(deleted.statusCode, deleted.body).toBe(204);

    const truth = await countedInBuilds(ctx.app);
    const exposition = await scrape(ctx.app);
    for (const status of STATUSES) expect(valueOf(exposition, 'usine_builds', { status }), status).toBe(truth[status]);
    expect(truth.running).toBeGreaterThan(0);
    expect(truth.fail).toBeGreaterThan(0);
  });
});

describe(`GET /metrics with METRICS_TOKEN set (${testDb})`, () => {
  const token = 'metrics-token-0123456789abcdef';
  const ctx = useTestApp({ METRICS_TOKEN: token });

  it('answers 401 with a problem without the token, with another token or another scheme', async () => {
    for (const authorization of [undefined, `Bearer ${token}x`, 'Bearer short', `Basic ${token}`, `Bearer  ${token}`, `Bearer ${ctx.adminToken}`]) {
      const response = await ctx.app.inject({ method: 'GET', url: '/metrics', headers: authorization === undefined ? {} : { authorization } });
      expect(response.statusCode, String(authorization)).toBe(401);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(problemOf(response).error).toBe('unauthorized');
      expect(response.body).not.toContain('http_requests_total');
    }
  });

  it('serves the metrics to the token (scheme in any case), Node version included', async () => {
    for (const scheme of ['Bearer', 'bearer']) {
      const response = await ctx.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `${scheme} ${token}` } });
      expect(response.statusCode, response.body).toBe(200);
      const exposition = parseExposition(response.body);
      expect(select(exposition, 'nodejs_version_info')[0]?.labels.version).toBe(process.version);
      expect(select(exposition, 'usine_builds')).toHaveLength(STATUSES.length);
    }
  });

  it('documents its 401 (a server without a token does not)', async () => {
    const document = (await ctx.app.inject({ method: 'GET', url: '/apidocs/json' })).json<{
      paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>>;
    }>();
    expect(Object.keys(document.paths['/metrics']?.get?.responses['401']?.content ?? {})).toEqual(['application/problem+json']);
  });
});

describe(`GET /metrics without METRICS_TOKEN (${testDb})`, () => {
  const ctx = useTestApp();

  it('shows nothing that names the Node version: no nodejs_version_info, no V8 heap space names', async () => {
    const response = await ctx.app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.body).not.toContain(process.version);
    expect(response.body).not.toContain(process.versions.v8);
    const names = new Set(parseExposition(response.body).samples.map((sample) => sample.name));
    for (const name of ['nodejs_version_info', 'nodejs_heap_space_size_used_bytes', 'nodejs_heap_space_size_total_bytes']) {
      expect(names.has(name), name).toBe(false);
    }
    // The rest of the process figures stay.
    expect(names.has('nodejs_heap_size_used_bytes')).toBe(true);
  });
});

describe(`GET /metrics under a small rate limit (RATE_LIMIT_MAX=4) (${testDb})`, () => {
  const ctx = useTestApp({ RATE_LIMIT_MAX: '4' });

  it('counts scrapes against the client\'s limit: 429 with Retry-After beyond it', async () => {
    const statuses: number[] = [];
    let refused: Awaited<ReturnType<FastifyInstance['inject']>> | undefined;
    for (let i = 0; i < 6; i++) {
      const response = await ctx.app.inject({ method: 'GET', url: '/metrics' });
      statuses.push(response.statusCode);
      if (response.statusCode === 429) refused = response;
    }
    // The login in useTestApp may have used one request of the window already.
    expect(statuses.filter((status) => status === 200).length).toBeGreaterThanOrEqual(3);
    expect(statuses.filter((status) => status === 200).length).toBeLessThanOrEqual(4);
    expect(statuses.at(-1)).toBe(429);
    expect(refused && problemOf(refused).error).toBe('rate_limited');
    expect(Number(refused?.headers['retry-after'])).toBeGreaterThan(0);
  });
});

describe('METRICS_TOKEN setting', () => {
  it('is optional (an empty value is unset) and refused, naming the variable, when shorter than 16 characters', () => {
    expect(loadConfig({}).METRICS_TOKEN).toBeUndefined();
    expect(loadConfig({ METRICS_TOKEN: '' }).METRICS_TOKEN).toBeUndefined();
    expect(loadConfig({ METRICS_TOKEN: 'a'.repeat(16) }).METRICS_TOKEN).toBe('a'.repeat(16));
    expect(() => loadConfig({ METRICS_TOKEN: 'too-short' })).toThrow(/METRICS_TOKEN/);
  });
});

const JOB_STATUSES = ['created', 'queued', 'running', 'success', 'fail', 'canceled', 'skipped', 'manual'];

/** Every job status's count, straight from the jobs table: current attempts (`not retried`), or every row. */
async function countedInJobs(app: FastifyInstance, rows: 'current' | 'all' = 'current'): Promise<Record<string, number>> {
  const where = rows === 'current' ? ' where not retried' : '';
  const found = await runSql(app, `select status, count(*) as n from jobs${where} group by status`);
  const counts: Record<string, number> = Object.fromEntries(JOB_STATUSES.map((status) => [status, 0]));
  for (const row of found) counts[String(row.status)] = Number(row.n);
  return counts;
}

const jobGauges = (exposition: Exposition) => Object.fromEntries(JOB_STATUSES.map((status) => [status, valueOf(exposition, 'usine_jobs', { status })]));

/**
 * compile → unit ×2, flaky (always fails), lint (always fails, allowed to) → package (needs unit and flaky: skipped)
 * and release (manual). Per build: 3 successes, 2 failures, 1 skipped, 1 manual.
 */
const METRICS_PIPELINE = {
  stages: ['build', 'test', 'deploy'],
  jobs: {
    compile: { stage: 'build' },
    unit: { stage: 'test', needs: ['compile'], parallel: 2 },
    flaky: { stage: 'test', needs: ['compile'], fail_rate: 1 },
    lint: { stage: 'test', needs: ['compile'], fail_rate: 1, allow_failure: true },
    package: { stage: 'deploy', needs: ['unit', 'flaky'] },
    release: { stage: 'deploy', needs: ['unit'], when: 'manual' },
  },
};

describe(`GET /metrics counts jobs by status (${testDb})`, () => {
  const ctx = useTestApp({ BUILD_FAIL_RATE: '0' });

  it('gives every job status, equal to a count of the jobs table’s current attempts, through runs, a retry, a play and a cancel', async () => {
    const before = await scrape(ctx.app);
    expect(before.type.get('usine_jobs')).toBe('gauge');
    expect(jobGauges(before)).toEqual(Object.fromEntries(JOB_STATUSES.map((status) => [status, 0])));

    const projectId = await createProject(ctx);
    const put = await injectAs(ctx.app, ctx.adminToken, { method: 'PUT', url: `/projects/${projectId}/pipeline`, payload: METRICS_PIPELINE });
    expect(put.statusCode, put.body).toBe(200);
    const builds: number[] = [];
    for (let i = 0; i < 3; i++) builds.push(await triggerBuild(ctx, projectId));
    for (const id of builds) expect((await waitForBuild(ctx.app, ctx.adminToken, id)).status).toBe('fail');

    const jobId = async (buildId: number | undefined, name: string) => {
      const listed = await injectAs(ctx.app, ctx.adminToken, { method: 'GET', url: `/builds/${buildId}/jobs` });
      const found = listed.json<{ items: { id: number; name: string; retried: boolean }[] }>().items.find((job) => job.name === name && !job.retried);
      if (!found) throw new Error(`no job ${name} in build ${buildId}`);
      return found.id;
    };
    const act = async (action: 'retry' | 'play' | 'cancel', buildId: number | undefined, name: string, status: number) => {
      const response = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/jobs/${await jobId(buildId, name)}/${action}` });
      expect(response.statusCode, response.body).toBe(status);
    };
    await act('retry', builds[0], 'flaky', 201);
    await act('play', builds[1], 'release', 200);
    await act('cancel', builds[2], 'release', 200);

    // Compared once the workers are done, so that no job changes status between the two counts.
    const deadline = Date.now() + 15_000;
    while (Number((await runSql(ctx.app, "select count(*) as n from jobs where status in ('created', 'queued', 'running')"))[0]?.n) > 0) {
      if (Date.now() > deadline) throw new Error('jobs still waiting or running after 15 s');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (const id of builds) await waitForBuild(ctx.app, ctx.adminToken, id);

    const truth = await countedInJobs(ctx.app);
    const after = await scrape(ctx.app);
    expect(jobGauges(after)).toEqual(truth);
    // What happened: 3 builds of 7 jobs; flaky retried (and failed again), a release played, another canceled.
    expect(truth).toEqual({ created: 0, queued: 0, running: 0, success: 10, fail: 6, canceled: 1, skipped: 3, manual: 1 });
    // The retried attempt is in the table, not in the figures.
    expect((await countedInJobs(ctx.app, 'all')).fail).toBe(7);
    expect(valueOf(after, 'usine_job_queue_depth')).toBe(0);
    expect(valueOf(after, 'usine_jobs_running')).toBe(0);
    // Counted by the database: the repository says the same.
    expect(await ctx.app.jobsRepository.countByStatus()).toEqual(truth);
  });

  it('reads the three job gauges with one query per scrape, and leaves the series out (depths NaN) when it fails', async () => {
    const spy = vi.spyOn(ctx.app.jobsRepository, 'countByStatus');
    try {
      await scrape(ctx.app);
      expect(spy).toHaveBeenCalledTimes(1);
      spy.mockRejectedValue(new Error('database down'));
      const failed = await scrape(ctx.app);
      expect(select(failed, 'usine_jobs')).toEqual([]);
      expect(valueOf(failed, 'usine_job_queue_depth')).toBeNaN();
      expect(valueOf(failed, 'usine_jobs_running')).toBeNaN();
      expect(select(failed, 'usine_builds')).toHaveLength(STATUSES.length);
    } finally {
      spy.mockRestore();
    }
    expect(select(await scrape(ctx.app), 'usine_jobs')).toHaveLength(JOB_STATUSES.length);
  });
});

describe(`a scrape's cost does not grow with the jobs kept (${testDb})`, () => {
  // No workers: the jobs stay as triggered, and nothing else reads jobs while the table is hidden.
  const ctx = useTestApp({ BUILD_CONCURRENCY: '0' });

  it('counts queued and waiting jobs, and a canceled build’s, without touching the jobs table', async () => {
    const projectId = await createProject(ctx);
    const ids: number[] = [];
    // The default pipeline: checkout queued, install, test and package waiting for it.
    for (let i = 0; i < 3; i++) ids.push(await triggerBuild(ctx, projectId));
    const cancel = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/builds/${ids[0]}/cancel` });
    expect(cancel.statusCode, cancel.body).toBe(200);
    const expected = { created: 6, queued: 2, running: 0, success: 0, fail: 0, canceled: 1, skipped: 3, manual: 0 };
    expect(await countedInJobs(ctx.app)).toEqual(expected);

    // A scrape that counted over jobs would fail now, and leave the job series out.
    await runSql(ctx.app, 'alter table jobs rename to jobs_hidden_from_metrics');
    try {
      const exposition = await scrape(ctx.app);
      expect(jobGauges(exposition)).toEqual(expected);
      expect(valueOf(exposition, 'usine_job_queue_depth')).toBe(2);
      expect(valueOf(exposition, 'usine_jobs_running')).toBe(0);
    } finally {
      await runSql(ctx.app, 'alter table jobs_hidden_from_metrics rename to jobs');
    }
  });

  it('keeps the counts equal to the jobs table through bulk status changes, retries, inserts and cascaded deletes', async () => {
    const kept = await createProject(ctx);
    const doomed = await createProject(ctx);
    const builds: number[] = [];
    for (const projectId of [kept, kept, doomed]) builds.push(await triggerBuild(ctx, projectId));
    const [first, second] = builds;
    // Writers other than the app count too: bulk status changes, a retry's two steps and a bulk insert in plain SQL.
    await runSql(ctx.app, `update jobs set status = 'running' where build_id = ${first}`);
    await runSql(ctx.app, `update jobs set status = 'success' where build_id = ${first} and position < 2`);
    await runSql(ctx.app, `update jobs set status = 'fail', retried = true where build_id = ${first} and position = 3`);
    await runSql(ctx.app, `update jobs set status = 'manual' where build_id = ${second} and position = 3`);
    await runSql(ctx.app, `update jobs set retried = true where build_id = ${second} and position = 2`);
    await runSql(
      ctx.app,
      `insert into jobs (build_id, position, name, stage, needs, "when", allow_failure, spec, status, attempt, retried) values ` +
        `(${first}, 3, 'package', 'package', '[]', 'on_success', false, '{}', 'queued', 2, false), ` +
        `(${second}, 2, 'test', 'test', '[]', 'on_success', false, '{}', 'skipped', 2, false), ` +
        `(${second}, 9, 'old', 'test', '[]', 'on_success', false, '{}', 'canceled', 1, true)`,
    );
    const deleted = await injectAs(ctx.app, ctx.adminToken, { method: 'DELETE', url: `/projects/${doomed}` });
    expect(deleted.statusCode, deleted.body).toBe(204);

    const truth = await countedInJobs(ctx.app);
    expect(jobGauges(await scrape(ctx.app))).toEqual(truth);
    for (const status of ['running', 'success', 'queued', 'manual', 'skipped']) expect(truth[status], status).toBeGreaterThan(0);
    expect((await countedInJobs(ctx.app, 'all')).fail).toBeGreaterThan(truth.fail ?? 0);
  });
});
