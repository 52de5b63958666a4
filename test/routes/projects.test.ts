import { eq, inArray } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
import { describe, expect, it } from 'vitest';
import { injectAs, problemOf, testDb, uniqueName, useTestApp, waitForBuild, type TestContext } from '../helper.js';

interface ProjectJson {
  id: number;
  name: string;
  repo: string;
  default_branch: string;
  last_build_status: string | null;
  created_at: string;
  updated_at: string;
}

interface PageJson {
  items: ProjectJson[];
  page: number;
  per_page: number;
  total: number;
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$/;

/** Parses an RFC 8288 Link header into rel → { path, params }. */
function parseLinks(header: string | string[] | number | undefined): Record<string, { path: string; params: URLSearchParams }> {
  expect(typeof header).toBe('string');
  const links: Record<string, { path: string; params: URLSearchParams }> = {};
  for (const part of String(header).split(',')) {
    const match = /^\s*<([^>]*)>\s*;\s*rel="([^"]+)"\s*$/.exec(part);
    expect(match, `malformed link part: ${part}`).not.toBeNull();
    const [, target = '', rel = ''] = match ?? [];
    const [path = '', search = ''] = target.split('?', 2);
    links[rel] = { path, params: new URLSearchParams(search) };
  }
  return links;
}

function create(ctx: TestContext, payload: unknown, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: '/projects', payload: payload as object, headers });
}

/** Posts a raw JSON text, so that non-object bodies reach the validator untouched. */
function createRaw(ctx: TestContext, body: string): Promise<LightMyRequestResponse> {
  return injectAs(ctx.app, ctx.adminToken, {
    method: 'POST',
    url: '/projects',
    payload: body,
    headers: { 'content-type': 'application/json' },
  });
}

function list(ctx: TestContext, query: Record<string, string>): Promise<LightMyRequestResponse> {
  return injectAs(ctx.app, ctx.adminToken, { method: 'GET', url: '/projects', query });
}

function expectValidationError(response: LightMyRequestResponse, path?: string): void {
  expect(response.statusCode, response.body).toBe(400);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = problemOf(response);
  expect(body.error).toBe('validation_error');
  expect(body.status).toBe(400);
  if (path !== undefined) expect(body.errors?.map((e) => e.path)).toContain(path);
}

