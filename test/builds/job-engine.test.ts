import type { FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import type { PipelineDefinition } from '../../src/pipelines/definition.js';
import { injectAs, testDb, uniqueName, useTestApp, waitForBuild } from '../helper.js';
import { openEventStream } from '../sse-client.js';

/**
 * The job engine through HTTP: builds run their project's pipeline as jobs, claimed by the
 * workers, released as their needs finish, in parallel where the graph allows; cancel reaches running jobs; a build
 * keeps the jobs it was triggered with.
 */
const SHA = '9b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c';
const TERMINAL = ['success', 'fail', 'canceled'];

interface BuildJson {
  id: number;
  project_id: number;
  status: string;
  logs: string;
  duration_s: number | null;
}

async function projectWith(app: FastifyInstance, token: string, pipeline?: PipelineDefinition): Promise<number> {
  const created = await injectAs(app, token, { method: 'POST', url: '/projects', payload: { name: uniqueName('Jobs'), repo: 'https://github.com/demo/jobs' } });
  expect(created.statusCode, created.body).toBe(201);
  const id = created.json<{ id: number }>().id;
  if (pipeline) {
    const put = await injectAs(app, token, { method: 'PUT', url: `/projects/${id}/pipeline`, payload: pipeline });
    expect(put.statusCode, put.body).toBe(200);
  }
  return id;
}

async function trigger(app: FastifyInstance, token: string, projectId: number): Promise<BuildJson> {
  const response = await injectAs(app, token, { method: 'POST', url: `/projects/${projectId}/builds`, payload: { branch: 'main', commit_sha: SHA } });
  expect(response.statusCode, response.body).toBe(201);
  return response.json<BuildJson>();
}

const jobsOf = async (app: FastifyInstance, buildId: number) => (await app.jobsRepository.listForBuild(buildId)).filter((job) => !job.retried);
const statusesOf = async (app: FastifyInstance, buildId: number) => Object.fromEntries((await jobsOf(app, buildId)).map((job) => [job.name, job.status]));

describe(`job engine: builds run their pipeline as jobs (${testDb})`, () => {
  const ctx = useTestApp({ BUILD_CONCURRENCY: '4', BUILD_FAIL_RATE: '0', BUILD_SEED: 'jobs' });

  it('runs the default pipeline as four jobs, one per stage, and keeps the build log, duration and artifact of a build', async () => {
    const projectId = await projectWith(ctx.app, ctx.adminToken);
    const build = await waitForBuild<BuildJson>(ctx.app, ctx.adminToken, (await trigger(ctx.app, ctx.adminToken, projectId)).id);
    expect(build.status).toBe('success');
    const jobs = await jobsOf(ctx.app, build.id);
    expect(jobs.map((job) => [job.name, job.stage, job.status])).toEqual([
      ['checkout', 'checkout', 'success'],
      ['install', 'install', 'success'],
      ['test', 'test', 'success'],
      ['package', 'package', 'success'],
    ]);
    // The seed's 2–10 s: the four jobs one after the other.
    expect(build.duration_s).toBeGreaterThanOrEqual(2);
    expect(build.duration_s).toBeLessThanOrEqual(10);
    const total = jobs.reduce((sum, job) => sum + (job.duration_s ?? 0), 0);
    expect(build.duration_s).toBeCloseTo(total, 1);
    // One append-only log: every job's lines, prefixed with its name, then the build's last line.
    expect(build.logs).toContain('[checkout] [00:00.000] ==> Step checkout\n');
    expect(build.logs).toContain('[test] ');
    expect(build.logs).toMatch(/\[package\] Artifact .+\.tar\.gz: \d+ bytes, sha256 [0-9a-f]{64}\n/);
    expect(build.logs).toMatch(/Build finished: success in [\d.]+ s\n$/);
    const artifacts = await injectAs(ctx.app, ctx.adminToken, { method: 'GET', url: `/builds/${build.id}/artifacts` });
    expect(artifacts.statusCode, artifacts.body).toBe(200);
    expect(JSON.stringify(artifacts.json())).toContain('.tar.gz');
    const project = await injectAs(ctx.app, ctx.adminToken, { method: 'GET', url: `/projects/${projectId}` });
    expect(project.json<{ last_build_status: string }>().last_build_status).toBe('success');
    // The metrics saw the four jobs finish, and nothing waits or runs any more.
    const metrics = (await ctx.app.inject({ method: 'GET', url: '/metrics' })).body;
    const finished = Number(/^usine_job_duration_seconds_count\{status="success"\} (\d+)$/m.exec(metrics)?.[1]);
    expect(finished).toBeGreaterThanOrEqual(4);
    expect(metrics).toMatch(/^# TYPE usine_job_duration_seconds histogram$/m);
    expect(metrics).toMatch(/^usine_job_queue_depth 0$/m);
    expect(metrics).toMatch(/^usine_jobs_running 0$/m);
  });

  it("runs a project's graph: needs, parallel copies, an allowed failure (a warning), a manual job left to play", async () => {
    const projectId = await projectWith(ctx.app, ctx.adminToken, {
      stages: ['build', 'test', 'deploy'],
      jobs: {
        compile: { stage: 'build', script: ['npm ci', 'npm run build'] },
        unit: { stage: 'test', needs: ['compile'] },
        lint: { stage: 'test', needs: ['compile'], fail_rate: 1, allow_failure: true },
        e2e: { stage: 'test', needs: ['compile'], parallel: 3 },
        release: { stage: 'deploy', when: 'manual' },
      },
    });
    const build = await waitForBuild<BuildJson>(ctx.app, ctx.adminToken, (await trigger(ctx.app, ctx.adminToken, projectId)).id);
    expect(build.status).toBe('success');
    expect(await statusesOf(ctx.app, build.id)).toEqual({
      compile: 'success',
      unit: 'success',
      lint: 'fail',
      'e2e 1/3': 'success',
      'e2e 2/3': 'success',
      'e2e 3/3': 'success',
      release: 'manual',
    });
    expect(build.logs).toContain('[compile] [00:00.000] $ npm ci\n');
    expect(build.logs).toMatch(/Build finished: success in [\d.]+ s \(with warnings: lint failed, allowed to fail\)\n$/);
  });

  it('skips what depends on a failed job, still runs `always` jobs, and fails the build', async () => {
    const projectId = await projectWith(ctx.app, ctx.adminToken, {
      stages: ['build', 'test', 'report'],
      jobs: {
        compile: { stage: 'build', fail_rate: 1 },
        unit: { stage: 'test' },
        notify: { stage: 'report', when: 'always' },
      },
    });
    const build = await waitForBuild<BuildJson>(ctx.app, ctx.adminToken, (await trigger(ctx.app, ctx.adminToken, projectId)).id);
    expect(build.status).toBe('fail');
    expect(await statusesOf(ctx.app, build.id)).toEqual({ compile: 'fail', unit: 'skipped', notify: 'success' });
    const project = await injectAs(ctx.app, ctx.adminToken, { method: 'GET', url: `/projects/${projectId}` });
    expect(project.json<{ last_build_status: string }>().last_build_status).toBe('fail');
  });
});

describe(`job engine: parallel jobs and cancel, in (scaled) time (${testDb})`, () => {
  // 0.05: a simulated second lasts 50 ms.
  const ctx = useTestApp({ BUILD_CONCURRENCY: '3', BUILD_FAIL_RATE: '0', BUILD_TIME_SCALE: '0.05' });

  it('runs the copies of a parallel job at the same time, on different workers', async () => {
    const projectId = await projectWith(ctx.app, ctx.adminToken, {
      stages: ['test'],
      jobs: { e2e: { stage: 'test', parallel: 3, duration_s: [6, 6] } },
    });
    const build = await waitForBuild<BuildJson>(ctx.app, ctx.adminToken, (await trigger(ctx.app, ctx.adminToken, projectId)).id);
    expect(build.status).toBe('success');
    const jobs = await jobsOf(ctx.app, build.id);
    expect(new Set(jobs.map((job) => job.worker)).size).toBe(3);
    // Every pair of copies overlapped in time: each started before the other finished.
    for (const a of jobs) {
      for (const b of jobs) {
        if (a.id !== b.id) expect(a.started_at!.getTime()).toBeLessThan(b.finished_at!.getTime());
      }
    }
    // Three 6 s jobs side by side: the build lasted 6 s, not 18.
    expect(build.duration_s).toBe(6);
  });

  it("streams one job's log live, line by line as it runs, until its `end` event", async () => {
    const projectId = await projectWith(ctx.app, ctx.adminToken, {
      stages: ['test'],
      jobs: { e2e: { stage: 'test', script: ['npm run e2e -- --shard 1', 'npm run e2e -- --shard 2', 'npm run report'], duration_s: [30, 30] } },
    });
    const { id } = await trigger(ctx.app, ctx.adminToken, projectId);
    const [job] = await jobsOf(ctx.app, id);
    const address = await ctx.app.listen({ port: 0, host: '127.0.0.1' });
    const stream = await openEventStream(`${address}/jobs/${job!.id}/logs`, { authorization: `Bearer ${ctx.adminToken}` }, { transport: 'http' });
    expect(stream.response.status).toBe(200);
    const end = await stream.waitFor((item) => item.kind === 'event' && item.event === 'end', 10_000);
    const lines = stream.events().filter((event) => event.event !== 'end').map((event) => event.data);
    // Lines came while the job ran (1.5 s of wall time here), not all at once at the end.
    const times = stream.events().map((event) => event.at);
    expect(times.at(-1)! - times[0]!).toBeGreaterThan(500);
    expect(lines.some((line) => line.endsWith('$ npm run e2e -- --shard 2'))).toBe(true);
    expect(lines.at(-1)).toMatch(/^Job succeeded in 30 s$/);
    expect(end.kind === 'event' && JSON.parse(end.data)).toEqual({ status: 'success' });
    await stream.waitClosed(2000);
  });

  it('cancels a running build: its running job stops within a second, the jobs after it are skipped', async () => {
    const projectId = await projectWith(ctx.app, ctx.adminToken, {
      stages: ['build', 'test'],
      jobs: { slow: { stage: 'build', duration_s: [200, 200] }, after: { stage: 'test' } },
    });
    const { id } = await trigger(ctx.app, ctx.adminToken, projectId);
    await waitForBuild(ctx.app, ctx.adminToken, id, { until: (build) => build.status === 'running' });
    const canceled = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/builds/${id}/cancel` });
    expect(canceled.statusCode, canceled.body).toBe(200);
    expect(canceled.json<BuildJson>().status).toBe('canceled');
    expect(await statusesOf(ctx.app, id)).toEqual({ slow: 'canceled', after: 'skipped' });
    // The worker let go of it: all three workers are free again.
    const deadline = Date.now() + 2000;
    while (ctx.app.jobEngine.busy > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(ctx.app.jobEngine.busy).toBe(0);
    const build = await waitForBuild<BuildJson>(ctx.app, ctx.adminToken, id);
    expect(build.logs).toContain('[usine] Build canceled by admin');
    expect(build.logs).not.toContain('Job succeeded');
    const again = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/builds/${id}/cancel` });
    expect(again.statusCode).toBe(409);
  });
});

