/**
 * OWASP API Security Top 10 (2023), API5: broken function-level authorization. Every route the app serves is in
 * ROUTES with the least role it needs; the table must cover them all, so a route added without an entry fails here.
 * Below that role a caller gets 403 `forbidden` and the database does not change; at or above it the call works;
 * without a token everything but the public routes is 401.
 */
import { is, isNull, Table } from 'drizzle-orm';
import type { HTTPMethods, LightMyRequestResponse } from 'fastify';
import type { OpenAPIV3 } from 'openapi-types';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { injectAs, login, problemOf, testDb, uniqueName, useTestApp, waitForBuild } from './helper.js';

type Role = 'viewer' | 'maintainer' | 'admin';
type Least = 'anyone' | Role;

const ROLE_ORDER: Role[] = ['viewer', 'maintainer', 'admin'];
const PASSWORD = 'a-decent-passphrase';

interface PreparedRequest {
  url: string;
  payload?: object;
}

interface Fixtures {
  project(): Promise<number>;
  /** A build the workers have run to the end (a success: this file runs with BUILD_FAIL_RATE=0). */
  build(): Promise<number>;
  /** A build kept queued (the workers claim nothing until the test ends), so that it can be canceled. */
  queuedBuild(): Promise<number>;
  /** The artifact of a successful build. */
  artifact(): Promise<{ build: number; name: string }>;
  user(): Promise<number>;
  refreshToken(): Promise<string>;
  /** A job of a finished build (its first: a success). */
  job(): Promise<number>;
  /** The job of a successful build that stored an artifact (the default pipeline's package job), and its file's name. */
  jobArtifact(): Promise<{ job: number; name: string }>;
  /** The first job of a held build: queued, so that it can be canceled. */
  queuedJob(): Promise<number>;
  /** A `when: manual` job whose needs have run: waiting to be played. */
  manualJob(): Promise<number>;
  /** A webhook's path (`/projects/1/hooks/2`). */
  hook(): Promise<string>;
  /** A (ping) delivery's path, queued: no worker sends it in this file. */
  delivery(): Promise<string>;
}

interface RouteCase {
  /** As Fastify registers it: `METHOD /path/:param`. */
  route: string;
  least: Least;
  /** Builds the request, creating (as the admin) whatever it acts on, so that an allowed call can succeed. */
  prepare(fixtures: Fixtures): Promise<PreparedRequest>;
  /** Status of an allowed call. */
  success: number;
  /** The call ends the caller's session: run it with a throwaway login. */
  endsSession?: boolean;
  /** Served by another part of the app that may not exist yet: checked only when the route exists. */
  optional?: boolean;
}

/** A hook to a closed local port: nothing is sent in this file (WEBHOOK_CONCURRENCY=0), private addresses allowed. */
const HOOK = { url: 'http://127.0.0.1:9/hook', events: ['build.*'] };

const newProjectBody = () => ({ name: uniqueName('authz'), repo: 'https://github.com/demo/authz' });

/** A valid pipeline definition, as PUT /projects/:id/pipeline and POST /pipelines/lint take it. */
const PIPELINE = { stages: ['build'], jobs: { compile: { stage: 'build', script: ['make'] } } };
/** A pipeline whose builds end with a manual job left to play. */
const MANUAL_PIPELINE = { stages: ['build', 'deploy'], jobs: { compile: { stage: 'build' }, deploy: { stage: 'deploy', when: 'manual' } } };