describe(`projects: create and read (${testDb})`, () => {
  const ctx = useTestApp();

  it('creates a project from the seed body: 201, Location, every field', async () => {
    const name = uniqueName('DemoProj');
    const before = Date.now();
    const response = await create(ctx, { name, repo: 'https://github.com/demo/repo' });
    const after = Date.now();
    expect(response.statusCode, response.body).toBe(201);
    const body = response.json<ProjectJson>();
    expect(Number.isInteger(body.id)).toBe(true);
    expect(body.id).toBeGreaterThan(0);
    expect(response.headers.location).toBe(`/projects/${body.id}`);
    expect(body).toEqual({
      id: body.id,
      name,
      repo: 'https://github.com/demo/repo',
      default_branch: 'main',
      last_build_status: null,
      created_at: expect.stringMatching(ISO_UTC),
      updated_at: expect.stringMatching(ISO_UTC),
    });
    // The database clock may differ slightly from this process's: a loose window still catches unit bugs.
    for (const stamp of [body.created_at, body.updated_at]) {
      const ms = Date.parse(stamp);
      expect(ms).toBeGreaterThan(before - 120_000);
      expect(ms).toBeLessThan(after + 120_000);
    }
    expect(response.body).not.toContain('password_hash');
  });

  it('honours an optional default_branch', async () => {
    const name = uniqueName('Branchy');
    const response = await create(ctx, { name, repo: 'https://example.com/x/y.git', default_branch: 'develop' });
    expect(response.statusCode, response.body).toBe(201);
    expect(response.json<ProjectJson>().default_branch).toBe('develop');
    const fetched = await injectAs(ctx.app, ctx.adminToken, { url: response.headers.location as string });
    expect(fetched.json<ProjectJson>().default_branch).toBe('develop');
  });

  it('returns the same project from GET /projects/:id', async () => {
    const created = await create(ctx, { name: uniqueName('Fetch'), repo: 'https://github.com/demo/fetch' });
    expect(created.statusCode).toBe(201);
    const body = created.json<ProjectJson>();
    const fetched = await injectAs(ctx.app, ctx.adminToken, { url: `/projects/${body.id}` });
    expect(fetched.statusCode).toBe(200);
    expect(fetched.json()).toEqual(body);
    expect(fetched.body).not.toContain('password_hash');
  });

  it('answers 404 not_found for an unknown id', async () => {
    const response = await injectAs(ctx.app, ctx.adminToken, { url: '/projects/2147483000' });
    expect(response.statusCode).toBe(404);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(problemOf(response)).toMatchObject({ status: 404, error: 'not_found', instance: '/projects/2147483000' });
  });

  it.each(['abc', '0', '-1', '1.5', '99999999999'])('refuses the id %j with 400 validation_error', async (id) => {
    const response = await injectAs(ctx.app, ctx.adminToken, { url: `/projects/${id}` });
    expectValidationError(response);
    expect(problemOf(response).errors?.[0]?.path).toMatch(/^\/params/);
  });

  it('answers 409 conflict for a name that exists', async () => {
    const name = uniqueName('Dup');
    const first = await create(ctx, { name, repo: 'https://github.com/demo/a' });
    expect(first.statusCode).toBe(201);
    const second = await create(ctx, { name, repo: 'https://github.com/demo/b' });
    expect(second.statusCode).toBe(409);
    expect(second.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(problemOf(second)).toMatchObject({ status: 409, error: 'conflict' });
    // The loser wrote nothing.
    const found = await list(ctx, { q: name });
    expect(found.json<PageJson>().total).toBe(1);
    expect(found.json<PageJson>().items[0]?.repo).toBe('https://github.com/demo/a');
  });

  describe('name validation', () => {
    it.each([
      ['empty', ''],
      ['101 characters', 'n'.repeat(101)],
      ['a leading space', ' lead'],
      ['a trailing space', 'trail '],
      ['a control character', 'bell\u0007name'],
      ['a newline', 'two\nlines'],
      ['a DEL character', 'del\u007fname'],
    ])('refuses a name with %s', async (_label, name) => {
      const response = await create(ctx, { name, repo: 'https://github.com/demo/repo' });
      expectValidationError(response, '/body/name');
    });

    it('accepts a name of exactly 100 characters and one with inner spaces', async () => {
      const long = `${uniqueName('L')}${'x'.repeat(100)}`.slice(0, 100);
      expect(long).toHaveLength(100);
      const okLong = await create(ctx, { name: long, repo: 'https://github.com/demo/repo' });
      expect(okLong.statusCode, okLong.body).toBe(201);
      expect(okLong.json<ProjectJson>().name).toBe(long);
      const spaced = `${uniqueName('My')} Project`;
      const okSpaced = await create(ctx, { name: spaced, repo: 'https://github.com/demo/repo' });
      expect(okSpaced.statusCode, okSpaced.body).toBe(201);
    });

    it('refuses a missing name, pointing at it', async () => {
      expectValidationError(await create(ctx, { repo: 'https://github.com/demo/repo' }), '/body/name');
    });
  });

  describe('repo validation', () => {
    it.each([
      'https://github.com/demo/repo',
      'http://gitlab.local/group/repo',
      'ssh://git@host.example.com/x.git',
      'git://host/x',
      'git@github.com:org/repo.git',
    ])('accepts %s', async (repo) => {
      const response = await create(ctx, { name: uniqueName('Repo'), repo });
      expect(response.statusCode, response.body).toBe(201);
      expect(response.json<ProjectJson>().repo).toBe(repo);
    });

    it.each(['not a url', 'ftp://x/y', 'javascript:alert(1)', 'https://', ''])('refuses %j', async (repo) => {
      const response = await create(ctx, { name: uniqueName('BadRepo'), repo });
      expectValidationError(response, '/body/repo');
    });

    it('refuses a missing repo', async () => {
      expectValidationError(await create(ctx, { name: uniqueName('NoRepo') }), '/body/repo');
    });
  });

  describe('body shape', () => {
    it.each([
      ['id', 999],
      ['last_build_status', 'success'],
      ['foo', 'bar'],
      ['created_at', '2020-01-01T00:00:00.000Z'],
    ])('refuses the unknown field %s (no mass assignment)', async (field, value) => {
      const name = uniqueName('Mass');
      const response = await create(ctx, { name, repo: 'https://github.com/demo/repo', [field]: value });
      expectValidationError(response, `/body/${field}`);
      // Nothing was created.
      const found = await list(ctx, { q: name });
      expect(found.json<PageJson>().total).toBe(0);
    });

    it('does not coerce JSON bodies: a numeric name is refused', async () => {
      expectValidationError(await create(ctx, { name: 123, repo: 'https://github.com/demo/repo' }), '/body/name');
    });

    it('does not coerce a boolean or numeric repo either', async () => {
      expectValidationError(await create(ctx, { name: uniqueName('Coerce'), repo: true }), '/body/repo');
    });

    it.each([
      ['an array', JSON.stringify([{ name: 'arr', repo: 'https://github.com/demo/repo' }])],
      ['a string', JSON.stringify('DemoProj')],
      ['a number', '42'],
      ['null', 'null'],
    ])('refuses %s as the body', async (_label, body) => {
      expectValidationError(await createRaw(ctx, body));
    });

    it('requires authentication', async () => {
      const response = await ctx.app.inject({
        method: 'POST',
        url: '/projects',
        payload: { name: uniqueName('Anon'), repo: 'https://github.com/demo/repo' },
      });
      expect(response.statusCode).toBe(401);
      expect(problemOf(response).error).toBe('unauthorized');
    });
  });

  it('lets exactly one of 20 simultaneous creations of a name win', async () => {
    const name = uniqueName('Race');
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) => create(ctx, { name, repo: `https://github.com/demo/race${i}` })),
    );
    const codes = responses.map((r) => r.statusCode).sort();
    expect(codes.filter((c) => c === 201)).toHaveLength(1);
    expect(codes.filter((c) => c === 409)).toHaveLength(19);
    for (const r of responses.filter((r) => r.statusCode === 409)) expect(problemOf(r).error).toBe('conflict');
    const found = await list(ctx, { q: name });
    expect(found.statusCode).toBe(200);
    expect(found.json<PageJson>().total).toBe(1);
    const winner = responses.find((r) => r.statusCode === 201);
    expect(found.json<PageJson>().items[0]?.id).toBe(winner?.json<ProjectJson>().id);
  });
});

