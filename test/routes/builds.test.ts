import type { LightMyRequestResponse } from 'fastify';
import { describe, expect, it } from 'vitest';
import { injectAs, login, problemOf, testDb, uniqueName, useTestApp, waitForBuild, type TestContext, type BuildJson } from '../helper.js';


interface ProjectJson {
  id: number;
  name: string;
  default_branch: string;
  last_build_status: string | null;
}

interface PageJson<T> {
  items: T[];
  page: number;
  per_page: number;
  total: number;
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$/;
const SHA = 'a94a8fe5ccb19ba61c4c0873d391e987982fbbd3';

async function createProject(ctx: TestContext, extra: Record<string, string> = {}): Promise<ProjectJson> {
  const response = await injectAs(ctx.app, ctx.adminToken, {
    method: 'POST',
    url: '/projects',
    payload: { name: uniqueName('BuildProj'), repo: 'https://github.com/demo/repo', ...extra },
  });
  expect(response.statusCode, response.body).toBe(201);
  return response.json<ProjectJson>();
}

/** The seed's trigger: no body, no content-type. */
function triggerSeed(ctx: TestContext, projectId: number): Promise<LightMyRequestResponse> {
  return injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/projects/${projectId}/build` });
}

function trigger(ctx: TestContext, projectId: number, payload?: unknown): Promise<LightMyRequestResponse> {
  return injectAs(ctx.app, ctx.adminToken, {
    method: 'POST',
    url: `/projects/${projectId}/builds`,
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
}

async function triggerOk(ctx: TestContext, projectId: number, payload?: unknown): Promise<BuildJson> {
  const response = await trigger(ctx, projectId, payload);
  expect(response.statusCode, response.body).toBe(201);
  return response.json<BuildJson>();
}

function listBuilds(ctx: TestContext, projectId: number, query: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return injectAs(ctx.app, ctx.adminToken, { url: `/projects/${projectId}/builds`, query });
}

async function allBuilds(ctx: TestContext, projectId: number): Promise<BuildJson[]> {
  const response = await listBuilds(ctx, projectId, { per_page: '100' });
  expect(response.statusCode).toBe(200);
  return response.json<PageJson<BuildJson>>().items;
}

/** Polls the build until it reaches a terminal status. */
function settle(ctx: TestContext, build: { id: number }): Promise<BuildJson> {
  return waitForBuild<BuildJson>(ctx.app, ctx.adminToken, build.id);
}

/** The shape every trigger answers at once: a queued build that has not run yet. */
function expectQueued(response: LightMyRequestResponse): BuildJson {
  expect(response.statusCode, response.body).toBe(201);
  const build = response.json<BuildJson>();
  expect(response.headers.location).toBe(`/builds/${build.id}`);
  expect(build.status).toBe('queued');
  expect(build.started_at).toBeNull();
  expect(build.finished_at).toBeNull();
  expect(build.duration_s).toBeNull();
  expect(build.logs).toBe('');
  expect(build.created_at).toMatch(ISO_UTC);
  return build;
}

/** The shape of a build a worker has run to the end: the seed's outcome, duration, timestamps and a step log. */
function expectFinished(build: BuildJson): void {
  expect(['success', 'fail']).toContain(build.status);
  expect(build.duration_s).not.toBeNull();
  // What the run lasted: the whole pipeline (2–10 s) on success, up to the end of the failing step on failure.
  expect(build.duration_s).toBeGreaterThan(0);
  expect(build.duration_s).toBeLessThanOrEqual(10);
  if (build.status === 'success') expect(build.duration_s).toBeGreaterThanOrEqual(2);
  for (const stamp of [build.created_at, build.started_at, build.finished_at]) expect(stamp).toMatch(ISO_UTC);
  const created = Date.parse(build.created_at);
  const started = Date.parse(build.started_at ?? '');
  const finished = Date.parse(build.finished_at ?? '');
  expect(created).toBeLessThanOrEqual(started);
  expect(started).toBeLessThanOrEqual(finished);
  // Every job's lines, prefixed with its name (the default pipeline's jobs are its steps).
  expect(build.logs).toMatch(/^\[checkout\] \[\d{2}:\d{2}\.\d{3}\] ==> Step checkout$/m);
  expect(build.logs).toMatch(/^\[checkout\] \[\d{2}:\d{2}\.\d{3}\] \$ git clone --branch /m);
  expect(build.logs).toContain(`Build finished: ${build.status} in ${build.duration_s} s\n`);
  expect(build.logs.match(/^Build finished: /gm)).toHaveLength(1);
  expect(build.logs).not.toContain('Build simulated at');
  if (build.status === 'success') {
    for (const step of ['checkout', 'install', 'test', 'package']) expect(build.logs).toContain(`✓ Step ${step} passed`);
    expect(build.logs).toMatch(/^\[test\] \[\d{2}:\d{2}\.\d{3}\] \$ npm test$/m);
  } else {
    expect(build.logs).toMatch(/^\[(checkout|install|test|package)\] \[\d{2}:\d{2}\.\d{3}\] ✗ Step \1 failed: /m);
  }
}

async function getProject(ctx: TestContext, id: number): Promise<ProjectJson> {
  const response = await injectAs(ctx.app, ctx.adminToken, { url: `/projects/${id}` });
  expect(response.statusCode).toBe(200);
  return response.json<ProjectJson>();
}

function parseLinks(header: string | string[] | number | undefined): Record<string, URLSearchParams & { path: string }> {
  expect(typeof header).toBe('string');
  const links: Record<string, URLSearchParams & { path: string }> = {};
  for (const part of String(header).split(',')) {
    const match = /^\s*<([^>]*)>\s*;\s*rel="([^"]+)"\s*$/.exec(part);
    expect(match, `malformed link part: ${part}`).not.toBeNull();
    const [, target = '', rel = ''] = match ?? [];
    const [path = '', search = ''] = target.split('?', 2);
    links[rel] = Object.assign(new URLSearchParams(search), { path });
  }
  return links;
}

function expectValidationError(response: LightMyRequestResponse, path?: string): void {
  expect(response.statusCode, response.body).toBe(400);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(problemOf(response).error).toBe('validation_error');
  if (path !== undefined) expect(problemOf(response).errors?.map((e) => e.path)).toContain(path);
}

function expectNotFound(response: LightMyRequestResponse): void {
  expect(response.statusCode, response.body).toBe(404);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(problemOf(response).error).toBe('not_found');
}

describe(`builds: seed trigger and reads (${testDb})`, () => {
  const ctx = useTestApp();

  it('triggers a build with no body and no content-type, as the seed does: queued at once, then run', async () => {
    const project = await createProject(ctx);
    const response = await triggerSeed(ctx, project.id);
    const build = expectQueued(response);
    expect(build.project_id).toBe(project.id);
    expect(build.number).toBe(1);
    expect(build.branch).toBe('main');
    expect(build.commit_sha).toMatch(/^[0-9a-f]{40}$/);
    expect(build.triggered_by).toBe('admin');
    expect(build.retry_of).toBeNull();

    const finished = await settle(ctx, build);
    expectFinished(finished);
    // What was decided at trigger time does not change when the build runs.
    expect(finished).toMatchObject({
      id: build.id,
      project_id: project.id,
      number: 1,
      branch: 'main',
      commit_sha: build.commit_sha,
      triggered_by: 'admin',
      retry_of: null,
      created_at: build.created_at,
    });
    expect(finished.logs).toContain(`Build #1 of ${project.name} (main @ ${build.commit_sha.slice(0, 7)})`);

    const second = await triggerSeed(ctx, project.id);
    const secondBuild = expectQueued(second);
    expect(secondBuild.number).toBe(2);
    expect(secondBuild.id).not.toBe(build.id);
    expect(secondBuild.commit_sha).toMatch(/^[0-9a-f]{40}$/);
    expectFinished(await settle(ctx, secondBuild));
  });

  it("builds the project's own default branch when none is named", async () => {
    const project = await createProject(ctx, { default_branch: 'develop' });
    const seed = expectQueued(await triggerSeed(ctx, project.id));
    expect(seed.branch).toBe('develop');
    expect((await triggerOk(ctx, project.id, {})).branch).toBe('develop');
    const finished = await settle(ctx, seed);
    expect(finished.branch).toBe('develop');
    expect(finished.logs).toContain(`$ git clone --branch develop https://github.com/demo/repo ${project.name}`);
  });

  it('honours branch and commit_sha on POST /projects/:id/builds', async () => {
    const project = await createProject(ctx);
    const response = await trigger(ctx, project.id, { branch: 'feature/x', commit_sha: SHA });
    expect(response.statusCode, response.body).toBe(201);
    const build = expectQueued(response);
    expect(build).toMatchObject({ project_id: project.id, branch: 'feature/x', commit_sha: SHA, number: 1 });
    const finished = await settle(ctx, build);
    expectFinished(finished);
    expect(finished).toMatchObject({ branch: 'feature/x', commit_sha: SHA });
    expect(finished.logs).toContain(`(feature/x @ ${SHA.slice(0, 7)})`);
  });

  it('accepts an empty object body', async () => {
    const project = await createProject(ctx);
    const build = await triggerOk(ctx, project.id, {});
    expect(build.branch).toBe('main');
    expect(build.commit_sha).toMatch(/^[0-9a-f]{40}$/);
  });

  it.each(['a..b', '/x', 'x.lock', 'x/', 'has space', 'a:b', '', 'a//b'])('refuses the branch %j', async (branch) => {
    const project = await createProject(ctx);
    expectValidationError(await trigger(ctx, project.id, { branch }), '/body/branch');
    expect(await allBuilds(ctx, project.id)).toEqual([]);
  });

  it.each(['XYZ', 'abc12', SHA.toUpperCase().replace(/[0-9]/g, 'Z'), `${SHA}${'0'.repeat(30)}`, 12345678])(
    'refuses the commit_sha %j',
    async (commit_sha) => {
      const project = await createProject(ctx);
      expectValidationError(await trigger(ctx, project.id, { commit_sha }), '/body/commit_sha');
    },
  );

  it('refuses an unknown body field', async () => {
    const project = await createProject(ctx);
    expectValidationError(await trigger(ctx, project.id, { branch: 'main', status: 'success' }), '/body/status');
    expectValidationError(await trigger(ctx, project.id, { number: 7 }), '/body/number');
    expect(await allBuilds(ctx, project.id)).toEqual([]);
  });

  it('answers 404 when the project does not exist, on both trigger paths', async () => {
    expectNotFound(await triggerSeed(ctx, 2_000_000_000));
    expectNotFound(await trigger(ctx, 2_000_000_000, { branch: 'main' }));
    expectNotFound(await listBuilds(ctx, 2_000_000_000));
  });

  it('refuses a non-numeric project id with 400', async () => {
    expectValidationError(await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: '/projects/abc/build' }), undefined);
    expectValidationError(await listBuilds(ctx, 0));
  });

  it('serves GET /builds/:id as triggered, then as finished, and 404 for an unknown build', async () => {
    const project = await createProject(ctx);
    const build = await triggerOk(ctx, project.id, { branch: 'release/1.0' });
    const fetched = await injectAs(ctx.app, ctx.adminToken, { url: `/builds/${build.id}` });
    expect(fetched.statusCode).toBe(200);
    // The worker may already have picked it up: everything decided at trigger time is as answered.
    const { status, started_at, finished_at, duration_s, logs, ...fixed } = build;
    expect(fetched.json<BuildJson>()).toMatchObject(fixed);
    expect(['queued', 'running', 'success', 'fail']).toContain(fetched.json<BuildJson>().status);
    expect({ status, started_at, finished_at, duration_s, logs }).toEqual({ status: 'queued', started_at: null, finished_at: null, duration_s: null, logs: '' });

    const finished = await settle(ctx, build);
    expectFinished(finished);
    const again = await injectAs(ctx.app, ctx.adminToken, { url: `/builds/${build.id}` });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(finished);
    expect(finished).toMatchObject(fixed);

    expectNotFound(await injectAs(ctx.app, ctx.adminToken, { url: '/builds/2000000000' }));
    expectValidationError(await injectAs(ctx.app, ctx.adminToken, { url: '/builds/abc' }));
  });

  it("keeps last_build_status equal to the newest build's status after each trigger", async () => {
    const project = await createProject(ctx);
    expect((await getProject(ctx, project.id)).last_build_status).toBeNull();
    for (let i = 0; i < 12; i++) {
      const build = expectQueued(i % 2 === 0 ? await triggerSeed(ctx, project.id) : await trigger(ctx, project.id));
      // Right after the trigger, the newest build is this one, in whatever state the workers have brought it to.
      const current = (await getProject(ctx, project.id)).last_build_status;
      expect(['queued', 'running', 'success', 'fail']).toContain(current);
      const finished = await settle(ctx, build);
      expect((await getProject(ctx, project.id)).last_build_status).toBe(finished.status);
      const listed = await injectAs(ctx.app, ctx.adminToken, { url: '/projects', query: { q: project.name } });
      const item = listed.json<PageJson<ProjectJson>>().items.find((p) => p.id === project.id);
      expect(item?.last_build_status).toBe(finished.status);
      const newest = (await listBuilds(ctx, project.id, { per_page: '1' })).json<PageJson<BuildJson>>().items[0];
      expect(newest).toEqual(finished);
    }
  });

  describe('listing', () => {
    let project: ProjectJson;
    let builds: BuildJson[] = [];

    it('records 13 builds on two branches', async () => {
      project = await createProject(ctx);
      for (let i = 0; i < 13; i++) {
        builds.push(await triggerOk(ctx, project.id, i % 3 === 0 ? { branch: 'feature/x' } : undefined));
      }
      expect(builds.map((b) => b.status)).toEqual(Array.from({ length: 13 }, () => 'queued'));
      // Lists are compared once every build has run, so that no worker changes a build between two reads.
      builds = await Promise.all(builds.map((build) => settle(ctx, build)));
      for (const build of builds) expectFinished(build);
      builds = builds.reverse();
      expect(builds.map((b) => b.number)).toEqual([13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
    });

    it('lists newest first with the total', async () => {
      const response = await listBuilds(ctx, project.id);
      expect(response.statusCode).toBe(200);
      const body = response.json<PageJson<BuildJson>>();
      expect(body).toMatchObject({ page: 1, per_page: 20, total: 13 });
      expect(body.items).toEqual(builds);
    });

    it('paginates with a Link header', async () => {
      const response = await listBuilds(ctx, project.id, { per_page: '5', page: '2' });
      expect(response.statusCode).toBe(200);
      const body = response.json<PageJson<BuildJson>>();
      expect(body.total).toBe(13);
      expect(body.items.map((b) => b.number)).toEqual([8, 7, 6, 5, 4]);
      const links = parseLinks(response.headers.link);
      expect(links.first?.path).toBe(`/projects/${project.id}/builds`);
      expect(links.first?.get('page')).toBe('1');
      expect(links.prev?.get('page')).toBe('1');
      expect(links.next?.get('page')).toBe('3');
      expect(links.last?.get('page')).toBe('3');
      for (const link of Object.values(links)) expect(link.get('per_page')).toBe('5');

      const last = await listBuilds(ctx, project.id, { per_page: '5', page: '3' });
      expect(last.json<PageJson<BuildJson>>().items.map((b) => b.number)).toEqual([3, 2, 1]);
      expect(parseLinks(last.headers.link).next).toBeUndefined();
    });

    it('filters by status, the total following the filter', async () => {
      for (const status of ['success', 'fail'] as const) {
        const expected = builds.filter((b) => b.status === status);
        const response = await listBuilds(ctx, project.id, { status, per_page: '100' });
        expect(response.statusCode).toBe(200);
        const body = response.json<PageJson<BuildJson>>();
        expect(body.total).toBe(expected.length);
        expect(body.items.map((b) => b.id)).toEqual(expected.map((b) => b.id));
      }
      expect(builds.filter((b) => b.status === 'success').length + builds.filter((b) => b.status === 'fail').length).toBe(13);
      for (const status of ['queued', 'running', 'canceled'] as const) {
        const none = await listBuilds(ctx, project.id, { status });
        expect(none.statusCode).toBe(200);
        expect(none.json<PageJson<BuildJson>>()).toMatchObject({ items: [], total: 0 });
      }
    });

    it('filters by branch, the total following the filter and kept in the links', async () => {
      const expected = builds.filter((b) => b.branch === 'feature/x');
      expect(expected).toHaveLength(5);
      const response = await listBuilds(ctx, project.id, { branch: 'feature/x', per_page: '2' });
      expect(response.statusCode).toBe(200);
      const body = response.json<PageJson<BuildJson>>();
      expect(body.total).toBe(5);
      expect(body.items.map((b) => b.id)).toEqual(expected.slice(0, 2).map((b) => b.id));
      const links = parseLinks(response.headers.link);
      expect(links.next?.get('branch')).toBe('feature/x');
      expect(links.last?.get('page')).toBe('3');

      const main = await listBuilds(ctx, project.id, { branch: 'main', per_page: '100' });
      expect(main.json<PageJson<BuildJson>>().total).toBe(8);
      const none = await listBuilds(ctx, project.id, { branch: 'nope' });
      expect(none.json<PageJson<BuildJson>>()).toMatchObject({ items: [], total: 0 });
    });

    it('combines the status and branch filters', async () => {
      const expected = builds.filter((b) => b.branch === 'main' && b.status === 'success');
      const response = await listBuilds(ctx, project.id, { branch: 'main', status: 'success', per_page: '100' });
      expect(response.json<PageJson<BuildJson>>().total).toBe(expected.length);
      expect(response.json<PageJson<BuildJson>>().items.map((b) => b.id)).toEqual(expected.map((b) => b.id));
    });

    it.each([
      ['status', 'pending'],
      ['status', 'SUCCESS'],
      ['per_page', '101'],
      ['page', '0'],
    ])('refuses %s=%s with 400', async (param, value) => {
      expectValidationError(await listBuilds(ctx, project.id, { [param]: value }), `/querystring/${param}`);
    });
  });

  it('numbers 20 simultaneous triggers on one project 1..20, without gaps or duplicates', async () => {
    const project = await createProject(ctx);
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? triggerSeed(ctx, project.id) : trigger(ctx, project.id, {}))),
    );
    expect(responses.map((r) => r.statusCode)).toEqual(Array.from({ length: 20 }, () => 201));
    const numbers = responses.map((r) => r.json<BuildJson>().number).sort((a, b) => a - b);
    expect(numbers).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const ids = new Set(responses.map((r) => r.json<BuildJson>().id));
    expect(ids.size).toBe(20);
    expect(responses.every((r) => r.json<BuildJson>().status === 'queued')).toBe(true);
    const listed = await listBuilds(ctx, project.id, { per_page: '100' });
    expect(listed.json<PageJson<BuildJson>>().total).toBe(20);
    expect(listed.json<PageJson<BuildJson>>().items.map((b) => b.number)).toEqual(Array.from({ length: 20 }, (_, i) => 20 - i));
    // Every one of them runs once, to a terminal status, keeping its number.
    const finished = await Promise.all(responses.map((r) => settle(ctx, r.json<BuildJson>())));
    for (const build of finished) expectFinished(build);
    expect(finished.map((b) => b.number).sort((x, y) => x - y)).toEqual(numbers);
  });

  it('keeps separate number sequences for interleaved triggers on two projects', async () => {
    const a = await createProject(ctx);
    const b = await createProject(ctx);
    const responses = await Promise.all(Array.from({ length: 16 }, (_, i) => triggerSeed(ctx, i % 2 === 0 ? a.id : b.id)));
    expect(responses.every((r) => r.statusCode === 201)).toBe(true);
    for (const project of [a, b]) {
      const numbers = responses
        .map((r) => r.json<BuildJson>())
        .filter((build) => build.project_id === project.id)
        .map((build) => build.number)
        .sort((x, y) => x - y);
      expect(numbers).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    }
    // And sequentially, too: the next build of each is number 9.
    const nextA = expectQueued(await triggerSeed(ctx, a.id));
    const nextB = expectQueued(await triggerSeed(ctx, b.id));
    expect(nextA.number).toBe(9);
    expect(nextB.number).toBe(9);
    await Promise.all([...responses.map((r) => r.json<BuildJson>()), nextA, nextB].map((build) => settle(ctx, build)));
  });
});