const ROUTES: RouteCase[] = [
  // Public.
  { route: 'POST /login', least: 'anyone', success: 200, prepare: async () => ({ url: '/login', payload: { username: 'admin', password: 'admin123' } }) },
  { route: 'GET /status', least: 'anyone', success: 200, prepare: async () => ({ url: '/status' }) },
  { route: 'GET /health/live', least: 'anyone', success: 200, prepare: async () => ({ url: '/health/live' }) },
  { route: 'GET /health/ready', least: 'anyone', success: 200, prepare: async () => ({ url: '/health/ready' }) },
  { route: 'GET /metrics', least: 'anyone', success: 200, prepare: async () => ({ url: '/metrics' }) },
  {
    route: 'POST /token/refresh',
    least: 'anyone',
    success: 200,
    optional: true,
    prepare: async (f) => ({ url: '/token/refresh', payload: { refresh_token: await f.refreshToken() } }),
  },
  // Any authenticated user.
  { route: 'GET /me', least: 'viewer', success: 200, prepare: async () => ({ url: '/me' }) },
  { route: 'POST /logout', least: 'viewer', success: 204, endsSession: true, optional: true, prepare: async () => ({ url: '/logout' }) },
  // Viewers read.
  { route: 'GET /projects', least: 'viewer', success: 200, prepare: async () => ({ url: '/projects' }) },
  { route: 'GET /projects/:id', least: 'viewer', success: 200, prepare: async (f) => ({ url: `/projects/${await f.project()}` }) },
  { route: 'GET /projects/:id/builds', least: 'viewer', success: 200, prepare: async (f) => ({ url: `/projects/${await f.project()}/builds` }) },
  { route: 'GET /builds/:id', least: 'viewer', success: 200, prepare: async (f) => ({ url: `/builds/${await f.build()}` }) },
  {
    route: 'GET /builds/:id/logs',
    least: 'viewer',
    success: 200,
    prepare: async (f) => ({ url: `/builds/${await f.build()}/logs` }),
  },
  {
    route: 'GET /builds/:id/artifacts',
    least: 'viewer',
    success: 200,
    prepare: async (f) => ({ url: `/builds/${await f.build()}/artifacts` }),
  },
  {
    route: 'GET /builds/:id/artifacts/:name',
    least: 'viewer',
    success: 200,
    prepare: async (f) => {
      const { build, name } = await f.artifact();
      return { url: `/builds/${build}/artifacts/${encodeURIComponent(name)}` };
    },
  },
  { route: 'GET /events', least: 'viewer', success: 200, prepare: async () => ({ url: '/events' }) },
  { route: 'GET /builds/:id/jobs', least: 'viewer', success: 200, prepare: async (f) => ({ url: `/builds/${await f.build()}/jobs` }) },
  { route: 'GET /jobs/:id', least: 'viewer', success: 200, prepare: async (f) => ({ url: `/jobs/${await f.job()}` }) },
  { route: 'GET /jobs/:id/logs', least: 'viewer', success: 200, prepare: async (f) => ({ url: `/jobs/${await f.job()}/logs` }) },
  { route: 'GET /jobs/:id/artifacts', least: 'viewer', success: 200, prepare: async (f) => ({ url: `/jobs/${(await f.jobArtifact()).job}/artifacts` }) },
  {
    route: 'GET /jobs/:id/artifacts/:name',
    least: 'viewer',
    success: 200,
    prepare: async (f) => {
      const { job, name } = await f.jobArtifact();
      return { url: `/jobs/${job}/artifacts/${encodeURIComponent(name)}` };
    },
  },
  { route: 'GET /projects/:id/pipeline', least: 'viewer', success: 200, prepare: async (f) => ({ url: `/projects/${await f.project()}/pipeline` }) },
  { route: 'POST /pipelines/lint', least: 'viewer', success: 200, prepare: async () => ({ url: '/pipelines/lint', payload: PIPELINE }) },
  // Maintainers manage webhooks (their URLs may hold a receiver's token).
  { route: 'POST /projects/:id/hooks', least: 'maintainer', success: 201, prepare: async (f) => ({ url: `/projects/${await f.project()}/hooks`, payload: HOOK }) },
  { route: 'GET /projects/:id/hooks', least: 'maintainer', success: 200, prepare: async (f) => ({ url: `/projects/${await f.project()}/hooks` }) },
  { route: 'GET /projects/:id/hooks/:hook_id', least: 'maintainer', success: 200, prepare: async (f) => ({ url: await f.hook() }) },
  { route: 'PATCH /projects/:id/hooks/:hook_id', least: 'maintainer', success: 200, prepare: async (f) => ({ url: await f.hook(), payload: { description: 'x' } }) },
  { route: 'DELETE /projects/:id/hooks/:hook_id', least: 'maintainer', success: 204, prepare: async (f) => ({ url: await f.hook() }) },
  { route: 'POST /projects/:id/hooks/:hook_id/ping', least: 'maintainer', success: 202, prepare: async (f) => ({ url: `${await f.hook()}/ping` }) },
  { route: 'POST /projects/:id/hooks/:hook_id/rotate-secret', least: 'maintainer', success: 200, prepare: async (f) => ({ url: `${await f.hook()}/rotate-secret` }) },
  { route: 'GET /projects/:id/hooks/:hook_id/deliveries', least: 'maintainer', success: 200, prepare: async (f) => ({ url: `${await f.hook()}/deliveries` }) },
  { route: 'GET /projects/:id/hooks/:hook_id/deliveries/:delivery_id', least: 'maintainer', success: 200, prepare: async (f) => ({ url: await f.delivery() }) },
  {
    route: 'POST /projects/:id/hooks/:hook_id/deliveries/:delivery_id/redeliver',
    least: 'maintainer',
    success: 202,
    prepare: async (f) => ({ url: `${await f.delivery()}/redeliver` }),
  },
  // Maintainers create and update projects and trigger builds.
  { route: 'POST /projects', least: 'maintainer', success: 201, prepare: async () => ({ url: '/projects', payload: newProjectBody() }) },
  {
    route: 'PATCH /projects/:id',
    least: 'maintainer',
    success: 200,
    prepare: async (f) => ({ url: `/projects/${await f.project()}`, payload: { default_branch: 'develop' } }),
  },
  {
    route: 'PUT /projects/:id/pipeline',
    least: 'maintainer',
    success: 200,
    prepare: async (f) => ({ url: `/projects/${await f.project()}/pipeline`, payload: PIPELINE }),
  },
  { route: 'DELETE /projects/:id/pipeline', least: 'maintainer', success: 204, prepare: async (f) => ({ url: `/projects/${await f.project()}/pipeline` }) },
  { route: 'POST /projects/:id/build', least: 'maintainer', success: 201, prepare: async (f) => ({ url: `/projects/${await f.project()}/build` }) },
  {
    route: 'POST /projects/:id/builds',
    least: 'maintainer',
    success: 201,
    prepare: async (f) => ({ url: `/projects/${await f.project()}/builds`, payload: { branch: 'main' } }),
  },
  // Maintainers also cancel and retry builds.
  { route: 'POST /builds/:id/cancel', least: 'maintainer', success: 200, prepare: async (f) => ({ url: `/builds/${await f.queuedBuild()}/cancel` }) },
  { route: 'POST /builds/:id/retry', least: 'maintainer', success: 201, prepare: async (f) => ({ url: `/builds/${await f.build()}/retry` }) },
  // And retry, cancel and play the jobs of a build.
  { route: 'POST /jobs/:id/retry', least: 'maintainer', success: 201, prepare: async (f) => ({ url: `/jobs/${await f.job()}/retry` }) },
  { route: 'POST /jobs/:id/cancel', least: 'maintainer', success: 200, prepare: async (f) => ({ url: `/jobs/${await f.queuedJob()}/cancel` }) },
  { route: 'POST /jobs/:id/play', least: 'maintainer', success: 200, prepare: async (f) => ({ url: `/jobs/${await f.manualJob()}/play` }) },
  // Admins delete projects and manage users.
  { route: 'DELETE /projects/:id', least: 'admin', success: 204, prepare: async (f) => ({ url: `/projects/${await f.project()}` }) },
  { route: 'GET /users', least: 'admin', success: 200, prepare: async () => ({ url: '/users' }) },
  {
    route: 'POST /users',
    least: 'admin',
    success: 201,
    prepare: async () => ({ url: '/users', payload: { username: uniqueName('made'), password: PASSWORD, role: 'admin' } }),
  },
  { route: 'GET /users/:id', least: 'admin', success: 200, prepare: async (f) => ({ url: `/users/${await f.user()}` }) },
  { route: 'PATCH /users/:id', least: 'admin', success: 200, prepare: async (f) => ({ url: `/users/${await f.user()}`, payload: { role: 'admin' } }) },
  { route: 'DELETE /users/:id', least: 'admin', success: 204, prepare: async (f) => ({ url: `/users/${await f.user()}` }) },
];

