/**
 * The jobs of a build through HTTP: GET /builds/:id/jobs, GET /jobs/:id, GET /jobs/:id/logs, and the actions retry,
 * cancel and play. No workers (BUILD_CONCURRENCY=0): the tests drive the jobs themselves with the repository's claim,
 * appendLog and finish, as a worker would.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { components } from '../../clients/typescript/usine.js';
import type { PipelineDefinition } from '../../src/pipelines/definition.js';
import { injectAs, login, problemOf, testDb, uniqueName, useTestApp, type BuildJson, type TestContext } from '../helper.js';

type JobJson = components['schemas']['Job'];

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$/;
const OWNER = 'test-host:1:abcdef/w1';
const MISSING = 2_147_483_000;

/** build → test (two parallel copies) → deploy (manual). */
const PIPELINE: PipelineDefinition = {
  stages: ['build', 'test', 'deploy'],
  jobs: {
    compile: { stage: 'build', script: ['make'] },
    test: { stage: 'test', needs: ['compile'], parallel: 2 },
    deploy: { stage: 'deploy', when: 'manual' },
  },
};
const NAMES = ['compile', 'test 1/2', 'test 2/2', 'deploy'];
const JOB_FIELDS = [
  'allow_failure',
  'attempt',
  'build_id',
  'created_at',
  'duration_s',
  'finished_at',
  'id',
  'name',
  'needs',
  'retried',
  'retry_of',
  'stage',
  'started_at',
  'status',
  'when',
  'worker',
];

function expectProblem(response: LightMyRequestResponse, status: number, error: string): string {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const problem = problemOf(response);
  expect(problem).toMatchObject({ status, error });
  return problem.detail;
}

function helpers(ctx: TestContext) {
  const callAs = (token: string, method: 'GET' | 'POST' | 'PUT', url: string, extra: { payload?: object; headers?: Record<string, string> } = {}) =>
    injectAs(ctx.app, token, { method, url, ...extra });
  const admin = (method: 'GET' | 'POST' | 'PUT', url: string, extra: { payload?: object; headers?: Record<string, string> } = {}) =>
    callAs(ctx.adminToken, method, url, extra);

  const listJobs = async (buildId: number): Promise<JobJson[]> => {
    const response = await admin('GET', `/builds/${buildId}/jobs`);
    expect(response.statusCode, response.body).toBe(200);
    return response.json<{ items: JobJson[] }>().items;
  };
  /** The current attempt of each job, by name. */
  const statuses = async (buildId: number) =>
    Object.fromEntries((await listJobs(buildId)).filter((job) => !job.retried).map((job) => [job.name, job.status]));
  const buildStatus = async (buildId: number) => (await admin('GET', `/builds/${buildId}`)).json<BuildJson>().status;

  return { callAs, admin, listJobs, statuses, buildStatus };
}

