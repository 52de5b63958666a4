import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import BetterSqlite3 from 'better-sqlite3';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { STEPS } from '../../src/builds/simulator.js';
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
  waitForBuild,
  type ScratchDatabase,
  type BuildJson,
} from '../helper.js';
import { planDefaultBuild } from './default-run.js';


interface ProjectJson {
  id: number;
  name: string;
  repo: string;
  default_branch: string;
}

interface StatusJson {
  queue: { queued: number; running: number } | null;
  jobs: { queued: number; running: number } | null;
  workers: { busy: number; total: number };
}

const SHA = '9b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c';
const OTHER_SHA = '0123456789abcdef0123456789abcdef01234567';
const REPO = 'https://github.com/demo/engine';
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$/;

// ---------------------------------------------------------------------------------------------------------------
// Helpers

async function createProject(app: FastifyInstance, token: string, name = uniqueName('Engine')): Promise<ProjectJson> {
  const response = await injectAs(app, token, { method: 'POST', url: '/projects', payload: { name, repo: REPO } });
  expect(response.statusCode, response.body).toBe(201);
  return response.json<ProjectJson>();
}

interface TriggerOptions {
  payload?: Record<string, string>;
  key?: string;
  /** The seed's path, `/projects/:id/build`. */
  seedPath?: boolean;
}

function trigger(app: FastifyInstance, token: string, projectId: number, options: TriggerOptions = {}): Promise<LightMyRequestResponse> {
  return injectAs(app, token, {
    method: 'POST',
    url: `/projects/${projectId}/${options.seedPath ? 'build' : 'builds'}`,
    ...(options.payload ? { payload: options.payload } : {}),
    ...(options.key ? { headers: { 'idempotency-key': options.key } } : {}),
  });
}

async function triggerOk(app: FastifyInstance, token: string, projectId: number, options: TriggerOptions = {}): Promise<BuildJson> {
  const response = await trigger(app, token, projectId, options);
  expect(response.statusCode, response.body).toBe(201);
  const build = response.json<BuildJson>();
  expect(response.headers.location).toBe(`/builds/${build.id}`);
  return build;
}

async function getBuild(app: FastifyInstance, token: string, id: number): Promise<BuildJson> {
  const response = await injectAs(app, token, { method: 'GET', url: `/builds/${id}` });
  expect(response.statusCode, response.body).toBe(200);
  return response.json<BuildJson>();
}

const cancel = (app: FastifyInstance, token: string, id: number) => injectAs(app, token, { method: 'POST', url: `/builds/${id}/cancel` });
const retry = (app: FastifyInstance, token: string, id: number) => injectAs(app, token, { method: 'POST', url: `/builds/${id}/retry` });

async function statusOf(app: FastifyInstance): Promise<StatusJson> {
  const response = await app.inject({ method: 'GET', url: '/status' });
  expect(response.statusCode, response.body).toBe(200);
  return response.json<StatusJson>();
}

async function projectBuilds(app: FastifyInstance, token: string, projectId: number): Promise<{ items: BuildJson[]; total: number }> {
  const response = await injectAs(app, token, { method: 'GET', url: `/projects/${projectId}/builds?per_page=100` });
  expect(response.statusCode, response.body).toBe(200);
  return response.json<{ items: BuildJson[]; total: number }>();
}

/** Creates a user with the role and returns a token for it. */
async function userToken(app: FastifyInstance, adminToken: string, role: 'viewer' | 'maintainer'): Promise<{ username: string; token: string }> {
  const username = uniqueName(role);
  const password = `Pw-${uniqueName('secret')}-x9`;
  const response = await injectAs(app, adminToken, { method: 'POST', url: '/users', payload: { username, password, role } });
  expect(response.statusCode, response.body).toBe(201);
  return { username, token: await login(app, username, password) };
}

const waitTerminal = (app: FastifyInstance, token: string, id: number, timeoutMs = 15_000) =>
  waitForBuild<BuildJson>(app, token, id, { timeoutMs });

const waitRunning = (app: FastifyInstance, token: string, id: number, timeoutMs = 5000) =>
  waitForBuild<BuildJson>(app, token, id, { timeoutMs, until: (build) => build.status !== 'queued' });

/** Polls `check` until it returns true; fails with `what` after the timeout. */
async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(20);
  }
}

const count = (text: string, needle: string) => text.split(needle).length - 1;

/** Asserts the status and code of a problem response. */
function expectProblem(response: LightMyRequestResponse, status: number, error: string) {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const problem = problemOf(response);
  expect(problem.status).toBe(status);
  expect(problem.error).toBe(error);
  return problem;
}

/**
 * A database several apps (and a direct SQL connection) share: a temporary SQLite file, or a scratch PostgreSQL
 * database. `expireLease` plays a dead worker: the build's running job (or, if none runs, its first queued one) is
 * made `running` under `owner` with a lease that ran out a minute ago, optionally with a number of claims already
 * made; it returns how many jobs it changed. `claims` reads that job's claims.
 */
interface SharedDatabase {
  url: string;
  expireLease(buildId: number, owner: string, claims?: number): Promise<number>;
  claims(buildId: number): Promise<number>;
  drop(): Promise<void>;
}

/** The job `expireLease` takes: the build's running job, else its first queued one (current attempts only). */
const TARGET_JOB = `(select id from jobs where build_id = $1 and retried = $2 and status in ('running', 'queued')
  order by case status when 'running' then 0 else 1 end, position limit 1)`;