describe(`builds: BUILD_FAIL_RATE=0 (${testDb})`, () => {
  const ctx = useTestApp({ BUILD_FAIL_RATE: '0' });

  it('makes every build succeed', async () => {
    const project = await createProject(ctx);
    const queued: BuildJson[] = [];
    for (let i = 0; i < 10; i++) queued.push(expectQueued(await triggerSeed(ctx, project.id)));
    for (const build of queued) {
      const finished = await settle(ctx, build);
      expectFinished(finished);
      expect(finished.status).toBe('success');
      expect(finished.logs).toContain(`Build finished: success in ${finished.duration_s} s`);
      expect(finished.logs).not.toMatch(/✗/);
    }
    expect((await getProject(ctx, project.id)).last_build_status).toBe('success');
    const failed = await listBuilds(ctx, project.id, { status: 'fail' });
    expect(failed.json<PageJson<BuildJson>>().total).toBe(0);
    const succeeded = await listBuilds(ctx, project.id, { status: 'success' });
    expect(succeeded.json<PageJson<BuildJson>>().total).toBe(10);
  });
});

describe(`builds: BUILD_FAIL_RATE=1 (${testDb})`, () => {
  const ctx = useTestApp({ BUILD_FAIL_RATE: '1' });

  it('makes every build fail', async () => {
    const project = await createProject(ctx);
    const queued: BuildJson[] = [];
    for (let i = 0; i < 10; i++) queued.push(expectQueued(await trigger(ctx, project.id)));
    for (const build of queued) {
      const finished = await settle(ctx, build);
      expectFinished(finished);
      expect(finished.status).toBe('fail');
      expect(finished.logs).toContain(`Build finished: fail in ${finished.duration_s} s`);
      expect(finished.logs).toMatch(/✗ Step \w+ failed: /);
      expect(finished.logs).not.toContain('✓ Step package passed');
    }
    expect((await getProject(ctx, project.id)).last_build_status).toBe('fail');
    const list = await injectAs(ctx.app, ctx.adminToken, { url: '/projects' });
    expect(list.json<PageJson<ProjectJson>>().items.find((p) => p.id === project.id)?.last_build_status).toBe('fail');
    const failed = await listBuilds(ctx, project.id, { status: 'fail' });
    expect(failed.json<PageJson<BuildJson>>().total).toBe(10);
    const succeeded = await listBuilds(ctx, project.id, { status: 'success' });
    expect(succeeded.json<PageJson<BuildJson>>().total).toBe(0);
  });
});

