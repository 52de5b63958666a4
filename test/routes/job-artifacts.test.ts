/**
 * A job's artifacts through HTTP: GET /jobs/:id/artifacts and GET /jobs/:id/artifacts/:name, on builds that the job
 * engine's workers really run (BUILD_TIME_SCALE=0): what a job with `artifacts: true` stores, as the build's list
 * shows it too, and only once that job succeeded.
 */
import { createHash } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { beforeAll, describe, expect, it } from 'vitest';
import type { components } from '../../clients/typescript/usine.js';
import { packArtifact } from '../../src/builds/artifact.js';
import type { PipelineDefinition } from '../../src/pipelines/definition.js';
import { filesOf } from '../builds/untar.js';
import { injectAs, login, problemOf, testDb, uniqueName, useTestApp, waitForBuild, type BuildJson, type TestContext } from '../helper.js';

type JobJson = components['schemas']['Job'];
type ArtifactJson = components['schemas']['Artifact'];

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$/;
const SHA = 'a94a8fe5ccb19ba61c4c0873d391e987982fbbd3';

/**
 * compile (artifacts) → unit × 2 (artifacts) and lint (none) → release (manual). Nothing fails (BUILD_FAIL_RATE 0, no
 * `fail_rate`): the build succeeds once its jobs but the manual one are over.
 */
const PIPELINE: PipelineDefinition = {
  stages: ['build', 'test', 'deploy'],
  jobs: {
    compile: { stage: 'build', script: ['make'], artifacts: true },
    unit: { stage: 'test', needs: ['compile'], parallel: 2, artifacts: true },
    lint: { stage: 'test', needs: ['compile'] },
    release: { stage: 'deploy', when: 'manual', artifacts: true },
  },
};

/** compile (artifacts) succeeds, then unit fails: the build fails, compile's file stays the job's. */
const FAILING: PipelineDefinition = {
  stages: ['build', 'test'],
  jobs: {
    compile: { stage: 'build', artifacts: true },
    unit: { stage: 'test', needs: ['compile'], fail_rate: 1, artifacts: true },
  },
};

function expectNotFound(response: LightMyRequestResponse, detail?: string | RegExp): void {
  expect(response.statusCode, response.body).toBe(404);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const problem = problemOf(response);
  expect(problem.error).toBe('not_found');
  if (typeof detail === 'string') expect(problem.detail).toBe(detail);
  else if (detail) expect(problem.detail).toMatch(detail);
}