async function createSharedDatabase(): Promise<SharedDatabase> {
  if (testDb === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'usine-engine-'));
    const path = join(dir, 'usine.db');
    const withDb = <T>(use: (db: BetterSqlite3.Database) => T): T => {
      const db = new BetterSqlite3(path);
      db.pragma('busy_timeout = 5000');
      try {
        return use(db);
      } finally {
        db.close();
      }
    };
    const target = TARGET_JOB.replace('$1', '@build').replace('$2', '0');
    return {
      url: `sqlite:${path}`,
      expireLease: async (buildId, owner, claims) =>
        withDb((db) =>
          db.transaction(() => {
            const changed = db
              .prepare(
                `update jobs set status = 'running', lease_owner = @owner, lease_expires_at = @expired,
                   claims = coalesce(@claims, claims), started_at = coalesce(started_at, @now) where id = ${target}`,
              )
              .run({ build: buildId, owner, expired: Date.now() - 60_000, claims: claims ?? null, now: Date.now() }).changes;
            db.prepare(`update builds set status = 'running', started_at = coalesce(started_at, ?) where id = ?`).run(Date.now(), buildId);
            return changed;
          })(),
        ),
      claims: async (buildId) =>
        withDb((db) => (db.prepare(`select claims from jobs where id = ${target.replace("status in ('running', 'queued')", '1 = 1')}`).get({ build: buildId }) as { claims: number }).claims),
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const scratch: ScratchDatabase = await createScratchDatabase('pg');
  const sql = postgres(scratch.url, { max: 1, onnotice: () => {} });
  return {
    url: scratch.url,
    expireLease: async (buildId, owner, claims) =>
      sql.begin(async (tx) => {
        const result = await tx.unsafe(
          `update jobs set status = 'running', lease_owner = $3, lease_expires_at = now() - interval '1 minute',
             claims = coalesce($4::integer, claims), started_at = coalesce(started_at, now()) where id = ${TARGET_JOB}`,
          [buildId, false, owner, claims ?? null],
        );
        await tx`update builds set status = 'running', started_at = coalesce(started_at, now()) where id = ${buildId}`;
        return result.count;
      }),
    claims: async (buildId) => {
      const rows = await sql.unsafe<{ claims: number }[]>(`select claims from jobs where id = ${TARGET_JOB.replace("status in ('running', 'queued')", '1 = 1')}`, [
        buildId,
        false,
      ]);
      return Number(rows[0]!.claims);
    },
    drop: async () => {
      await sql.end();
      await scratch.drop();
    },
  };
}

/** Apps started by a test on a shared database; closed after each test (in reverse order). */
function useExtraApps() {
  const apps: FastifyInstance[] = [];
  afterEach(async () => {
    for (const app of apps.reverse()) await app.close().catch(() => undefined);
    apps.length = 0;
  });
  return async (url: string, env: Record<string, string>) => {
    const config = testConfig(url, env);
    const app = await createServer(config, { logger: false });
    apps.push(app);
    await app.ready();
    return { app, token: await login(app, config.ADMIN_USERNAME, config.ADMIN_PASSWORD) };
  };
}

// ---------------------------------------------------------------------------------------------------------------

describe('a build runs: queued → running → success (BUILD_TIME_SCALE 0.2)', () => {
  const ctx = useTestApp({ BUILD_TIME_SCALE: '0.2', BUILD_FAIL_RATE: '0', BUILD_CONCURRENCY: '2' });

  it('is answered queued at once, is seen running, then succeeds with every step logged', async () => {
    const { app, adminToken: token } = ctx;
    const project = await createProject(app, token);
    const queued = await triggerOk(app, token, project.id, { payload: { branch: 'feature/engine', commit_sha: SHA } });
    expect(queued).toMatchObject({
      project_id: project.id,
      number: 1,
      status: 'queued',
      branch: 'feature/engine',
      commit_sha: SHA,
      triggered_by: 'admin',
      retry_of: null,
      duration_s: null,
      started_at: null,
      finished_at: null,
    });
    expect(queued.created_at).toMatch(ISO_UTC);

    const running = await waitRunning(app, token, queued.id);
    expect(running.status).toBe('running');
    expect(running.started_at).toMatch(ISO_UTC);
    expect(running.finished_at).toBeNull();
    expect(running.duration_s).toBeNull();
    expect(Date.parse(running.started_at!)).toBeGreaterThanOrEqual(Date.parse(queued.created_at));

    const done = await waitTerminal(app, token, queued.id);
    expect(done.status).toBe('success');
    expect(done.started_at).toBe(running.started_at);
    expect(done.duration_s).toBeGreaterThanOrEqual(2);
    expect(done.duration_s).toBeLessThanOrEqual(10);
    expect(done.finished_at).toMatch(ISO_UTC);
    const wallMs = Date.parse(done.finished_at!) - Date.parse(done.started_at!);
    expect(wallMs).toBeGreaterThanOrEqual(0);
    // The run took its simulated duration scaled by 0.2 (and not much more).
    expect(wallMs).toBeGreaterThanOrEqual(done.duration_s! * 200 - 100);
    expect(wallMs).toBeLessThan(done.duration_s! * 200 + 1500);

    const log = done.logs;
    expect(log).toContain(`$ git clone --branch feature/engine ${REPO} ${project.name}`);
    expect(log).toContain(`$ git checkout ${SHA}`);
    expect(log).toContain(`HEAD is now at ${SHA.slice(0, 7)} on feature/engine`);
    expect(log).toContain('$ npm ci');
    expect(log).toMatch(/added \d+ packages in/);
    const tests = /Tests: (\d+) passed, (\d+) failed, (\d+) total/.exec(log);
    expect(tests).not.toBeNull();
    const [, passed, failed, total] = tests!.map(Number);
    expect(failed).toBe(0);
    expect(passed).toBe(total);
    expect(total).toBeGreaterThan(0);
    expect(log).toContain('==> Step package');
    expect(log).toMatch(/Artifact \S+\.tar\.gz: \d+ bytes, sha256 [0-9a-f]{64}/);
    const steps = ['checkout', 'install', 'test', 'package'].map((step) => log.indexOf(`==> Step ${step}`));
    expect(steps.every((index) => index >= 0)).toBe(true);
    expect([...steps].sort((a, b) => a - b)).toEqual(steps);
    expect(log).toMatch(/\[00:00\.000\] ==> Step checkout/);
    expect(log.trimEnd().split('\n').at(-1)).toBe(`Build finished: success in ${done.duration_s} s`);
    expect(count(log, 'Build finished')).toBe(1);
    expect(log).not.toContain('✗');
  });

  it('the seed path with no body builds the default branch of a generated commit', async () => {
    const { app, adminToken: token } = ctx;
    const project = await createProject(app, token);
    const queued = await triggerOk(app, token, project.id, { seedPath: true });
    expect(queued.status).toBe('queued');
    expect(queued.branch).toBe(project.default_branch);
    expect(queued.commit_sha).toMatch(/^[0-9a-f]{40}$/);
    const done = await waitTerminal(app, token, queued.id);
    expect(done.status).toBe('success');
    expect(done.logs).toContain(`--branch ${project.default_branch} `);
    expect(done.logs).toContain(`$ git checkout ${queued.commit_sha}`);
  });
});