describe(`job engine: a build keeps the jobs it was triggered with (${testDb})`, () => {
  // No workers: builds stay queued while the pipeline changes under them.
  const ctx = useTestApp({ BUILD_CONCURRENCY: '0' });

  it('plans its jobs at trigger time; editing the pipeline later changes neither it nor its retry', async () => {
    const first: PipelineDefinition = { stages: ['build'], jobs: { old: { stage: 'build' } } };
    const projectId = await projectWith(ctx.app, ctx.adminToken, first);
    const build = await trigger(ctx.app, ctx.adminToken, projectId);
    const put = await injectAs(ctx.app, ctx.adminToken, {
      method: 'PUT',
      url: `/projects/${projectId}/pipeline`,
      payload: { stages: ['build'], jobs: { new: { stage: 'build' } } },
    });
    expect(put.statusCode, put.body).toBe(200);
    expect(Object.keys(await statusesOf(ctx.app, build.id))).toEqual(['old']);
    expect(Object.keys(await statusesOf(ctx.app, (await trigger(ctx.app, ctx.adminToken, projectId)).id))).toEqual(['new']);

    const canceled = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/builds/${build.id}/cancel` });
    expect(canceled.json<BuildJson>().status).toBe('canceled');
    expect(await statusesOf(ctx.app, build.id)).toEqual({ old: 'canceled' });
    const retried = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/builds/${build.id}/retry` });
    expect(retried.statusCode, retried.body).toBe(201);
    expect(await statusesOf(ctx.app, retried.json<BuildJson>().id)).toEqual({ old: 'queued' });
    // /status counts jobs across builds: the retry's and the second build's, both queued (no workers here).
    const status = await ctx.app.inject({ method: 'GET', url: '/status' });
    expect(status.json<{ jobs: unknown }>().jobs).toEqual({ queued: 2, running: 0 });
    expect(TERMINAL).toContain(canceled.json<BuildJson>().status);
  });
});