describe(`builds: no workers, builds stay queued (BUILD_CONCURRENCY=0) (${testDb})`, () => {
  const ctx = useTestApp({ BUILD_CONCURRENCY: '0' });

  it('reports the newest build as queued in last_build_status and the lists, until it is canceled', async () => {
    const project = await createProject(ctx);
    const first = expectQueued(await triggerSeed(ctx, project.id));
    const second = expectQueued(await trigger(ctx, project.id, { branch: 'feature/y' }));
    expect([first.number, second.number]).toEqual([1, 2]);
    expect((await getProject(ctx, project.id)).last_build_status).toBe('queued');
    const listed = await injectAs(ctx.app, ctx.adminToken, { url: '/projects', query: { q: project.name } });
    expect(listed.json<PageJson<ProjectJson>>().items.find((p) => p.id === project.id)?.last_build_status).toBe('queued');

    const queued = await listBuilds(ctx, project.id, { status: 'queued' });
    expect(queued.json<PageJson<BuildJson>>()).toMatchObject({ total: 2 });
    expect(queued.json<PageJson<BuildJson>>().items).toEqual([second, first]);
    // Nothing runs them: a while later they are exactly as triggered.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await injectAs(ctx.app, ctx.adminToken, { url: `/builds/${first.id}` })).json()).toEqual(first);

    // The newest build decides: canceling it shows canceled, even though an older one is still queued.
    const cancel = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/builds/${second.id}/cancel` });
    expect(cancel.statusCode, cancel.body).toBe(200);
    expect(cancel.json<BuildJson>().status).toBe('canceled');
    expect((await getProject(ctx, project.id)).last_build_status).toBe('canceled');
    expect((await listBuilds(ctx, project.id, { status: 'queued' })).json<PageJson<BuildJson>>().items.map((b) => b.id)).toEqual([first.id]);
  });
});

describe(`builds: Idempotency-Key is per user (${testDb})`, () => {
  const ctx = useTestApp({ BUILD_CONCURRENCY: '0' });

  async function maintainerToken(): Promise<string> {
    const username = uniqueName('maint');
    const password = `pw-${uniqueName()}`;
    const created = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: '/users', payload: { username, password, role: 'maintainer' } });
    expect(created.statusCode, created.body).toBe(201);
    return login(ctx.app, username, password);
  }

  const triggerWithKey = (token: string, projectId: number, key: string, payload?: object) =>
    injectAs(ctx.app, token, {
      method: 'POST',
      url: `/projects/${projectId}/builds`,
      headers: { 'idempotency-key': key },
      ...(payload === undefined ? {} : { payload }),
    });

  it("two users sending the same key on the same project get a build each; each user's repeat answers their own", async () => {
    const project = await createProject(ctx);
    const [alice, bob] = [await maintainerToken(), await maintainerToken()];
    const key = `release-${uniqueName()}`;

    const aliceFirst = await triggerWithKey(alice, project.id, key);
    expect(aliceFirst.statusCode, aliceFirst.body).toBe(201);
    expect(aliceFirst.headers['idempotent-replayed']).toBeUndefined();
    // Bob's same key, even for another branch: his own build, neither Alice's nor a 409.
    const bobFirst = await triggerWithKey(bob, project.id, key, { branch: 'hotfix' });
    expect(bobFirst.statusCode, bobFirst.body).toBe(201);
    expect(bobFirst.headers['idempotent-replayed']).toBeUndefined();
    expect(bobFirst.json<BuildJson>().id).not.toBe(aliceFirst.json<BuildJson>().id);
    expect(bobFirst.json<BuildJson>()).toMatchObject({ branch: 'hotfix', status: 'queued' });

    const aliceAgain = await triggerWithKey(alice, project.id, key);
    expect(aliceAgain.statusCode).toBe(201);
    expect(aliceAgain.headers['idempotent-replayed']).toBe('true');
    expect(aliceAgain.json<BuildJson>().id).toBe(aliceFirst.json<BuildJson>().id);
    const bobAgain = await triggerWithKey(bob, project.id, key);
    expect(bobAgain.headers['idempotent-replayed']).toBe('true');
    expect(bobAgain.json<BuildJson>().id).toBe(bobFirst.json<BuildJson>().id);

    const list = await injectAs(ctx.app, ctx.adminToken, { url: `/projects/${project.id}/builds` });
    expect(list.json<PageJson<BuildJson>>().total).toBe(2);
  });

  it('concurrent triggers of two users with one key make exactly two builds', async () => {
    const project = await createProject(ctx);
    const [alice, bob] = [await maintainerToken(), await maintainerToken()];
    const key = `burst-${uniqueName()}`;
    const responses = await Promise.all(Array.from({ length: 10 }, (_, i) => triggerWithKey(i % 2 === 0 ? alice : bob, project.id, key)));
    expect(responses.map((response) => response.statusCode)).toEqual(Array(10).fill(201));
    expect(new Set(responses.map((response) => response.json<BuildJson>().id)).size).toBe(2);
    expect(responses.filter((response) => response.headers['idempotent-replayed'] === 'true')).toHaveLength(8);
  });
});