describe(`projects: pagination (${testDb})`, () => {
  const ctx = useTestApp();
  const TOTAL = 25;
  const created: ProjectJson[] = [];

  it('creates 25 projects', async () => {
    // Sequentially, so that ids follow creation order.
    for (let i = 0; i < TOTAL; i++) {
      const response = await create(ctx, { name: `page-${String(i).padStart(2, '0')}-${uniqueName('p')}`, repo: `https://github.com/demo/p${i}` });
      expect(response.statusCode).toBe(201);
      created.push(response.json<ProjectJson>());
    }
    expect(created).toHaveLength(TOTAL);
  });

  it('serves page 2 of 10: ten items in id order, the total and Link header', async () => {
    const response = await list(ctx, { per_page: '10', page: '2' });
    expect(response.statusCode).toBe(200);
    const body = response.json<PageJson>();
    expect(body.page).toBe(2);
    expect(body.per_page).toBe(10);
    expect(body.total).toBe(TOTAL);
    expect(body.items.map((p) => p.id)).toEqual(created.slice(10, 20).map((p) => p.id));
    const ids = body.items.map((p) => p.id);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    expect(response.body).not.toContain('password_hash');

    const links = parseLinks(response.headers.link);
    expect(Object.keys(links).sort()).toEqual(['first', 'last', 'next', 'prev']);
    for (const [rel, page] of [['first', '1'], ['prev', '1'], ['next', '3'], ['last', '3']] as const) {
      expect(links[rel]?.path, rel).toBe('/projects');
      expect(links[rel]?.params.get('page'), rel).toBe(page);
      expect(links[rel]?.params.get('per_page'), rel).toBe('10');
    }
  });

  it('has no prev on the first page and no next on the last', async () => {
    const first = await list(ctx, { per_page: '10', page: '1' });
    const firstLinks = parseLinks(first.headers.link);
    expect(firstLinks.prev).toBeUndefined();
    expect(firstLinks.next?.params.get('page')).toBe('2');
    expect(firstLinks.last?.params.get('page')).toBe('3');

    const last = await list(ctx, { per_page: '10', page: '3' });
    expect(last.json<PageJson>().items.map((p) => p.id)).toEqual(created.slice(20).map((p) => p.id));
    const lastLinks = parseLinks(last.headers.link);
    expect(lastLinks.next).toBeUndefined();
    expect(lastLinks.prev?.params.get('page')).toBe('2');
  });

  it('keeps the other query parameters in the links', async () => {
    const response = await list(ctx, { per_page: '2', page: '2', q: 'page-' });
    expect(response.statusCode).toBe(200);
    const links = parseLinks(response.headers.link);
    expect(links.next?.params.get('q')).toBe('page-');
    expect(links.next?.params.get('per_page')).toBe('2');
    expect(links.last?.params.get('page')).toBe(String(Math.ceil(TOTAL / 2)));
  });

  it('answers a page beyond the end with 200, no items and the total', async () => {
    const response = await list(ctx, { per_page: '10', page: '7' });
    expect(response.statusCode).toBe(200);
    const body = response.json<PageJson>();
    expect(body.items).toEqual([]);
    expect(body.total).toBe(TOTAL);
    expect(body.page).toBe(7);
  });

  it('defaults to page 1 of 20', async () => {
    const response = await list(ctx, {});
    expect(response.statusCode).toBe(200);
    const body = response.json<PageJson>();
    expect(body.page).toBe(1);
    expect(body.per_page).toBe(20);
    expect(body.total).toBe(TOTAL);
    expect(body.items.map((p) => p.id)).toEqual(created.slice(0, 20).map((p) => p.id));
  });

  it('accepts per_page=100 and returns everything', async () => {
    const response = await list(ctx, { per_page: '100' });
    expect(response.statusCode).toBe(200);
    expect(response.json<PageJson>().items).toHaveLength(TOTAL);
  });

  it.each([
    ['per_page', '101'],
    ['per_page', '0'],
    ['per_page', '-5'],
    ['per_page', 'ten'],
    ['page', '0'],
    ['page', '-1'],
    ['page', '1.5'],
  ])('refuses %s=%s with 400', async (param, value) => {
    const response = await list(ctx, { [param]: value });
    expectValidationError(response, `/querystring/${param}`);
  });
});