const methodOf = (c: RouteCase) => c.route.split(' ')[0] as HTTPMethods;
const pathOf = (c: RouteCase) => c.route.split(' ')[1] ?? '';
const allows = (least: Least, role: Role) => least === 'anyone' || ROLE_ORDER.indexOf(role) >= ROLE_ORDER.indexOf(least);
const isPublic = (c: RouteCase) => c.least === 'anyone';

function expectProblem(response: LightMyRequestResponse, status: number, error: string, label: string) {
  expect(response.statusCode, `${label}: ${response.body}`).toBe(status);
  expect(response.headers['content-type'], label).toMatch(/^application\/problem\+json/);
  expect(problemOf(response), label).toMatchObject({ status, error, type: `urn:usine:problem:${error}` });
}

describe(`function-level authorization, every route (${testDb})`, () => {
  // Every build succeeds, so that a finished build always has an artifact to download (and its jobs, the job routes'
  // subjects, have their own).
  const ctx = useTestApp({ BUILD_FAIL_RATE: '0', WEBHOOK_CONCURRENCY: '0', WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' });
  /** While true, the workers claim nothing: builds triggered meanwhile stay queued. Released after each test. */
  let holdQueue = false;
  const held: number[] = [];
  const tokens = {} as Record<Role, string>;
  const credentials = {} as Record<Role, { username: string; password: string }>;

  const admin = (method: HTTPMethods, url: string, payload?: object) => injectAs(ctx.app, ctx.adminToken, { method, url, payload });
  const created = async (response: LightMyRequestResponse) => {
    expect(response.statusCode, response.body).toBe(201);
    return response.json<{ id: number }>().id;
  };
  /** The build's jobs with their statuses, in pipeline order. */
  const jobsOf = async (build: number) => {
    const response = await admin('GET', `/builds/${build}/jobs`);
    expect(response.statusCode, response.body).toBe(200);
    return response.json<{ items: { id: number; name: string; status: string }[] }>().items;
  };
  const fixtures: Fixtures = {
    project: async () => created(await admin('POST', '/projects', newProjectBody())),
    hook: async () => {
      const project = await fixtures.project();
      return `/projects/${project}/hooks/${await created(await admin('POST', `/projects/${project}/hooks`, HOOK))}`;
    },
    delivery: async () => {
      const hook = await fixtures.hook();
      const ping = await admin('POST', `${hook}/ping`);
      expect(ping.statusCode, ping.body).toBe(202);
      return `${hook}/deliveries/${ping.json<{ id: number }>().id}`;
    },
    build: async () => {
      const id = await created(await admin('POST', `/projects/${await fixtures.project()}/builds`));
      const build = await waitForBuild(ctx.app, ctx.adminToken, id);
      expect(build.status).toBe('success');
      return id;
    },
    queuedBuild: async () => {
      holdQueue = true;
      const id = await created(await admin('POST', `/projects/${await fixtures.project()}/builds`));
      held.push(id);
      return id;
    },
    artifact: async () => {
      const build = await fixtures.build();
      const response = await admin('GET', `/builds/${build}/artifacts`);
      expect(response.statusCode, response.body).toBe(200);
      const name = response.json<{ items: { name: string }[] }>().items[0]?.name;
      expect(name, `build ${build} has an artifact`).toBeTypeOf('string');
      return { build, name: name ?? '' };
    },
    user: async () => created(await admin('POST', '/users', { username: uniqueName('target'), password: PASSWORD })),
    refreshToken: async () => {
      const response = await ctx.app.inject({ method: 'POST', url: '/login', payload: credentials.viewer });
      const token = response.json<{ refresh_token?: string }>().refresh_token;
      expect(token, 'POST /login returns a refresh_token').toBeTypeOf('string');
      return token ?? '';
    },
    job: async () => {
      const [first] = await jobsOf(await fixtures.build());
      expect(first?.status, 'the first job of a successful build').toBe('success');
      return first?.id ?? 0;
    },
    jobArtifact: async () => {
      const packaging = (await jobsOf(await fixtures.build())).find((job) => job.name === 'package');
      expect(packaging?.status, 'the package job of a successful build').toBe('success');
      const response = await admin('GET', `/jobs/${packaging?.id ?? 0}/artifacts`);
      expect(response.statusCode, response.body).toBe(200);
      const name = response.json<{ items: { name: string }[] }>().items[0]?.name;
      expect(name, `job ${packaging?.id} has an artifact`).toBeTypeOf('string');
      return { job: packaging?.id ?? 0, name: name ?? '' };
    },
    queuedJob: async () => {
      const [first] = await jobsOf(await fixtures.queuedBuild());
      expect(first?.status, 'the first job of a held build').toBe('queued');
      return first?.id ?? 0;
    },
    manualJob: async () => {
      const project = await fixtures.project();
      const put = await admin('PUT', `/projects/${project}/pipeline`, MANUAL_PIPELINE);
      expect(put.statusCode, put.body).toBe(200);
      const build = await created(await admin('POST', `/projects/${project}/builds`));
      expect((await waitForBuild(ctx.app, ctx.adminToken, build)).status).toBe('success');
      const deploy = (await jobsOf(build)).find((job) => job.name === 'deploy');
      expect(deploy?.status, 'the manual job, its needs over').toBe('manual');
      return deploy?.id ?? 0;
    },
  };

  /**
   * Waits until no build is running and none is queued but the held ones: builds triggered by earlier calls run in
   * the background, and a snapshot taken meanwhile would see them move.
   */
  async function settleBuilds() {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const { queued, running } = (await ctx.app.buildsRepository.countActive()).queue;
      // The event log's rows get their ids after commit (PostgreSQL's sequencer): settled once every row has one.
      const { events } = ctx.app.database.tables;
      const unsequenced = await ctx.app.database.db.select({ seq: events.seq }).from(events).where(isNull(events.id)).limit(1);
      if (running === 0 && queued === (holdQueue ? held.length : 0) && unsequenced.length === 0) return;
      if (Date.now() > deadline) throw new Error(`builds still active: ${queued} queued, ${running} running`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Every row of every table, to prove a refused call wrote nothing. */
  async function snapshot() {
    const { db, tables } = ctx.app.database;
    const result: Record<string, unknown[]> = {};
    for (const [name, table] of Object.entries(tables)) {
      if (!is(table, Table)) continue;
      const rows = (await db.select().from(table as never)) as { id?: number }[];
      result[name] = rows.sort((a, b) => (a.id ?? 0) - (b.id ?? 0));
    }
    return result;
  }

  const present = (c: RouteCase) => ctx.app.hasRoute({ method: methodOf(c), url: pathOf(c) });

  async function call(c: RouteCase, token: string | undefined) {
    const { url, payload } = await c.prepare(fixtures);
    const options = { method: methodOf(c), url, ...(payload === undefined ? {} : { payload }) };
    return token === undefined ? ctx.app.inject(options) : injectAs(ctx.app, token, options);
  }

  /** Prepares the call, snapshots the database, calls as `token`, and checks the answer and that nothing changed. */
  async function expectRefused(c: RouteCase, token: string | undefined, status: number, error: string, label: string) {
    const { url, payload } = await c.prepare(fixtures);
    await settleBuilds();
    const before = await snapshot();
    const options = { method: methodOf(c), url, ...(payload === undefined ? {} : { payload }) };
    const response = token === undefined ? await ctx.app.inject(options) : await injectAs(ctx.app, token, options);
    expectProblem(response, status, error, label);
    expect(await snapshot(), `${label} changed the database`).toEqual(before);
  }

  beforeAll(async () => {
    // The job engine's workers claim jobs, not builds.
    const claimNext = ctx.app.jobsRepository.claimNext;
    vi.spyOn(ctx.app.jobsRepository, 'claimNext').mockImplementation((owner, leaseMs) =>
      holdQueue ? Promise.resolve(undefined) : claimNext(owner, leaseMs),
    );
    tokens.admin = ctx.adminToken;
    credentials.admin = { username: ctx.config.ADMIN_USERNAME, password: ctx.config.ADMIN_PASSWORD };
    for (const role of ['maintainer', 'viewer'] as const) {
      const username = uniqueName(role);
      await created(await admin('POST', '/users', { username, password: PASSWORD, role }));
      credentials[role] = { username, password: PASSWORD };
      tokens[role] = await login(ctx.app, username, PASSWORD);
    }
  });

  afterEach(async () => {
    // Held builds a test left queued are canceled (terminal: they never run), then the workers claim again.
    for (const id of held.splice(0)) {
      const response = await admin('POST', `/builds/${id}/cancel`);
      expect([200, 409], response.body).toContain(response.statusCode);
    }
    holdQueue = false;
  });

  it('keeps a held build queued until the test ends, so that cancel has something to cancel', async () => {
    const id = await fixtures.queuedBuild();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await admin('GET', `/builds/${id}`)).json<{ status: string }>().status).toBe('queued');
  });

  it('the table covers exactly the routes the app serves (HEAD and /apidocs aside)', async () => {
    const response = await ctx.app.inject({ url: '/apidocs/json' });
    expect(response.statusCode).toBe(200);
    const document = response.json<OpenAPIV3.Document>();
    const served = Object.entries(document.paths).flatMap(([path, item]) =>
      Object.keys(item ?? {})
        .filter((key) => ['get', 'post', 'put', 'patch', 'delete'].includes(key))
        .map((method) => `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
    );
    const tabled = ROUTES.filter((c) => !c.optional || present(c)).map((c) => c.route);
    for (const c of ROUTES.filter((c) => !c.optional)) expect(present(c), `${c.route} is served`).toBe(true);
    expect(new Set(tabled).size).toBe(tabled.length);
    expect(served.filter((route) => !tabled.includes(route)), 'served but not in ROUTES: add them with their least role').toEqual([]);
    expect([...served].sort()).toEqual([...tabled].sort());
  });

  describe('a viewer', () => {
    it.for(ROUTES.filter((c) => !allows(c.least, 'viewer')).map((c) => [c.route, c] as const))(
      'gets 403 forbidden on %s, and nothing changes',
      async ([, c], { skip }) => {
        if (!present(c)) return skip();
        await expectRefused(c, tokens.viewer, 403, 'forbidden', `viewer ${c.route}`);
      },
    );

    it.for(ROUTES.filter((c) => c.least === 'viewer' && methodOf(c) === 'GET').map((c) => [c.route, c] as const))(
      'reads %s',
      async ([, c], { skip }) => {
        if (!present(c)) return skip();
        const response = await call(c, tokens.viewer);
        expect(response.statusCode, response.body).toBe(200);
      },
    );

    it('gets 403 before any validation or lookup: a bad body or an unknown id says nothing more', async () => {
      const cases: [HTTPMethods, string, object | undefined][] = [
        ['POST', '/users', { username: '', password: 1 }],
        ['POST', '/projects', { nonsense: true }],
        ['DELETE', '/projects/2147483000', undefined],
        ['PATCH', '/projects/2147483000', {}],
        ['PATCH', '/users/2147483000', { role: 'superuser' }],
      ];
      for (const [method, url, payload] of cases) {
        const response = await injectAs(ctx.app, tokens.viewer, { method, url, ...(payload ? { payload } : {}) });
        expectProblem(response, 403, 'forbidden', `viewer ${method} ${url}`);
      }
    });
  });

  describe('a maintainer', () => {
    it.for(ROUTES.filter((c) => c.least === 'admin').map((c) => [c.route, c] as const))(
      'gets 403 forbidden on the admin-only %s, and nothing changes',
      async ([, c], { skip }) => {
        if (!present(c)) return skip();
        await expectRefused(c, tokens.maintainer, 403, 'forbidden', `maintainer ${c.route}`);
      },
    );
  });

  describe('each role at or above the least one', () => {
    const cases = ROUTES.filter((c) => !isPublic(c)).flatMap((c) => ROLE_ORDER.filter((role) => allows(c.least, role)).map((role) => [role, c.route, c] as const));
    it.for(cases)('%s may call %s', async ([role, , c], { skip }) => {
      if (!present(c)) return skip();
      const token = c.endsSession ? await login(ctx.app, credentials[role].username, credentials[role].password) : tokens[role];
      const response = await call(c, token);
      expect(response.statusCode, response.body).toBe(c.success);
    });
  });

  describe('anonymous', () => {
    it.for(ROUTES.filter((c) => !isPublic(c)).map((c) => [c.route, c] as const))('gets 401 unauthorized on %s, and nothing changes', async ([, c], { skip }) => {
      if (!present(c)) return skip();
      await expectRefused(c, undefined, 401, 'unauthorized', `anonymous ${c.route}`);
    });

    it.for(ROUTES.filter(isPublic).map((c) => [c.route, c] as const))('may call the public %s', async ([, c], { skip }) => {
      if (!present(c)) return skip();
      const response = await call(c, undefined);
      expect(response.statusCode, response.body).toBe(c.success);
    });
  });

  it('the 403s name the role needed, and the roles table is what the OpenAPI document says: bearerAuth on all but the public routes', async () => {
    const response = await injectAs(ctx.app, tokens.viewer, { method: 'DELETE', url: '/projects/1' });
    expect(problemOf(response).detail).toMatch(/admin/);
    const document = (await ctx.app.inject({ url: '/apidocs/json' })).json<OpenAPIV3.Document>();
    for (const c of ROUTES.filter(present)) {
      const path = pathOf(c).replace(/:(\w+)/g, '{$1}');
      const operation = document.paths[path]?.[methodOf(c).toLowerCase() as OpenAPIV3.HttpMethods];
      expect(operation, c.route).toBeDefined();
      expect(operation?.security ?? [], c.route).toEqual(isPublic(c) ? [] : [{ bearerAuth: [] }]);
      if (c.least !== 'anyone' && c.least !== 'viewer') expect(Object.keys(operation?.responses ?? {}), c.route).toContain('403');
    }
  });
});