describe(`jobs routes (${testDb})`, () => {
  const ctx = useTestApp({ BUILD_CONCURRENCY: '0' });
  const { callAs, admin, listJobs, statuses, buildStatus } = helpers(ctx);
  let projectId: number;
  let viewerToken: string;
  /** Builds triggered by a test: canceled after it, so that no queued job of theirs is left for the next test to claim. */
  const triggered: number[] = [];

  beforeAll(async () => {
    const project = await admin('POST', '/projects', { payload: { name: uniqueName('Jobs'), repo: 'https://github.com/demo/jobs' } });
    expect(project.statusCode, project.body).toBe(201);
    projectId = project.json<{ id: number }>().id;
    const put = await admin('PUT', `/projects/${projectId}/pipeline`, { payload: PIPELINE });
    expect(put.statusCode, put.body).toBe(200);
    const username = uniqueName('viewer');
    const user = await admin('POST', '/users', { payload: { username, password: 'viewer-password-1', role: 'viewer' } });
    expect(user.statusCode, user.body).toBe(201);
    viewerToken = await login(ctx.app, username, 'viewer-password-1');
  });

  afterEach(async () => {
    for (const id of triggered.splice(0)) {
      const response = await admin('POST', `/builds/${id}/cancel`);
      expect([200, 409], response.body).toContain(response.statusCode);
    }
  });

  /** Triggers a build of the project: its jobs are planned from PIPELINE, `compile` queued, the rest created. */
  async function trigger(): Promise<{ build: BuildJson; jobs: Record<string, JobJson> }> {
    const response = await admin('POST', `/projects/${projectId}/builds`, { payload: { branch: 'main' } });
    expect(response.statusCode, response.body).toBe(201);
    const build = response.json<BuildJson>();
    triggered.push(build.id);
    const jobs = await listJobs(build.id);
    expect(jobs.map((job) => job.name)).toEqual(NAMES);
    return { build, jobs: Object.fromEntries(jobs.map((job) => [job.name, job])) };
  }

  /** Claims the oldest queued job as a worker would, and checks it is the one expected. */
  async function claim(expected: JobJson) {
    const claimed = await ctx.app.jobsRepository.claimNext(OWNER, 60_000);
    expect(claimed?.job.id, `claimed ${expected.name}`).toBe(expected.id);
    if (!claimed) throw new Error(`nothing to claim, expected job ${expected.id}`);
    return claimed.job;
  }

  async function runToEnd(expected: JobJson, status: 'success' | 'fail', text = `Job ${status}\n`) {
    const job = await claim(expected);
    const settled = await ctx.app.jobsRepository.finish(job, OWNER, { status, duration_s: 1.5, text });
    expect(settled, `finished ${expected.name}`).toBeDefined();
  }

  it('lists every job of a build in pipeline order, with its place in the graph and its status', async () => {
    const { build } = await trigger();
    const response = await admin('GET', `/builds/${build.id}/jobs`);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    const { items } = response.json<{ items: JobJson[] }>();
    expect(items.map((job) => [job.name, job.stage, job.needs, job.status, job.when, job.allow_failure])).toEqual([
      ['compile', 'build', [], 'queued', 'on_success', false],
      ['test 1/2', 'test', ['compile'], 'created', 'on_success', false],
      ['test 2/2', 'test', ['compile'], 'created', 'on_success', false],
      ['deploy', 'deploy', ['compile', 'test 1/2', 'test 2/2'], 'created', 'manual', true],
    ]);
    for (const job of items) {
      expect(Object.keys(job).sort()).toEqual(JOB_FIELDS);
      expect(job).toMatchObject({ build_id: build.id, attempt: 1, retry_of: null, retried: false, worker: null, duration_s: null, started_at: null, finished_at: null });
      expect(job.created_at).toMatch(ISO_UTC);
    }
    expect(new Set(items.map((job) => job.id)).size).toBe(4);

    // One job alone is the same as in the list.
    for (const job of items) {
      const one = await admin('GET', `/jobs/${job.id}`);
      expect(one.statusCode, one.body).toBe(200);
      expect(one.json<JobJson>()).toEqual(job);
    }
    // A viewer reads them too.
    expect((await callAs(viewerToken, 'GET', `/builds/${build.id}/jobs`)).json<{ items: JobJson[] }>().items).toEqual(items);
    expect((await callAs(viewerToken, 'GET', `/jobs/${items[0]?.id}`)).statusCode).toBe(200);
  });

  it('shows who runs a job and when, once a worker has claimed it and finished it', async () => {
    const { jobs } = await trigger();
    const compile = jobs.compile as JobJson;
    await claim(compile);
    const running = (await admin('GET', `/jobs/${compile.id}`)).json<JobJson>();
    expect(running).toMatchObject({ status: 'running', worker: OWNER, duration_s: null, finished_at: null });
    expect(running.started_at).toMatch(ISO_UTC);
    const job = { id: compile.id, build_id: compile.build_id, name: compile.name };
    await ctx.app.jobsRepository.finish(job, OWNER, { status: 'success', duration_s: 2.25, text: 'done\n' });
    const finished = (await admin('GET', `/jobs/${compile.id}`)).json<JobJson>();
    expect(finished).toMatchObject({ status: 'success', worker: OWNER, duration_s: 2.25 });
    expect(finished.finished_at).toMatch(ISO_UTC);
    expect(Date.parse(finished.finished_at ?? '')).toBeGreaterThanOrEqual(Date.parse(finished.started_at ?? ''));
    expect(await statuses(compile.build_id)).toEqual({ compile: 'success', 'test 1/2': 'queued', 'test 2/2': 'queued', deploy: 'created' });
    // Cleanup claims nothing else: the test copies are canceled with the build.
  });

  it('answers 404 for a build or a job that does not exist', async () => {
    expect(expectProblem(await admin('GET', `/builds/${MISSING}/jobs`), 404, 'not_found')).toBe(`Build ${MISSING} does not exist`);
    expect(expectProblem(await admin('GET', `/jobs/${MISSING}`), 404, 'not_found')).toBe(`Job ${MISSING} does not exist`);
    expect(expectProblem(await admin('GET', `/jobs/${MISSING}/logs`), 404, 'not_found')).toBe(`Job ${MISSING} does not exist`);
    for (const action of ['retry', 'cancel', 'play']) {
      expect(expectProblem(await admin('POST', `/jobs/${MISSING}/${action}`), 404, 'not_found')).toBe(`Job ${MISSING} does not exist`);
    }
    expectProblem(await admin('GET', '/jobs/0'), 400, 'validation_error');
  });

  it('answers 401 without a token, and 403 to a viewer on the actions (nothing changes)', async () => {
    const { build, jobs } = await trigger();
    const compile = jobs.compile as JobJson;
    const urls: ['GET' | 'POST', string][] = [
      ['GET', `/builds/${build.id}/jobs`],
      ['GET', `/jobs/${compile.id}`],
      ['GET', `/jobs/${compile.id}/logs`],
      ['POST', `/jobs/${compile.id}/retry`],
      ['POST', `/jobs/${compile.id}/cancel`],
      ['POST', `/jobs/${compile.id}/play`],
    ];
    for (const [method, url] of urls) {
      const response = await ctx.app.inject({ method, url });
      expectProblem(response, 401, 'unauthorized');
    }
    for (const action of ['retry', 'cancel', 'play']) {
      expect(expectProblem(await callAs(viewerToken, 'POST', `/jobs/${compile.id}/${action}`), 403, 'forbidden')).toMatch(/maintainer/);
    }
    expect(await statuses(build.id)).toEqual({ compile: 'queued', 'test 1/2': 'created', 'test 2/2': 'created', deploy: 'created' });
  });

  it("serves a job's log as text, from an offset or a byte range, with its status and size", async () => {
    const { jobs } = await trigger();
    const compile = jobs.compile as JobJson;
    const job = await claim(compile);
    const appended = 'étape 1: make ✓\n';
    expect(await ctx.app.jobsRepository.appendLog(job, OWNER, appended)).toBe(true);
    const log = Buffer.from(`[usine] Job compile (attempt 1) picked up by ${OWNER}, claim 1\n${appended}`, 'utf8');

    const whole = await admin('GET', `/jobs/${compile.id}/logs`);
    expect(whole.statusCode, whole.body).toBe(200);
    expect(whole.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(whole.headers['x-job-status']).toBe('running');
    expect(whole.headers['x-log-size']).toBe(String(log.length));
    expect(whole.rawPayload.equals(log)).toBe(true);

    const from = log.indexOf('\n') + 1;
    const tail = await admin('GET', `/jobs/${compile.id}/logs?offset=${from}`);
    expect(tail.statusCode).toBe(200);
    expect(tail.body).toBe(appended);
    expect(tail.headers['x-log-size']).toBe(String(log.length));
    const past = await admin('GET', `/jobs/${compile.id}/logs?offset=${log.length + 10}`);
    expect(past.statusCode).toBe(200);
    expect(past.body).toBe('');

    const range = await admin('GET', `/jobs/${compile.id}/logs`, { headers: { range: `bytes=${from}-` } });
    expect(range.statusCode).toBe(206);
    expect(range.headers['content-range']).toBe(`bytes ${from}-${log.length - 1}/${log.length}`);
    expect(range.rawPayload.equals(log.subarray(from))).toBe(true);
    const bounded = await admin('GET', `/jobs/${compile.id}/logs`, { headers: { range: 'bytes=0-6' } });
    expect(bounded.statusCode).toBe(206);
    expect(bounded.body).toBe('[usine]');

    const unsatisfiable = await admin('GET', `/jobs/${compile.id}/logs`, { headers: { range: `bytes=${log.length}-` } });
    expectProblem(unsatisfiable, 416, 'validation_error');
    expect(unsatisfiable.headers['content-range']).toBe(`bytes */${log.length}`);

    // Finished: the status says so, and the last lines are there.
    await ctx.app.jobsRepository.finish(job, OWNER, { status: 'success', duration_s: 1, text: 'Job succeeded\n' });
    const done = await admin('GET', `/jobs/${compile.id}/logs`);
    expect(done.headers['x-job-status']).toBe('success');
    expect(done.body).toBe(`${log.toString('utf8')}Job succeeded\n`);

    // As an event stream, a finished job's log comes whole, one event per line, then `end` with its status; from
    // Last-Event-ID, only what follows.
    const stream = await admin('GET', `/jobs/${compile.id}/logs`, { headers: { accept: 'text/event-stream' } });
    expect(stream.statusCode).toBe(200);
    expect(stream.headers['content-type']).toMatch(/^text\/event-stream/);
    const whole2 = Buffer.byteLength(`${log.toString('utf8')}Job succeeded\n`);
    expect(stream.body).toContain(`id: ${from}\ndata: [usine] Job compile (attempt 1) picked up by ${OWNER}, claim 1\n\n`);
    expect(stream.body).toContain(`id: ${log.length}\ndata: étape 1: make ✓\n\n`);
    expect(stream.body).toMatch(new RegExp(`event: end\\nid: ${whole2}\\ndata: \\{"status":"success"\\}\\n\\n$`));
    const resumed = await admin('GET', `/jobs/${compile.id}/logs`, { headers: { accept: 'text/event-stream', 'last-event-id': String(log.length) } });
    expect(resumed.body).not.toContain('étape');
    expect(resumed.body).toContain('data: Job succeeded\n');
    // Another job's log is its own: empty until claimed.
    const other = await admin('GET', `/jobs/${(jobs['test 1/2'] as JobJson).id}/logs`);
    expect(other.headers['x-job-status']).toBe('queued');
    expect(other.headers['x-log-size']).toBe('0');
    expect(other.body).toBe('');
  });

  it('retries a failed job as a new attempt; the jobs skipped because of it wait for it again', async () => {
    const { build, jobs } = await trigger();
    const compile = jobs.compile as JobJson;
    await runToEnd(compile, 'fail', 'make: *** [all] Error 2\n');
    expect(await statuses(build.id)).toEqual({ compile: 'fail', 'test 1/2': 'skipped', 'test 2/2': 'skipped', deploy: 'skipped' });
    expect(await buildStatus(build.id)).toBe('fail');

    const response = await admin('POST', `/jobs/${compile.id}/retry`);
    expect(response.statusCode, response.body).toBe(201);
    const attempt = response.json<JobJson>();
    expect(response.headers.location).toBe(`/jobs/${attempt.id}`);
    expect(attempt.id).not.toBe(compile.id);
    expect(attempt).toMatchObject({
      build_id: build.id,
      name: 'compile',
      stage: 'build',
      status: 'queued',
      attempt: 2,
      retry_of: compile.id,
      retried: false,
      worker: null,
      duration_s: null,
      started_at: null,
      finished_at: null,
    });
    expect((await admin('GET', `/jobs/${attempt.id}`)).json<JobJson>()).toEqual(attempt);

    const old = (await admin('GET', `/jobs/${compile.id}`)).json<JobJson>();
    expect(old).toMatchObject({ status: 'fail', attempt: 1, retried: true, duration_s: 1.5 });
    const listed = await listJobs(build.id);
    expect(listed.map((job) => [job.name, job.attempt, job.status, job.retried])).toEqual([
      ['compile', 1, 'fail', true],
      ['compile', 2, 'queued', false],
      ['test 1/2', 1, 'created', false],
      ['test 2/2', 1, 'created', false],
      ['deploy', 1, 'created', false],
    ]);
    expect(await buildStatus(build.id)).toBe('running');
    // Each attempt keeps its own log: the new one has none yet.
    expect((await admin('GET', `/jobs/${compile.id}/logs`)).body).toContain('make: *** [all] Error 2\n');
    expect((await admin('GET', `/jobs/${attempt.id}/logs`)).body).toBe('');

    // The old attempt is history: it cannot be retried (nor canceled) again.
    expect(expectProblem(await admin('POST', `/jobs/${compile.id}/retry`), 409, 'conflict')).toMatch(/attempt 1\) has been retried since/);
    expect(expectProblem(await admin('POST', `/jobs/${compile.id}/cancel`), 409, 'conflict')).toMatch(/has been retried since/);
    expect(await listJobs(build.id)).toHaveLength(5);

    // The new attempt runs; what it unblocks runs too.
    await runToEnd(attempt, 'success');
    expect(await statuses(build.id)).toEqual({ compile: 'success', 'test 1/2': 'queued', 'test 2/2': 'queued', deploy: 'created' });
  });

  it('refuses to retry a job that has not finished: 409 naming its status', async () => {
    const { build, jobs } = await trigger();
    for (const name of ['compile', 'test 1/2']) {
      const job = jobs[name] as JobJson;
      const detail = expectProblem(await admin('POST', `/jobs/${job.id}/retry`), 409, 'conflict');
      expect(detail).toBe(`Job ${job.id} (${name}) is ${job.status}: only a job that succeeded, failed or was canceled can be retried`);
    }
    expect(await listJobs(build.id)).toHaveLength(4);
  });

  it('cancels a queued job: the jobs that need it are skipped and the build ends canceled', async () => {
    const { build, jobs } = await trigger();
    const compile = jobs.compile as JobJson;
    const response = await admin('POST', `/jobs/${compile.id}/cancel`, { payload: {} });
    expect(response.statusCode, response.body).toBe(200);
    const canceled = response.json<JobJson>();
    expect(canceled).toMatchObject({ id: compile.id, status: 'canceled', attempt: 1, retried: false });
    expect(canceled.finished_at).toMatch(ISO_UTC);
    expect(await statuses(build.id)).toEqual({ compile: 'canceled', 'test 1/2': 'skipped', 'test 2/2': 'skipped', deploy: 'skipped' });
    expect(await buildStatus(build.id)).toBe('canceled');
    expect(await ctx.app.jobsRepository.claimNext(OWNER, 60_000)).toBeUndefined();

    // Over: neither canceled again nor played; but it can be retried.
    expect(expectProblem(await admin('POST', `/jobs/${compile.id}/cancel`), 409, 'conflict')).toBe(
      `Job ${compile.id} (compile) is canceled: only a created, queued, running or manual job can be canceled`,
    );
    expect(expectProblem(await admin('POST', `/jobs/${(jobs.deploy as JobJson).id}/cancel`), 409, 'conflict')).toMatch(/is skipped/);
  });

  it('cancels a running job: it stops holding its worker, and its log says who canceled it', async () => {
    const { build, jobs } = await trigger();
    const compile = jobs.compile as JobJson;
    const job = await claim(compile);
    const response = await admin('POST', `/jobs/${compile.id}/cancel`);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<JobJson>()).toMatchObject({ status: 'canceled', worker: OWNER });
    // The worker's next write finds the job no longer its own.
    expect(await ctx.app.jobsRepository.appendLog(job, OWNER, 'still here\n')).toBe(false);
    expect((await admin('GET', `/jobs/${compile.id}/logs`)).body).toMatch(/\[usine\] Job canceled by admin at \S+Z\n$/);
    // The build's log has the line too, as it has every line of its jobs.
    expect((await admin('GET', `/builds/${build.id}/logs`)).body).toMatch(/^\[compile\] \[usine\] Job canceled by admin at \S+Z$/m);
    expect(await buildStatus(build.id)).toBe('canceled');
  });

  it('plays a manual job once its needs are over: it is queued and the build runs again; other statuses get 409', async () => {
    const { build, jobs } = await trigger();
    const deploy = jobs.deploy as JobJson;
    // Still waiting for its needs: not playable yet.
    expect(expectProblem(await admin('POST', `/jobs/${deploy.id}/play`), 409, 'conflict')).toBe(
      `Job ${deploy.id} (deploy) is created: only a manual job can be played`,
    );
    await runToEnd(jobs.compile as JobJson, 'success');
    await runToEnd(jobs['test 1/2'] as JobJson, 'success');
    await runToEnd(jobs['test 2/2'] as JobJson, 'success');
    expect(await statuses(build.id)).toEqual({ compile: 'success', 'test 1/2': 'success', 'test 2/2': 'success', deploy: 'manual' });
    // An unplayed manual job holds nothing back.
    expect(await buildStatus(build.id)).toBe('success');

    expect(expectProblem(await admin('POST', `/jobs/${(jobs.compile as JobJson).id}/play`), 409, 'conflict')).toBe(
      `Job ${(jobs.compile as JobJson).id} (compile) is success: only a manual job can be played`,
    );
    const response = await admin('POST', `/jobs/${deploy.id}/play`);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<JobJson>()).toMatchObject({ id: deploy.id, name: 'deploy', status: 'queued', attempt: 1 });
    expect((await admin('GET', `/jobs/${deploy.id}`)).json<JobJson>().status).toBe('queued');
    expect(await buildStatus(build.id)).toBe('running');
    expect(expectProblem(await admin('POST', `/jobs/${deploy.id}/play`), 409, 'conflict')).toMatch(/is queued: only a manual job/);

    await runToEnd(deploy, 'success');
    expect(await buildStatus(build.id)).toBe('success');
  });

  it('refuses a body on the actions other than an empty object', async () => {
    const { jobs } = await trigger();
    const response = await admin('POST', `/jobs/${(jobs.compile as JobJson).id}/cancel`, { payload: { force: true } });
    expectProblem(response, 400, 'validation_error');
    expect((await admin('GET', `/jobs/${(jobs.compile as JobJson).id}`)).json<JobJson>().status).toBe('queued');
  });
});