describe(`projects: name search (${testDb})`, () => {
  const ctx = useTestApp();
  const tag = uniqueName('t').replace('-', '');
  const names = {
    percent: `${tag}-100%Pure`,
    percentDecoy: `${tag}-100XPure`,
    underscore: `${tag}-snake_Case`,
    underscoreDecoy: `${tag}-snakeXCase`,
    mixed: `${tag}-MiXeDCase`,
  };

  it('creates the projects to search', async () => {
    for (const name of Object.values(names)) {
      const response = await create(ctx, { name, repo: 'https://github.com/demo/search' });
      expect(response.statusCode, response.body).toBe(201);
    }
    const other = await create(ctx, { name: uniqueName('unrelated'), repo: 'https://github.com/demo/other' });
    expect(other.statusCode).toBe(201);
  });

  const namesFor = async (q: string) => {
    const response = await list(ctx, { q, per_page: '100' });
    expect(response.statusCode).toBe(200);
    const body = response.json<PageJson>();
    expect(body.total).toBe(body.items.length);
    return body.items.map((p) => p.name).sort();
  };

  it('matches a case-insensitive substring', async () => {
    expect(await namesFor('mixedcase')).toEqual([names.mixed]);
    expect(await namesFor('MIXEDCASE')).toEqual([names.mixed]);
    expect(await namesFor(tag.toUpperCase())).toEqual(Object.values(names).sort());
  });

  it('treats % literally', async () => {
    expect(await namesFor('0%p')).toEqual([names.percent]);
    expect(await namesFor('%')).toEqual([names.percent]);
  });

  it('treats _ literally', async () => {
    expect(await namesFor('e_c')).toEqual([names.underscore]);
    expect(await namesFor('_')).toEqual([names.underscore]);
  });

  it('treats a backslash literally', async () => {
    expect(await namesFor('\\')).toEqual([]);
  });

  it('answers no match with an empty page and total 0', async () => {
    const response = await list(ctx, { q: `${tag}-nothing-like-this` });
    expect(response.statusCode).toBe(200);
    expect(response.json<PageJson>()).toMatchObject({ items: [], total: 0 });
  });
});