function helpers(ctx: TestContext) {
  const get = (url: string, headers: Record<string, string> = {}, token = ctx.adminToken) => injectAs(ctx.app, token, { method: 'GET', url, headers });

  async function project(pipeline?: PipelineDefinition): Promise<{ id: number; name: string; slug: string }> {
    const name = `Job Artifacts ${uniqueName('P')}`;
    const created = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: '/projects', payload: { name, repo: 'https://github.com/demo/job-artifacts' } });
    expect(created.statusCode, created.body).toBe(201);
    const { id } = created.json<{ id: number }>();
    if (pipeline) {
      const put = await injectAs(ctx.app, ctx.adminToken, { method: 'PUT', url: `/projects/${id}/pipeline`, payload: pipeline });
      expect(put.statusCode, put.body).toBe(200);
    }
    return { id, name, slug: name.toLowerCase().replaceAll(' ', '-') };
  }

  /** Triggers a build and waits for it to finish; its jobs by name (current attempts). */
  async function finishedBuild(projectId: number): Promise<{ build: BuildJson; jobs: Record<string, JobJson> }> {
    const response = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/projects/${projectId}/builds`, payload: { branch: 'main', commit_sha: SHA } });
    expect(response.statusCode, response.body).toBe(201);
    const build = await waitForBuild<BuildJson>(ctx.app, ctx.adminToken, response.json<BuildJson>().id);
    return { build, jobs: await jobsOf(build.id) };
  }

  async function jobsOf(buildId: number): Promise<Record<string, JobJson>> {
    const listed = await get(`/builds/${buildId}/jobs`);
    expect(listed.statusCode, listed.body).toBe(200);
    return Object.fromEntries(listed.json<{ items: JobJson[] }>().items.filter((job) => !job.retried).map((job) => [job.name, job]));
  }

  async function artifactsOf(jobId: number, token = ctx.adminToken): Promise<ArtifactJson[]> {
    const response = await get(`/jobs/${jobId}/artifacts`, {}, token);
    expect(response.statusCode, response.body).toBe(200);
    return response.json<{ items: ArtifactJson[] }>().items;
  }

  const job = (jobs: Record<string, JobJson>, name: string): JobJson => {
    const found = jobs[name];
    if (!found) throw new Error(`no job ${name} among ${Object.keys(jobs).join(', ')}`);
    return found;
  };

  return { get, project, finishedBuild, jobsOf, artifactsOf, job };
}

describe(`a job's artifacts (${testDb})`, () => {
  const ctx = useTestApp({ BUILD_TIME_SCALE: '0', BUILD_FAIL_RATE: '0' });
  const { get, project, finishedBuild, jobsOf, artifactsOf, job } = helpers(ctx);
  let proj: { id: number; name: string; slug: string };
  let build: BuildJson;
  let jobs: Record<string, JobJson>;
  let compiled: ArtifactJson;

  beforeAll(async () => {
    proj = await project(PIPELINE);
    ({ build, jobs } = await finishedBuild(proj.id));
    expect(build.status).toBe('success');
    expect(Object.fromEntries(Object.entries(jobs).map(([name, j]) => [name, j.status]))).toEqual({
      compile: 'success',
      'unit 1/2': 'success',
      'unit 2/2': 'success',
      lint: 'success',
      release: 'manual',
    });
  });

  it('lists the .tar.gz a successful job with `artifacts: true` stored, named after its build and itself', async () => {
    const compile = job(jobs, 'compile');
    const items = await artifactsOf(compile.id);
    expect(items).toEqual([
      {
        name: `${proj.slug}-${build.number}-compile.tar.gz`,
        content_type: 'application/gzip',
        size_bytes: expect.any(Number),
        sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        created_at: expect.stringMatching(ISO_UTC),
        download_url: `/jobs/${compile.id}/artifacts/${proj.slug}-${build.number}-compile.tar.gz`,
      },
    ]);
    compiled = items[0] as ArtifactJson;
    expect(compiled.size_bytes).toBeGreaterThan(0);
  });

  it('gives each copy of a parallel job its own file, and a job without `artifacts` none', async () => {
    const names = await Promise.all(['unit 1/2', 'unit 2/2'].map(async (name) => (await artifactsOf(job(jobs, name).id)).map((a) => a.name)));
    expect(names).toEqual([[`${proj.slug}-${build.number}-unit-1-2.tar.gz`], [`${proj.slug}-${build.number}-unit-2-2.tar.gz`]]);
    expect(await artifactsOf(job(jobs, 'lint').id)).toEqual([]);
  });

  it('lists under the build the same files, with the same bytes, as under the jobs that stored them', async () => {
    const listed = await get(`/builds/${build.id}/artifacts`);
    expect(listed.statusCode, listed.body).toBe(200);
    const byName = Object.fromEntries(listed.json<{ items: ArtifactJson[] }>().items.map((a) => [a.name, a.sha256]));
    expect(Object.keys(byName).sort()).toEqual(
      [`${proj.slug}-${build.number}-compile.tar.gz`, `${proj.slug}-${build.number}-unit-1-2.tar.gz`, `${proj.slug}-${build.number}-unit-2-2.tar.gz`].sort(),
    );
    expect(byName[compiled.name]).toBe(compiled.sha256);
    const fromBuild = await get(`/builds/${build.id}/artifacts/${compiled.name}`);
    const fromJob = await get(compiled.download_url);
    expect(fromJob.rawPayload.equals(fromBuild.rawPayload)).toBe(true);
  });

  it('downloads the bytes with gzip type, attachment name, ETag, length and immutable caching', async () => {
    const response = await get(compiled.download_url);
    expect(response.statusCode, response.body).toBe(200);
    const sha256 = createHash('sha256').update(response.rawPayload).digest('hex');
    expect(sha256).toBe(compiled.sha256);
    expect(response.rawPayload.length).toBe(compiled.size_bytes);
    expect(response.headers['content-type']).toBe('application/gzip');
    expect(response.headers['content-disposition']).toBe(`attachment; filename="${compiled.name}"`);
    expect(response.headers.etag).toBe(`"${sha256}"`);
    expect(Number(response.headers['content-length'])).toBe(compiled.size_bytes);
    expect(response.headers['cache-control']).toBe('private, max-age=31536000, immutable');
  });

  it('is a gzip tar of build-info.json (its build and project) and build.log (the build’s log up to the job’s end)', async () => {
    const files = filesOf((await get(compiled.download_url)).rawPayload);
    expect(Object.keys(files).sort()).toEqual(['build-info.json', 'build.log']);
    const info = JSON.parse(files['build-info.json'] ?? '{}') as Record<string, unknown>;
    expect(info).toMatchObject({
      project: { id: proj.id, name: proj.name, repo: 'https://github.com/demo/job-artifacts' },
      build: { id: build.id, number: build.number, branch: 'main', commit_sha: SHA },
      duration_s: expect.any(Number),
      built_by: job(jobs, 'compile').worker,
      packaged_at: expect.stringMatching(ISO_UTC),
    });
    const log = files['build.log'] ?? '';
    // The compile job's lines (each prefixed with its name in the build's log), and nothing of the jobs after it.
    expect(log).toContain('[compile] ');
    expect(log).toContain('$ make');
    expect(log).not.toContain('[unit 1/2] ');
    const final = (await get(`/builds/${build.id}`)).json<BuildJson>();
    expect(final.logs.startsWith(log)).toBe(true);
    // The job's own log says what it stored.
    const jobLog = await get(`/jobs/${job(jobs, 'compile').id}/logs`);
    expect(jobLog.body).toContain(`Artifact ${compiled.name}: ${compiled.size_bytes} bytes, sha256 ${compiled.sha256}`);
  });

  it.each([
    ['the exact tag', (tag: string) => tag],
    ['a list holding the weak form', (tag: string) => `"0000", W/${tag}`],
    ['*', () => '*'],
  ])('answers 304 without a body to If-None-Match with %s', async (_label, header) => {
    const response = await get(compiled.download_url, { 'if-none-match': header(`"${compiled.sha256}"`) });
    expect(response.statusCode).toBe(304);
    expect(response.rawPayload.length).toBe(0);
    expect(response.headers['content-length']).toBeUndefined();
    expect(response.headers['content-type']).toBeUndefined();
    expect(response.headers.etag).toBe(`"${compiled.sha256}"`);
    expect(response.headers['cache-control']).toBe('private, max-age=31536000, immutable');
  });

  it('sends the file when If-None-Match names another tag', async () => {
    const response = await get(compiled.download_url, { 'if-none-match': `"${'0'.repeat(64)}", ${compiled.sha256}` });
    expect(response.statusCode).toBe(200);
    expect(response.rawPayload.length).toBe(compiled.size_bytes);
  });

  it('answers HEAD with the headers and no body', async () => {
    const response = await injectAs(ctx.app, ctx.adminToken, { method: 'HEAD', url: compiled.download_url });
    expect(response.statusCode).toBe(200);
    expect(response.headers.etag).toBe(`"${compiled.sha256}"`);
    expect(Number(response.headers['content-length'])).toBe(compiled.size_bytes);
    expect(response.rawPayload.length).toBe(0);
  });

  it('404s a job that does not exist, on both routes', async () => {
    for (const url of ['/jobs/999999/artifacts', '/jobs/999999/artifacts/x.tar.gz']) expectNotFound(await get(url), 'Job 999999 does not exist');
  });

  it('404s a name the job did not store: another job’s file, an unknown name, another case, path tricks', async () => {
    const lint = job(jobs, 'lint');
    const compile = job(jobs, 'compile');
    const unit = job(jobs, 'unit 1/2');
    expectNotFound(await get(`/jobs/${lint.id}/artifacts/${compiled.name}`), `Job ${lint.id} (lint) has no artifact named "${compiled.name}"`);
    expectNotFound(await get(`/jobs/${unit.id}/artifacts/${compiled.name}`), `Job ${unit.id} (unit 1/2) has no artifact named "${compiled.name}"`);
    for (const name of ['nope.tar.gz', compiled.name.toUpperCase(), encodeURIComponent(`../${compiled.name}`), '..%2F..%2Fetc%2Fpasswd']) {
      expectNotFound(await get(`/jobs/${compile.id}/artifacts/${name}`), /^Job \d+ \(compile\) has no artifact named /);
    }
  });

  it('shows nothing of a job that has not succeeded, even if a file of its name is stored', async () => {
    // The manual job has not run; a file stored for it anyway (straight in the database) stays hidden.
    const release = job(jobs, 'release');
    const packed = packArtifact({
      build: { id: build.id, number: build.number, branch: 'main', commit_sha: SHA, triggered_by: null, retry_of: null, created_at: new Date(), started_at: null },
      project: { id: proj.id, name: proj.name, repo: 'https://github.com/demo/job-artifacts' },
      duration_s: 1,
      log: 'not yet\n',
      builtBy: 'test',
      now: new Date(),
    });
    const { database } = ctx.app;
    await database.db.insert(database.tables.artifacts).values({ build_id: build.id, job_id: release.id, ...packed, name: 'release.tar.gz' });
    expect(await artifactsOf(release.id)).toEqual([]);
    expectNotFound(await get(`/jobs/${release.id}/artifacts/release.tar.gz`), `Job ${release.id} (release) is manual: only successful jobs have artifacts`);
  });

  it('hands the file to a retried job’s new attempt once it stores it again', async () => {
    const old = job(jobs, 'compile');
    const retried = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/jobs/${old.id}/retry` });
    expect(retried.statusCode, retried.body).toBe(201);
    const attempt = retried.json<JobJson>();
    const deadline = Date.now() + 10_000;
    while ((await get(`/jobs/${attempt.id}`)).json<JobJson>().status !== 'success') {
      if (Date.now() > deadline) throw new Error(`job ${attempt.id} did not succeed in time`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const now = await artifactsOf(attempt.id);
    expect(now.map((a) => a.name)).toEqual([compiled.name]);
    expect(now[0]?.download_url).toBe(`/jobs/${attempt.id}/artifacts/${compiled.name}`);
    expect(now[0]?.sha256).not.toBe(compiled.sha256);
    expect(await artifactsOf(old.id)).toEqual([]);
    expectNotFound(await get(compiled.download_url), `Job ${old.id} (compile) has no artifact named "${compiled.name}"`);
    expect((await jobsOf(build.id)).compile?.id).toBe(attempt.id);
  });

  it('lets a viewer list and download', async () => {
    const username = uniqueName('viewer');
    const created = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: '/users', payload: { username, password: 'viewer-password-1', role: 'viewer' } });
    expect(created.statusCode, created.body).toBe(201);
    const token = await login(ctx.app, username, 'viewer-password-1');
    const unit = job(jobs, 'unit 2/2');
    const [item] = await artifactsOf(unit.id, token);
    expect(item?.name).toBe(`${proj.slug}-${build.number}-unit-2-2.tar.gz`);
    const response = await get(item?.download_url ?? '', {}, token);
    expect(response.statusCode).toBe(200);
    expect(response.headers.etag).toBe(`"${item?.sha256}"`);
    expect(createHash('sha256').update(response.rawPayload).digest('hex')).toBe(item?.sha256);
  });

  it('401s without a token, on both routes', async () => {
    const unit = job(jobs, 'unit 1/2');
    for (const url of [`/jobs/${unit.id}/artifacts`, `/jobs/${unit.id}/artifacts/${proj.slug}-${build.number}-unit-1-2.tar.gz`]) {
      const response = await ctx.app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(401);
      expect(problemOf(response).error).toBe('unauthorized');
      expect(response.headers.etag).toBeUndefined();
    }
  });

  it('400s invalid job ids', async () => {
    for (const url of ['/jobs/0/artifacts', '/jobs/abc/artifacts', '/jobs/0/artifacts/x', '/jobs/2147483648/artifacts/x']) {
      const response = await get(url);
      expect(response.statusCode, url).toBe(400);
      expect(problemOf(response).error).toBe('validation_error');
    }
  });

  it('goes away with its project', async () => {
    const doomed = await project(FAILING);
    const { jobs: doomedJobs } = await finishedBuild(doomed.id);
    const compile = job(doomedJobs, 'compile');
    const [item] = await artifactsOf(compile.id);
    expect(item).toBeDefined();
    const deleted = await injectAs(ctx.app, ctx.adminToken, { method: 'DELETE', url: `/projects/${doomed.id}` });
    expect(deleted.statusCode).toBe(204);
    expectNotFound(await get(`/jobs/${compile.id}/artifacts`), `Job ${compile.id} does not exist`);
    expectNotFound(await get(item?.download_url ?? ''), `Job ${compile.id} does not exist`);
  });
});

describe(`a job's artifacts in a build that failed (${testDb})`, () => {
  const ctx = useTestApp({ BUILD_TIME_SCALE: '0', BUILD_FAIL_RATE: '0' });
  const { get, project, finishedBuild, artifactsOf, job } = helpers(ctx);

  it('keeps the file of a job that succeeded (the build lists none), and has none for the job that failed', async () => {
    const proj = await project(FAILING);
    const { build, jobs } = await finishedBuild(proj.id);
    expect(build.status).toBe('fail');
    expect([job(jobs, 'compile').status, job(jobs, 'unit').status]).toEqual(['success', 'fail']);
    expect((await get(`/builds/${build.id}/artifacts`)).json()).toEqual({ items: [] });

    const [item] = await artifactsOf(job(jobs, 'compile').id);
    expect(item?.name).toBe(`${proj.slug}-${build.number}-compile.tar.gz`);
    const response = await get(item?.download_url ?? '');
    expect(response.statusCode).toBe(200);
    expect(Object.keys(filesOf(response.rawPayload)).sort()).toEqual(['build-info.json', 'build.log']);

    const unit = job(jobs, 'unit');
    expect(await artifactsOf(unit.id)).toEqual([]);
    expectNotFound(
      await get(`/jobs/${unit.id}/artifacts/${proj.slug}-${build.number}-unit.tar.gz`),
      `Job ${unit.id} (unit) is fail: only successful jobs have artifacts`,
    );
  });
});

describe(`the default pipeline's artifact, by job (${testDb})`, () => {
  const ctx = useTestApp({ BUILD_TIME_SCALE: '0', BUILD_FAIL_RATE: '0' });
  const { get, project, finishedBuild, artifactsOf, job } = helpers(ctx);

  it('is the build’s own file, stored by the package job under the build’s name; the other jobs have none', async () => {
    const proj = await project();
    const { build, jobs } = await finishedBuild(proj.id);
    expect(build.status).toBe('success');
    expect(Object.keys(jobs)).toEqual(['checkout', 'install', 'test', 'package']);
    for (const name of ['checkout', 'install', 'test']) expect(await artifactsOf(job(jobs, name).id), name).toEqual([]);

    const built = (await get(`/builds/${build.id}/artifacts`)).json<{ items: ArtifactJson[] }>().items;
    const packaged = await artifactsOf(job(jobs, 'package').id);
    expect(packaged.map((a) => a.name)).toEqual([`${proj.slug}-${build.number}.tar.gz`]);
    expect(built.map(({ download_url: _url, ...rest }) => rest)).toEqual(packaged.map(({ download_url: _url, ...rest }) => rest));
    const response = await get(packaged[0]?.download_url ?? '');
    expect(response.statusCode).toBe(200);
    expect(createHash('sha256').update(response.rawPayload).digest('hex')).toBe(built[0]?.sha256);
  });
});