describe('a failing build (BUILD_FAIL_RATE 1, instant, seeded)', () => {
  const SEED = 'engine-failing';
  const ctx = useTestApp({ BUILD_FAIL_RATE: '1', BUILD_CONCURRENCY: '4', BUILD_SEED: SEED });

  it('fails, naming the failed step and why, and runs nothing after it', async () => {
    const { app, adminToken: token } = ctx;
    const project = await createProject(app, token);
    const queued = [];
    for (let index = 0; index < 12; index++) queued.push(await triggerOk(app, token, project.id));
    const failedSteps = new Set<string>();
    for (const build of queued) {
      const done = await waitTerminal(app, token, build.id);
      expect(done.status).toBe('fail');
      expect(done.duration_s).toBeGreaterThan(0);
      expect(done.duration_s).toBeLessThanOrEqual(10);
      expect(done.finished_at).toMatch(ISO_UTC);
      const failure = /✗ Step (checkout|install|test|package) failed: (.+)/.exec(done.logs);
      expect(failure, done.logs).not.toBeNull();
      const [, step, why] = failure!;
      failedSteps.add(step!);
      expect(why!.length).toBeGreaterThan(5);
      const order = ['checkout', 'install', 'test', 'package'];
      for (const later of order.slice(order.indexOf(step!) + 1)) expect(done.logs).not.toContain(`==> Step ${later}`);
      if (step === 'test') expect(why).toMatch(/^[1-9]\d* of \d+ tests failed$/);
      expect(done.logs.trimEnd().split('\n').at(-1)).toBe(`Build finished: fail in ${done.duration_s} s`);
      expect(done.logs).not.toContain('Build finished: success');
      expect(done.logs).not.toMatch(/^Artifact /m);
      expect(count(done.logs, 'Build finished')).toBe(1);
    }
    expect(failedSteps.size).toBeGreaterThanOrEqual(1);
  });

  it('lasts the simulated steps up to and including the failing one: duration_s, the last step line and "Build finished" agree', async () => {
    const { app, adminToken: token } = ctx;
    const project = await createProject(app, token);
    const builds = [];
    for (let index = 0; index < 8; index++) builds.push(await triggerOk(app, token, project.id));
    let endedEarly = 0;
    for (const build of builds) {
      const done = await waitTerminal(app, token, build.id);
      // BUILD_SEED: the run's plan is known in advance, so what it lasted is too.
      const plan = planDefaultBuild({ project, build }, 1, SEED);
      expect(done.status).toBe(plan.outcome);
      const failing = STEPS.findIndex((step) => step.name === plan.failed_step);
      expect(failing).toBeGreaterThanOrEqual(0);
      // The jobs run one after the other: the build lasts theirs added up, up to and including the failing one.
      expect(done.duration_s).toBe(plan.duration_s);
      expect(done.logs).toContain(`✗ Step ${plan.failed_step} failed: `);
      // The failing job's last step line is its last timed line, stamped with its duration…
      const failedJob = plan.jobs.at(-1)!;
      const stamps = [...done.logs.matchAll(new RegExp(`^\\[${plan.failed_step}\\] \\[(\\d{2}):(\\d{2})\\.(\\d{3})\\] `, 'gm'))].map(
        ([, m, sec, ms]) => Number(m) * 60_000 + Number(sec) * 1000 + Number(ms),
      );
      expect(Math.max(...stamps)).toBe(Math.round(failedJob.plan.duration_s * 1000));
      expect(done.logs).toMatch(
        new RegExp(`^\\[${plan.failed_step}\\] \\[[\\d:.]+\\] ✗ Step ${plan.failed_step} failed: .*\\n\\[${plan.failed_step}\\] ERROR: Job failed in ${failedJob.plan.duration_s} s\\n`, 'm'),
      );
      // …and the "Build finished" line says the build's.
      expect(done.logs.trimEnd().split('\n').at(-1)).toBe(`Build finished: fail in ${done.duration_s} s`);
      if (plan.failed_step !== 'package') {
        expect(done.duration_s).toBeLessThan(plan.planned_s);
        endedEarly++;
      }
    }
    // The seed draws failures before the last step: the run's end is not the plan's.
    expect(endedEarly).toBeGreaterThan(0);
  });
});