describe(`projects: update (${testDb})`, () => {
  const ctx = useTestApp();

  const patch = (id: number, payload: unknown, token = ctx.adminToken) =>
    injectAs(ctx.app, token, { method: 'PATCH', url: `/projects/${id}`, payload: payload as object });
  const fetch = async (id: number) => (await injectAs(ctx.app, ctx.adminToken, { url: `/projects/${id}` })).json<ProjectJson>();

  async function fresh(extra: Record<string, string> = {}): Promise<ProjectJson> {
    const response = await create(ctx, { name: uniqueName('Upd'), repo: 'https://github.com/demo/upd', ...extra });
    expect(response.statusCode, response.body).toBe(201);
    return response.json<ProjectJson>();
  }

  it.each([
    ['name', () => uniqueName('Renamed')],
    ['repo', () => 'git@github.com:demo/elsewhere.git'],
    ['default_branch', () => 'release/2.0'],
  ])('changes only %s, bumps updated_at, keeps created_at, and GET agrees', async (field, value) => {
    const project = await fresh();
    await new Promise((resolve) => setTimeout(resolve, 15));
    const next = value();
    const response = await patch(project.id, { [field]: next });
    expect(response.statusCode, response.body).toBe(200);
    const body = response.json<ProjectJson>();
    expect(body).toEqual({ ...project, [field]: next, updated_at: expect.stringMatching(ISO_UTC) });
    expect(Date.parse(body.updated_at)).toBeGreaterThan(Date.parse(project.updated_at));
    expect(await fetch(project.id)).toEqual(body);
  });

  it('changes several fields at once', async () => {
    const project = await fresh();
    const changes = { name: uniqueName('Multi'), repo: 'https://gitlab.example.com/a/b', default_branch: 'develop' };
    const response = await patch(project.id, changes);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toMatchObject(changes);
  });

  it('keeps last_build_status in its answer', async () => {
    const project = await fresh();
    const build = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/projects/${project.id}/builds` });
    expect(build.statusCode).toBe(201);
    expect(build.json<{ status: string }>().status).toBe('queued');
    const { status } = await waitForBuild(ctx.app, ctx.adminToken, build.json<{ id: number }>().id);
    expect(['success', 'fail']).toContain(status);
    const response = await patch(project.id, { repo: 'https://github.com/demo/with-builds' });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<ProjectJson>().last_build_status).toBe(status);
  });

  it('lets a project keep its own name', async () => {
    const project = await fresh();
    const response = await patch(project.id, { name: project.name });
    expect(response.statusCode, response.body).toBe(200);
  });

  it('answers 409 conflict for a name another project has, and changes nothing', async () => {
    const [a, b] = [await fresh(), await fresh()];
    const response = await patch(b.id, { name: a.name, repo: 'https://github.com/demo/should-not-stick' });
    expect(response.statusCode, response.body).toBe(409);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(problemOf(response)).toMatchObject({ status: 409, error: 'conflict' });
    expect(await fetch(b.id)).toEqual(b);
    expect(await fetch(a.id)).toEqual(a);
  });

  it('lets exactly one of 10 simultaneous renames to the same name win', async () => {
    const projects = await Promise.all(Array.from({ length: 10 }, () => fresh()));
    const name = uniqueName('Contested');
    const responses = await Promise.all(projects.map((p) => patch(p.id, { name })));
    const codes = responses.map((r) => r.statusCode).sort();
    expect(codes).toEqual([200, ...Array<number>(9).fill(409)]);
    const found = await list(ctx, { q: name });
    expect(found.json<PageJson>().total).toBe(1);
  });

  it('answers 404 for an unknown project and 400 for a malformed id', async () => {
    const response = await patch(2147483000, { repo: 'https://github.com/demo/x' });
    expect(response.statusCode).toBe(404);
    expect(problemOf(response)).toMatchObject({ error: 'not_found', instance: '/projects/2147483000' });
    expectValidationError(await injectAs(ctx.app, ctx.adminToken, { method: 'PATCH', url: '/projects/abc', payload: { repo: 'https://github.com/demo/x' } }), '/params/id');
  });

  it('refuses an empty body', async () => {
    const project = await fresh();
    expectValidationError(await patch(project.id, {}));
    expect(await fetch(project.id)).toEqual(project);
  });

  it.each([
    ['name', ''],
    ['name', ' padded '],
    ['name', 42],
    ['name', null],
    ['repo', 'not a url'],
    ['repo', null],
    ['default_branch', 'bad..branch'],
    ['default_branch', ''],
  ])('refuses %s = %j, changing nothing', async (field, value) => {
    const project = await fresh();
    expectValidationError(await patch(project.id, { [field]: value }), `/body/${field}`);
    expect(await fetch(project.id)).toEqual(project);
  });

  it.each([
    ['id', 999],
    ['last_build_status', 'success'],
    ['created_at', '2020-01-01T00:00:00.000Z'],
    ['updated_at', '2020-01-01T00:00:00.000Z'],
    ['owner', 'me'],
  ])('refuses the read-only or unknown field %s, even beside a valid one (no mass assignment)', async (field, value) => {
    const project = await fresh();
    expectValidationError(await patch(project.id, { repo: 'https://github.com/demo/ok', [field]: value }), `/body/${field}`);
    expect(await fetch(project.id)).toEqual(project);
  });

  it('requires authentication', async () => {
    const project = await fresh();
    const response = await ctx.app.inject({ method: 'PATCH', url: `/projects/${project.id}`, payload: { name: uniqueName('anon') } });
    expect(response.statusCode).toBe(401);
    expect(await fetch(project.id)).toEqual(project);
  });
});

describe(`projects: delete (${testDb})`, () => {
  const ctx = useTestApp();

  const remove = (id: number) => injectAs(ctx.app, ctx.adminToken, { method: 'DELETE', url: `/projects/${id}` });

  it('deletes a project with its builds: 204 without a body, then 404 for both', async () => {
    const created = await create(ctx, { name: uniqueName('Doomed'), repo: 'https://github.com/demo/doomed' });
    const project = created.json<ProjectJson>();
    const buildIds: number[] = [];
    for (const path of ['build', 'builds', 'builds']) {
      const build = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/projects/${project.id}/${path}` });
      expect(build.statusCode).toBe(201);
      buildIds.push(build.json<{ id: number }>().id);
    }
    // A neighbour's builds are untouched.
    const other = (await create(ctx, { name: uniqueName('Neighbour'), repo: 'https://github.com/demo/n' })).json<ProjectJson>();
    const otherBuild = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/projects/${other.id}/builds` });
    // Once the builds have run, successful ones have an artifact: the delete must take those too.
    const otherId = otherBuild.json<{ id: number }>().id;
    for (const id of [...buildIds, otherId]) await waitForBuild(ctx.app, ctx.adminToken, id);
    const otherFinished = (await injectAs(ctx.app, ctx.adminToken, { url: `/builds/${otherId}` })).json<Record<string, unknown>>();

    const response = await remove(project.id);
    expect(response.statusCode, response.body).toBe(204);
    expect(response.body).toBe('');

    expect((await injectAs(ctx.app, ctx.adminToken, { url: `/projects/${project.id}` })).statusCode).toBe(404);
    expect((await injectAs(ctx.app, ctx.adminToken, { url: `/projects/${project.id}/builds` })).statusCode).toBe(404);
    for (const id of buildIds) expect((await injectAs(ctx.app, ctx.adminToken, { url: `/builds/${id}` })).statusCode, `build ${id}`).toBe(404);

    // The rows are gone from the database, not just hidden.
    const { db, tables } = ctx.app.database;
    expect(await db.select().from(tables.builds).where(eq(tables.builds.project_id, project.id))).toEqual([]);
    expect(await db.select().from(tables.artifacts).where(inArray(tables.artifacts.build_id, buildIds))).toEqual([]);

    const otherAfter = await injectAs(ctx.app, ctx.adminToken, { url: `/builds/${otherId}` });
    expect(otherAfter.statusCode).toBe(200);
    expect(otherAfter.json()).toEqual(otherFinished);
    expect((await injectAs(ctx.app, ctx.adminToken, { url: `/projects/${other.id}` })).statusCode).toBe(200);
  });

  it('answers 404 for a project already deleted or never created', async () => {
    const project = (await create(ctx, { name: uniqueName('Once'), repo: 'https://github.com/demo/once' })).json<ProjectJson>();
    expect((await remove(project.id)).statusCode).toBe(204);
    const again = await remove(project.id);
    expect(again.statusCode).toBe(404);
    expect(problemOf(again)).toMatchObject({ error: 'not_found', instance: `/projects/${project.id}` });
    expect((await remove(2147483000)).statusCode).toBe(404);
    expectValidationError(await injectAs(ctx.app, ctx.adminToken, { method: 'DELETE', url: '/projects/x' }), '/params/id');
  });

  it('frees the name for a new project', async () => {
    const name = uniqueName('Reborn');
    const first = (await create(ctx, { name, repo: 'https://github.com/demo/a' })).json<ProjectJson>();
    expect((await remove(first.id)).statusCode).toBe(204);
    const second = await create(ctx, { name, repo: 'https://github.com/demo/b' });
    expect(second.statusCode).toBe(201);
    expect(second.json<ProjectJson>().id).not.toBe(first.id);
  });

  it('lets exactly one of 5 simultaneous deletes succeed', async () => {
    const project = (await create(ctx, { name: uniqueName('Raced'), repo: 'https://github.com/demo/r' })).json<ProjectJson>();
    const codes = (await Promise.all(Array.from({ length: 5 }, () => remove(project.id)))).map((r) => r.statusCode).sort();
    expect(codes).toEqual([204, 404, 404, 404, 404]);
  });

  it('requires authentication', async () => {
    const project = (await create(ctx, { name: uniqueName('Kept'), repo: 'https://github.com/demo/k' })).json<ProjectJson>();
    const response = await ctx.app.inject({ method: 'DELETE', url: `/projects/${project.id}` });
    expect(response.statusCode).toBe(401);
    expect((await injectAs(ctx.app, ctx.adminToken, { url: `/projects/${project.id}` })).statusCode).toBe(200);
  });
});