describe('instant builds: refusals, retry, numbering, idempotency', () => {
  const ctx = useTestApp({ BUILD_CONCURRENCY: '4', BUILD_SEED: 'engine-refusals', BUILD_FAIL_RATE: '0.5' });

  it('409 when canceling a finished (success or fail) build, which stays as it was', async () => {
    const { app, adminToken: token } = ctx;
    const project = await createProject(app, token);
    const builds = [];
    for (let index = 0; index < 10; index++) builds.push(await triggerOk(app, token, project.id));
    const done = await Promise.all(builds.map((build) => waitTerminal(app, token, build.id)));
    const success = done.find((build) => build.status === 'success');
    const fail = done.find((build) => build.status === 'fail');
    expect(success).toBeDefined();
    expect(fail).toBeDefined();
    for (const finished of [success!, fail!]) {
      const problem = expectProblem(await cancel(app, token, finished.id), 409, 'conflict');
      expect(problem.detail).toContain(finished.status);
      const after = await getBuild(app, token, finished.id);
      expect(after.status).toBe(finished.status);
      expect(after.logs).toBe(finished.logs);
      expect(after.finished_at).toBe(finished.finished_at);
    }
  });

  it('404 for unknown builds on cancel, retry and read', async () => {
    const { app, adminToken: token } = ctx;
    expectProblem(await cancel(app, token, 987_654), 404, 'not_found');
    expectProblem(await retry(app, token, 987_654), 404, 'not_found');
    expectProblem(await injectAs(app, token, { method: 'GET', url: '/builds/987654' }), 404, 'not_found');
  });

  it('401 without a token and 403 for a viewer on cancel and retry; nothing changes', async () => {
    const { app, adminToken: token } = ctx;
    const project = await createProject(app, token);
    const build = await waitTerminal(app, token, (await triggerOk(app, token, project.id)).id);
    const viewer = await userToken(app, token, 'viewer');
    for (const action of ['cancel', 'retry']) {
      const anonymous = await app.inject({ method: 'POST', url: `/builds/${build.id}/${action}` });
      expectProblem(anonymous, 401, 'unauthorized');
      const forbidden = await injectAs(app, viewer.token, { method: 'POST', url: `/builds/${build.id}/${action}` });
      expectProblem(forbidden, 403, 'forbidden');
    }
    // A viewer may not trigger either.
    expectProblem(await trigger(app, viewer.token, project.id), 403, 'forbidden');
    const list = await projectBuilds(app, token, project.id);
    expect(list.total).toBe(1);
    expect((await getBuild(app, token, build.id)).logs).toBe(build.logs);
  });

  it('retry queues a new build of the same branch and commit, by the caller, that runs to the end', async () => {
    const { app, adminToken: token } = ctx;
    const project = await createProject(app, token);
    const original = await waitTerminal(
      app,
      token,
      (await triggerOk(app, token, project.id, { payload: { branch: 'release/1.2', commit_sha: OTHER_SHA } })).id,
    );
    const maintainer = await userToken(app, token, 'maintainer');
    const response = await retry(app, maintainer.token, original.id);
    expect(response.statusCode, response.body).toBe(201);
    const again = response.json<BuildJson>();
    expect(response.headers.location).toBe(`/builds/${again.id}`);
    expect(again.id).not.toBe(original.id);
    expect(again).toMatchObject({
      project_id: project.id,
      number: original.number + 1,
      status: 'queued',
      branch: 'release/1.2',
      commit_sha: OTHER_SHA,
      retry_of: original.id,
      triggered_by: maintainer.username,
      started_at: null,
      finished_at: null,
    });
    const done = await waitTerminal(app, token, again.id);
    expect(['success', 'fail']).toContain(done.status);
    expect(done.retry_of).toBe(original.id);
    expect(done.logs).toContain(`$ git checkout ${OTHER_SHA}`);
    // The original is untouched, and a retry can itself be retried.
    expect((await getBuild(app, token, original.id)).logs).toBe(original.logs);
    const third = await retry(app, token, done.id);
    expect(third.statusCode, third.body).toBe(201);
    expect(third.json<BuildJson>()).toMatchObject({ number: original.number + 2, retry_of: done.id, triggered_by: 'admin' });
    await waitTerminal(app, token, third.json<BuildJson>().id);
  });

  it('50 concurrent triggers on one project are numbered exactly 1..50, and all finish', async () => {
    const { app, adminToken: token } = ctx;
    const project = await createProject(app, token);
    const responses = await Promise.all(Array.from({ length: 50 }, () => trigger(app, token, project.id)));
    for (const response of responses) expect(response.statusCode, response.body).toBe(201);
    const builds = responses.map((response) => response.json<BuildJson>());
    expect(new Set(builds.map((build) => build.id)).size).toBe(50);
    expect(builds.map((build) => build.number).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, index) => index + 1));
    // A worker runs one build at a time: this app's 4 workers (the only ones on this database) never hold more.
    let mostRunning = 0;
    let watch = true;
    const watching = (async () => {
      while (watch) {
        const { queue } = await statusOf(app);
        mostRunning = Math.max(mostRunning, queue!.running);
        await sleep(10);
      }
    })();
    const settled = await Promise.allSettled(builds.map((build) => waitTerminal(app, token, build.id, 20_000)));
    watch = false;
    await watching;
    expect(mostRunning, 'most builds running at once, with 4 workers').toBeLessThanOrEqual(4);
    const done = settled.map((result) => {
      if (result.status === 'rejected') throw result.reason;
      return result.value;
    });
    for (const build of done) {
      expect(['success', 'fail']).toContain(build.status);
      expect(count(build.logs, 'Build finished')).toBe(1);
    }
    const list = await projectBuilds(app, token, project.id);
    expect(list.total).toBe(50);
  });

  describe('Idempotency-Key', () => {
    it('the same key twice answers the first build, with the replay header', async () => {
      const { app, adminToken: token } = ctx;
      const project = await createProject(app, token);
      const key = uniqueName('key');
      const first = await trigger(app, token, project.id, { key, payload: { branch: 'main' } });
      expect(first.statusCode, first.body).toBe(201);
      expect(first.headers['idempotent-replayed']).toBeUndefined();
      const second = await trigger(app, token, project.id, { key, payload: { branch: 'main' } });
      expect(second.statusCode, second.body).toBe(201);
      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(second.json<BuildJson>().id).toBe(first.json<BuildJson>().id);
      expect(second.headers.location).toBe(first.headers.location);
      // No body at all (nothing explicit) replays too, on either path.
      const bare = await trigger(app, token, project.id, { key, seedPath: true });
      expect(bare.statusCode, bare.body).toBe(201);
      expect(bare.headers['idempotent-replayed']).toBe('true');
      expect(bare.json<BuildJson>().id).toBe(first.json<BuildJson>().id);
      expect((await projectBuilds(app, token, project.id)).total).toBe(1);
    });

    it('10 concurrent requests with one key make one build', async () => {
      const { app, adminToken: token } = ctx;
      const project = await createProject(app, token);
      const key = uniqueName('key');
      const responses = await Promise.all(Array.from({ length: 10 }, () => trigger(app, token, project.id, { key })));
      for (const response of responses) expect(response.statusCode, response.body).toBe(201);
      expect(new Set(responses.map((response) => response.json<BuildJson>().id)).size).toBe(1);
      expect(responses.filter((response) => response.headers['idempotent-replayed'] === 'true')).toHaveLength(9);
      const list = await projectBuilds(app, token, project.id);
      expect(list.total).toBe(1);
      expect(list.items[0]!.number).toBe(1);
    });

    it('another project with the same key, or another key, makes a new build', async () => {
      const { app, adminToken: token } = ctx;
      const [one, two] = [await createProject(app, token), await createProject(app, token)];
      const key = uniqueName('key');
      const a = await trigger(app, token, one.id, { key });
      const b = await trigger(app, token, two.id, { key });
      expect(a.statusCode).toBe(201);
      expect(b.statusCode).toBe(201);
      expect(b.headers['idempotent-replayed']).toBeUndefined();
      expect(b.json<BuildJson>().id).not.toBe(a.json<BuildJson>().id);
      expect(b.json<BuildJson>().project_id).toBe(two.id);
      const c = await trigger(app, token, one.id, { key: uniqueName('key') });
      expect(c.statusCode).toBe(201);
      expect(c.headers['idempotent-replayed']).toBeUndefined();
      expect(c.json<BuildJson>().number).toBe(2);
      expect((await projectBuilds(app, token, one.id)).total).toBe(2);
    });

    it('409 when the key is reused for a different explicit branch or commit', async () => {
      const { app, adminToken: token } = ctx;
      const project = await createProject(app, token);
      const key = uniqueName('key');
      const first = await trigger(app, token, project.id, { key, payload: { branch: 'main', commit_sha: SHA } });
      expect(first.statusCode).toBe(201);
      const branch = expectProblem(await trigger(app, token, project.id, { key, payload: { branch: 'develop' } }), 409, 'conflict');
      expect(branch.detail).toContain(key);
      expectProblem(await trigger(app, token, project.id, { key, payload: { commit_sha: OTHER_SHA } }), 409, 'conflict');
      expect((await projectBuilds(app, token, project.id)).total).toBe(1);
    });
  });
});

describe('Idempotency-Key expiry (IDEMPOTENCY_TTL_S 1)', () => {
  const ctx = useTestApp({ IDEMPOTENCY_TTL_S: '1', BUILD_CONCURRENCY: '1' });

  it('after its time to live a key names a new build', async () => {
    const { app, adminToken: token } = ctx;
    const project = await createProject(app, token);
    const key = uniqueName('key');
    const first = await triggerOk(app, token, project.id, { key });
    const replay = await trigger(app, token, project.id, { key });
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.json<BuildJson>().id).toBe(first.id);
    await sleep(1300);
    const later = await trigger(app, token, project.id, { key });
    expect(later.statusCode, later.body).toBe(201);
    expect(later.headers['idempotent-replayed']).toBeUndefined();
    expect(later.json<BuildJson>().id).not.toBe(first.id);
    expect(later.json<BuildJson>().number).toBe(2);
    // …and the key now answers that new build.
    const again = await trigger(app, token, project.id, { key });
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json<BuildJson>().id).toBe(later.json<BuildJson>().id);
  });
});

describe('no workers (BUILD_CONCURRENCY 0, BUILD_QUEUE_LIMIT 3): queued builds', () => {
  const ctx = useTestApp({ BUILD_CONCURRENCY: '0', BUILD_QUEUE_LIMIT: '3' });

  it('builds stay queued; /status counts them', async () => {
    const { app, adminToken: token } = ctx;
    const before = await statusOf(app);
    expect(before.workers).toEqual({ busy: 0, total: 0 });
    const projects = [await createProject(app, token), await createProject(app, token)];
    const builds = [];
    for (const project of projects) for (let index = 0; index < 2; index++) builds.push(await triggerOk(app, token, project.id));
    const after = await statusOf(app);
    expect(after.queue).toEqual({ queued: before.queue!.queued + 4, running: 0 });
    await sleep(300);
    for (const build of builds) expect((await getBuild(app, token, build.id)).status).toBe('queued');
    // Canceling one takes it out of the queue figures.
    expect((await cancel(app, token, builds[0]!.id)).statusCode).toBe(200);
    expect((await statusOf(app)).queue).toEqual({ queued: before.queue!.queued + 3, running: 0 });
  });

  it('cancel of a queued build: canceled, logged with who and when; a second cancel is 409; retry of a queued build is 409', async () => {
    const { app, adminToken: token } = ctx;
    const project = await createProject(app, token);
    const queued = await triggerOk(app, token, project.id);
    expectProblem(await retry(app, token, queued.id), 409, 'conflict');

    const maintainer = await userToken(app, token, 'maintainer');
    const before = Date.now();
    const response = await cancel(app, maintainer.token, queued.id);
    expect(response.statusCode, response.body).toBe(200);
    const canceled = response.json<BuildJson>();
    expect(canceled.status).toBe('canceled');
    expect(canceled.started_at).toBeNull();
    expect(canceled.finished_at).toMatch(ISO_UTC);
    expect(canceled.duration_s).toBeNull();
    const line = new RegExp(`\\[usine\\] Build canceled by ${maintainer.username} at (\\S+Z)\\n$`).exec(canceled.logs);
    expect(line, canceled.logs).not.toBeNull();
    expect(Date.parse(line![1]!)).toBeGreaterThanOrEqual(before - 1000);

    const twice = expectProblem(await cancel(app, token, queued.id), 409, 'conflict');
    expect(twice.detail).toContain('canceled');
    const after = await getBuild(app, token, queued.id);
    expect(after.status).toBe('canceled');
    expect(count(after.logs, 'Build canceled by')).toBe(1);
  });

  it('queue cap: the fourth trigger is 429 rate_limited with Retry-After; a cancel makes room; retry is capped too', async () => {
    const { app, adminToken: token } = ctx;
    const project = await createProject(app, token);
    const builds = [];
    for (let index = 0; index < 3; index++) builds.push(await triggerOk(app, token, project.id));
    const refused = await trigger(app, token, project.id);
    const problem = expectProblem(refused, 429, 'rate_limited');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(problem.detail).toMatch(/\b3\b/);
    expect(problem.detail).toMatch(/limit/i);
    expect((await projectBuilds(app, token, project.id)).total).toBe(3);
    // Another project is not affected.
    const other = await createProject(app, token);
    await triggerOk(app, token, other.id);

    expect((await cancel(app, token, builds[0]!.id)).statusCode).toBe(200);
    const fourth = await triggerOk(app, token, project.id);
    expect(fourth.number).toBe(4);
    expectProblem(await trigger(app, token, project.id), 429, 'rate_limited');

    // Retry of the canceled build: refused while the queue is full…
    const retryRefused = await retry(app, token, builds[0]!.id);
    expectProblem(retryRefused, 429, 'rate_limited');
    expect(Number(retryRefused.headers['retry-after'])).toBeGreaterThan(0);
    // …accepted once there is room.
    expect((await cancel(app, token, builds[1]!.id)).statusCode).toBe(200);
    const retried = await retry(app, token, builds[0]!.id);
    expect(retried.statusCode, retried.body).toBe(201);
    expect(retried.json<BuildJson>()).toMatchObject({ retry_of: builds[0]!.id, status: 'queued', number: 5 });
    expect((await projectBuilds(app, token, project.id)).items.filter((build) => build.status === 'queued')).toHaveLength(3);
  });

  it('10 concurrent triggers on a fresh project with a limit of 3 create exactly 3 builds', async () => {
    const { app, adminToken: token } = ctx;
    const project = await createProject(app, token);
    const responses = await Promise.all(Array.from({ length: 10 }, () => trigger(app, token, project.id)));
    const created = responses.filter((response) => response.statusCode === 201);
    const refused = responses.filter((response) => response.statusCode === 429);
    expect(created).toHaveLength(3);
    expect(refused).toHaveLength(7);
    for (const response of refused) expect(problemOf(response).error).toBe('rate_limited');
    expect(created.map((response) => response.json<BuildJson>().number).sort()).toEqual([1, 2, 3]);
    const list = await projectBuilds(app, token, project.id);
    expect(list.total).toBe(3);
  });
});

describe('cancel of a running build (BUILD_TIME_SCALE 0.5, seeded)', () => {
  const SEED = 'engine-cancel';
  const ctx = useTestApp({ BUILD_TIME_SCALE: '0.5', BUILD_CONCURRENCY: '2', BUILD_SEED: SEED, BUILD_FAIL_RATE: '0' });

  it('retry of a running build is 409; cancel stops it for good and frees the worker', async () => {
    const { app, adminToken: token } = ctx;
    const maintainer = await userToken(app, token, 'maintainer');
    const project = await createProject(app, token);
    const queued = await triggerOk(app, token, project.id);
    const running = await waitRunning(app, token, queued.id);
    expect(running.status).toBe('running');
    expect((await statusOf(app)).workers).toEqual({ busy: 1, total: 2 });
    expect((await statusOf(app)).queue?.running).toBeGreaterThanOrEqual(1);
    expectProblem(await retry(app, token, queued.id), 409, 'conflict');

    // What the run would have lasted (BUILD_SEED makes it known in advance).
    const plan = planDefaultBuild({ project, build: queued }, 0, SEED);
    const wouldEnd = Date.parse(running.started_at!) + plan.duration_s * 500;

    const response = await cancel(app, maintainer.token, queued.id);
    expect(response.statusCode, response.body).toBe(200);
    const canceled = response.json<BuildJson>();
    expect(Date.now()).toBeLessThan(wouldEnd);
    expect(canceled.status).toBe('canceled');
    expect(canceled.started_at).toBe(running.started_at);
    expect(canceled.finished_at).toMatch(ISO_UTC);
    expect(canceled.logs).toMatch(new RegExp(`\\[usine\\] Build canceled by ${maintainer.username} at \\S+Z\\n$`));
    expect(canceled.logs).toContain('picked up by');
    // It lasted what its jobs ran, one after the other, in simulated seconds — the one it stopped included, from
    // its start to the cancel: the timestamps' difference ÷ BUILD_TIME_SCALE at most (that wall time also holds the
    // moments between one job's end and the next one's claim; ±0.01 for the hundredths it is rounded to).
    const ranS = (Date.parse(canceled.finished_at!) - Date.parse(canceled.started_at!)) / 1000 / 0.5;
    expect(typeof canceled.duration_s).toBe('number');
    expect(canceled.duration_s!).toBeLessThanOrEqual(ranS + 0.011);
    const jobs = (await injectAs(app, token, { method: 'GET', url: `/builds/${queued.id}/jobs` })).json<{ items: { status: string; duration_s: number | null }[] }>();
    const ranJobs = jobs.items.filter((job) => job.status === 'success' || job.status === 'canceled');
    expect(ranJobs.at(-1)?.status).toBe('canceled');
    expect(ranJobs.at(-1)?.duration_s).toBeGreaterThan(0);
    expect(canceled.duration_s).toBe(Math.round(ranJobs.reduce((sum, job) => sum + (job.duration_s ?? 0), 0) * 100) / 100);
    // …which covers every step line it wrote (each at its simulated time in its job), and is short of the whole plan.
    const stamps = [...canceled.logs.matchAll(/^\[\w+\] \[(\d{2}):(\d{2})\.(\d{3})\] /gm)].map(([, m, sec, ms]) => Number(m) * 60 + Number(sec) + Number(ms) / 1000);
    for (const stamp of stamps) expect(stamp).toBeLessThanOrEqual(canceled.duration_s! + 0.011);
    expect(canceled.duration_s!).toBeLessThan(plan.duration_s);

    // The cancel event aborts the run at once (not at its next log write, which may be a second away).
    const freedIn = await eventually(async () => (await statusOf(app)).workers.busy === 0, 1000, 'worker freed after cancel');
    expect(freedIn).toBeLessThanOrEqual(500);

    // Past the moment it would have finished: still canceled, nothing more written.
    while (Date.now() < wouldEnd + 700) {
      const now = await getBuild(app, token, queued.id);
      expect(now.status).toBe('canceled');
      expect(now.logs).toBe(canceled.logs);
      await sleep(150);
    }
    const last = await getBuild(app, token, queued.id);
    expect(last.status).toBe('canceled');
    expect(last.logs).not.toContain('Build finished');
    expect(last.finished_at).toBe(canceled.finished_at);
    expect(last.duration_s).toBe(canceled.duration_s);
    expectProblem(await cancel(app, token, queued.id), 409, 'conflict');
    // The freed worker takes the next build.
    const next = await triggerOk(app, token, project.id);
    expect((await waitRunning(app, token, next.id)).status).toBe('running');
    expect((await cancel(app, token, next.id)).statusCode).toBe(200);
  });
});

describe('BUILD_SEED makes runs reproducible', () => {
  const scratches: ScratchDatabase[] = [];
  const apps: FastifyInstance[] = [];
  afterAll(async () => {
    for (const app of apps) await app.close();
    for (const scratch of scratches) await scratch.drop();
  });

  async function runFive(seed: string | undefined): Promise<{ projectId: number; runs: [number, string][] }> {
    const scratch = await createScratchDatabase();
    scratches.push(scratch);
    const config = testConfig(scratch.url, { BUILD_CONCURRENCY: '3', BUILD_FAIL_RATE: '0.5', ...(seed ? { BUILD_SEED: seed } : {}) });
    const app = await createServer(config, { logger: false });
    apps.push(app);
    await app.ready();
    const token = await login(app, config.ADMIN_USERNAME, config.ADMIN_PASSWORD);
    const project = await createProject(app, token, 'SeededProject');
    const builds = [];
    for (let index = 0; index < 5; index++) builds.push(await triggerOk(app, token, project.id));
    const done = await Promise.all(builds.map((build) => waitTerminal(app, token, build.id)));
    done.sort((a, b) => a.number - b.number);
    expect(done.map((build) => build.number)).toEqual([1, 2, 3, 4, 5]);
    return { projectId: project.id, runs: done.map((build) => [build.duration_s!, build.status]) };
  }

  it('two apps on separate databases with the same seed draw the same durations and outcomes', async () => {
    const [one, two] = [await runFive('reproducible'), await runFive('reproducible')];
    expect(one.projectId).toBe(two.projectId);
    expect(two.runs).toEqual(one.runs);
    // And they are the simulator's plan for that seed, project and number.
    const expected = one.runs.map((_, index) => {
      const build = { project_id: one.projectId, number: index + 1, branch: 'main', commit_sha: SHA };
      const plan = planDefaultBuild({ project: { name: 'SeededProject', repo: REPO }, build }, 0.5, 'reproducible');
      return [plan.duration_s, plan.outcome];
    });
    expect(one.runs).toEqual(expected);
    // Another seed draws another sequence.
    const other = await runFive('another-seed');
    expect(other.runs.map(([duration]) => duration)).not.toEqual(one.runs.map(([duration]) => duration));
  });

  it('without a seed, two runs need not agree', async () => {
    const [one, two] = [await runFive(undefined), await runFive(undefined)];
    for (const [duration, status] of [...one.runs, ...two.runs]) {
      // 2–10 s for a whole (successful) run; a failing one stops at its failing step.
      expect(duration).toBeGreaterThanOrEqual(status === 'success' ? 2 : 0.2);
      expect(duration).toBeLessThanOrEqual(10);
    }
    expect(two.runs.map(([duration]) => duration)).not.toEqual(one.runs.map(([duration]) => duration));
  });
});

describe('several apps on one database: lease take-over and graceful shutdown', () => {
  let shared: SharedDatabase;
  beforeAll(async () => {
    shared = await createSharedDatabase();
  });
  afterAll(async () => {
    await shared?.drop();
  });
  const startApp = useExtraApps();
  const DEAD = 'dead-host:4242:dead00/w1';

  /** A project whose pipeline is one job, `work`, lasting `seconds` simulated seconds and never failing. */
  async function oneJobProject(app: FastifyInstance, token: string, seconds: number): Promise<ProjectJson> {
    const project = await createProject(app, token);
    const definition = { stages: ['work'], jobs: { work: { stage: 'work', script: ['make'], duration_s: [seconds, seconds], fail_rate: 0 } } };
    const response = await injectAs(app, token, { method: 'PUT', url: `/projects/${project.id}/pipeline`, payload: definition });
    expect(response.statusCode, response.body).toBe(200);
    return project;
  }

  it("a job whose worker died (lease expired) is queued again and finished by another app's worker", async () => {
    // A claims the job. Its own lease is long, so that only B's sweeper recovers it.
    const a = await startApp(shared.url, { BUILD_CONCURRENCY: '1', BUILD_TIME_SCALE: '1', BUILD_LEASE_S: '30', BUILD_DRAIN_S: '3' });
    const project = await oneJobProject(a.app, a.token, 20);
    const queued = await triggerOk(a.app, a.token, project.id);
    const running = await waitRunning(a.app, a.token, queued.id);
    expect(running.status).toBe('running');
    expect(running.logs).toContain(`[work] [usine] Job work (attempt 1) picked up by ${a.app.jobEngine.ownerPrefix}/w1, claim 1`);

    // A "dies": its lease now names a dead worker and ran out a minute ago. A can no longer write to the job.
    expect(await shared.expireLease(queued.id, DEAD)).toBe(1);
    await a.app.close();
    expect(await shared.claims(queued.id)).toBe(1);

    const b = await startApp(shared.url, { BUILD_CONCURRENCY: '1', BUILD_TIME_SCALE: '0.01', BUILD_LEASE_S: '1', BUILD_MAX_ATTEMPTS: '3' });
    const done = await waitTerminal(b.app, b.token, queued.id, 15_000);
    expect(done.status).toBe('success');
    const takeOver = `[work] [usine] Worker ${DEAD} stopped renewing its lease: the job is queued again for another worker to take over.`;
    expect(done.logs).toContain(takeOver);
    const pickedUpByB = `picked up by ${b.app.jobEngine.ownerPrefix}/w1, claim 2`;
    expect(done.logs).toContain(pickedUpByB);
    expect(done.logs.indexOf(takeOver)).toBeLessThan(done.logs.indexOf(pickedUpByB));
    expect(done.logs).not.toContain('is shutting down');
    expect(count(done.logs, 'Build finished')).toBe(1);
    expect(count(done.logs, 'stopped renewing its lease')).toBe(1);
    expect(done.finished_at).toMatch(ISO_UTC);
    expect(await shared.claims(queued.id)).toBe(2);
  });

  it('a job claimed BUILD_MAX_ATTEMPTS times fails instead, with the giving-up line, and fails its build', async () => {
    const api = await startApp(shared.url, { BUILD_CONCURRENCY: '0' });
    const project = await oneJobProject(api.app, api.token, 1);
    const exhausted = await triggerOk(api.app, api.token, project.id);
    const oneLeft = await triggerOk(api.app, api.token, project.id);
    expect(await shared.expireLease(exhausted.id, DEAD, 3)).toBe(1);
    expect(await shared.expireLease(oneLeft.id, DEAD, 2)).toBe(1);
    expect((await getBuild(api.app, api.token, exhausted.id)).status).toBe('running');

    const worker = await startApp(shared.url, { BUILD_CONCURRENCY: '1', BUILD_TIME_SCALE: '0', BUILD_LEASE_S: '1', BUILD_MAX_ATTEMPTS: '3' });
    const failed = await waitTerminal(worker.app, worker.token, exhausted.id, 10_000);
    expect(failed.status).toBe('fail');
    expect(failed.logs).toContain(
      `[work] [usine] Worker ${DEAD} stopped renewing its lease, and this job has been claimed 3 times: giving up, the job fails.`,
    );
    expect(failed.logs).not.toContain('queued again');
    expect(failed.logs).not.toContain('Job succeeded');
    expect(failed.logs.trimEnd().split('\n').at(-1)).toMatch(/^Build finished: fail in /);
    expect(failed.finished_at).toMatch(ISO_UTC);
    expect(await shared.claims(exhausted.id)).toBe(3);

    // One claim short of the limit: queued again, and its last attempt runs.
    const lastChance = await waitTerminal(worker.app, worker.token, oneLeft.id, 10_000);
    expect(lastChance.status).toBe('success');
    expect(lastChance.logs).toContain(`[work] [usine] Worker ${DEAD} stopped renewing its lease: the job is queued again`);
    expect(lastChance.logs).toContain(`picked up by ${worker.app.jobEngine.ownerPrefix}/w1, claim 3`);
    expect(count(lastChance.logs, 'Build finished')).toBe(1);
  });

  it('shutdown after BUILD_DRAIN_S hands a running job back to the queue, without counting the claim', async () => {
    const leaving = await startApp(shared.url, { BUILD_CONCURRENCY: '1', BUILD_TIME_SCALE: '1', BUILD_DRAIN_S: '0.2' });
    const owner = `${leaving.app.jobEngine.ownerPrefix}/w1`;
    const project = await oneJobProject(leaving.app, leaving.token, 20);
    const queued = await triggerOk(leaving.app, leaving.token, project.id);
    expect((await waitRunning(leaving.app, leaving.token, queued.id)).status).toBe('running');
    const closing = Date.now();
    await leaving.app.close();
    // The drain period, not the job's 20 s, bounds the shutdown.
    expect(Date.now() - closing).toBeLessThan(1800);

    const reader = await startApp(shared.url, { BUILD_CONCURRENCY: '0' });
    const released = await getBuild(reader.app, reader.token, queued.id);
    // The build has started (a job ran) and is not over: running, with its job queued again.
    expect(released.status).toBe('running');
    expect(released.logs).toContain(`[work] [usine] ${owner} is shutting down: the job goes back to the queue for another worker.`);
    expect(released.logs).not.toContain('Build finished');
    expect(released.finished_at).toBeNull();
    const jobs = (await injectAs(reader.app, reader.token, { method: 'GET', url: `/builds/${queued.id}/jobs` })).json<{ items: { status: string }[] }>();
    expect(jobs.items.map((job) => job.status)).toEqual(['queued']);
    expect(await shared.claims(queued.id)).toBe(0);
    expect((await statusOf(reader.app)).jobs).toMatchObject({ running: 0 });

    // Another app's worker picks it up as a first claim and finishes it.
    const next = await startApp(shared.url, { BUILD_CONCURRENCY: '1', BUILD_TIME_SCALE: '0' });
    const done = await waitTerminal(next.app, next.token, queued.id, 10_000);
    expect(done.status).toBe('success');
    expect(done.logs).toContain(`picked up by ${next.app.jobEngine.ownerPrefix}/w1, claim 1`);
    expect(count(done.logs, 'Build finished')).toBe(1);
  });

  it('with a long enough BUILD_DRAIN_S a running job finishes during shutdown', async () => {
    const leaving = await startApp(shared.url, { BUILD_CONCURRENCY: '1', BUILD_TIME_SCALE: '0.1', BUILD_DRAIN_S: '3' });
    const project = await oneJobProject(leaving.app, leaving.token, 5);
    const queued = await triggerOk(leaving.app, leaving.token, project.id);
    expect((await waitRunning(leaving.app, leaving.token, queued.id)).status).toBe('running');
    await leaving.app.close();

    const reader = await startApp(shared.url, { BUILD_CONCURRENCY: '0' });
    const done = await getBuild(reader.app, reader.token, queued.id);
    expect(done.status).toBe('success');
    expect(done.logs).toContain('Build finished');
    expect(done.logs).not.toContain('is shutting down');
  });
});
