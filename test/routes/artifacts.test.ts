import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { filesOf } from '../builds/untar.js';
import { injectAs, login, problemOf, uniqueName, useTestApp, waitForBuild, type BuildJson, type TestContext } from '../helper.js';


interface ArtifactJson {
  name: string;
  content_type: string;
  size_bytes: number;
  sha256: string;
  created_at: string;
  download_url: string;
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$/;
const SHA = 'a94a8fe5ccb19ba61c4c0873d391e987982fbbd3';

async function createProject(ctx: TestContext, name: string) {
  const response = await injectAs(ctx.app, ctx.adminToken, {
    method: 'POST',
    url: '/projects',
    payload: { name, repo: 'https://github.com/demo/artifacts' },
  });
  expect(response.statusCode, response.body).toBe(201);
  return response.json<{ id: number; name: string; repo: string }>();
}

/** Triggers a build and waits until it has finished. */
async function finishedBuild(ctx: TestContext, projectId: number, payload: object = {}): Promise<BuildJson> {
  const response = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/projects/${projectId}/builds`, payload });
  expect(response.statusCode, response.body).toBe(201);
  const queued = response.json<BuildJson>();
  return waitForBuild<BuildJson>(ctx.app, ctx.adminToken, queued.id);
}

const list = (ctx: TestContext, buildId: number | string, token = ctx.adminToken) =>
  injectAs(ctx.app, token, { method: 'GET', url: `/builds/${buildId}/artifacts` });

const download = (ctx: TestContext, url: string, headers: Record<string, string> = {}) =>
  injectAs(ctx.app, ctx.adminToken, { method: 'GET', url, headers });

describe('artifacts of a successful build', () => {
  const ctx = useTestApp({ BUILD_TIME_SCALE: '0', BUILD_FAIL_RATE: '0' });
  const projectName = `Artifact Proj ${uniqueName('X')}`;
  const slug = projectName.toLowerCase().replaceAll(' ', '-');
  let project: { id: number; name: string; repo: string };
  let build: BuildJson;
  let artifact: ArtifactJson;

  it('lists the build’s .tar.gz with its size, sha256 and download URL', async () => {
    project = await createProject(ctx, projectName);
    build = await finishedBuild(ctx, project.id, { branch: 'release/1.2', commit_sha: SHA });
    expect(build.status).toBe('success');
    const response = await list(ctx, build.id);
    expect(response.statusCode, response.body).toBe(200);
    const { items } = response.json<{ items: ArtifactJson[] }>();
    expect(items).toHaveLength(1);
    artifact = items[0] as ArtifactJson;
    expect(artifact).toEqual({
      name: `${slug}-${build.number}.tar.gz`,
      content_type: 'application/gzip',
      size_bytes: expect.any(Number),
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      created_at: expect.stringMatching(ISO_UTC),
      download_url: `/builds/${build.id}/artifacts/${slug}-${build.number}.tar.gz`,
    });
    expect(artifact.size_bytes).toBeGreaterThan(0);
  });

  it('downloads the bytes with gzip type, attachment name, ETag, length and cache headers', async () => {
    const response = await download(ctx, artifact.download_url);
    expect(response.statusCode, response.body).toBe(200);
    const bytes = response.rawPayload;
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    expect(sha256).toBe(artifact.sha256);
    expect(bytes.length).toBe(artifact.size_bytes);
    expect(response.headers['content-type']).toBe('application/gzip');
    expect(response.headers['content-disposition']).toBe(`attachment; filename="${artifact.name}"`);
    expect(response.headers.etag).toBe(`"${sha256}"`);
    expect(Number(response.headers['content-length'])).toBe(artifact.size_bytes);
    expect(response.headers['cache-control']).toMatch(/^private, max-age=\d+/);
  });

  it('holds build-info.json describing the build and build.log, a prefix of the final log', async () => {
    const files = filesOf((await download(ctx, artifact.download_url)).rawPayload);
    expect(Object.keys(files).sort()).toEqual(['build-info.json', 'build.log']);
    const info = JSON.parse(files['build-info.json'] ?? '{}') as Record<string, unknown>;
    expect(info).toMatchObject({
      project: { id: project.id, name: project.name, repo: project.repo },
      build: { id: build.id, number: build.number, branch: 'release/1.2', commit_sha: SHA, triggered_by: 'admin', retry_of: null },
      duration_s: expect.any(Number),
      built_by: expect.any(String),
      packaged_at: expect.stringMatching(ISO_UTC),
    });
    const final = (await injectAs(ctx.app, ctx.adminToken, { method: 'GET', url: `/builds/${build.id}` })).json<BuildJson>();
    const log = files['build.log'] ?? '';
    expect(log.length).toBeGreaterThan(0);
    expect(final.logs.startsWith(log)).toBe(true);
    expect(final.logs).toContain(artifact.sha256);
  });

  it.each([
    ['the exact tag', (tag: string) => tag],
    ['a list holding the tag', (tag: string) => `"0000", ${tag} , "ffff"`],
    ['*', () => '*'],
    ['the weak form W/"…"', (tag: string) => `W/${tag}`],
    ['a list holding the weak form', (tag: string) => `W/"nope",W/${tag}`],
  ])('answers 304 without a body to If-None-Match with %s', async (_label, header) => {
    const response = await download(ctx, artifact.download_url, { 'if-none-match': header(`"${artifact.sha256}"`) });
    expect(response.statusCode).toBe(304);
    expect(response.rawPayload.length).toBe(0);
    expect(response.headers['content-length']).toBeUndefined();
    expect(response.headers['content-type']).toBeUndefined();
    expect(response.headers['cache-control']).toMatch(/^private, max-age=\d+/);
    expect(response.headers.etag).toBe(`"${artifact.sha256}"`);
  });

  it.each([
    ['another tag', () => '"0000"'],
    ['the sha256 unquoted', (sha: string) => sha],
    ['a list of other tags', () => 'W/"abc", "def"'],
  ])('sends the file when If-None-Match is %s', async (_label, header) => {
      const response = await download(ctx, artifact.download_url, { 'if-none-match': header(artifact.sha256) });
      expect(response.statusCode).toBe(200);
      expect(response.rawPayload.length).toBe(artifact.size_bytes);
  });

  it('404s an unknown name, a name of another build and path tricks', async () => {
    const other = await finishedBuild(ctx, project.id);
    for (const url of [
      `/builds/${build.id}/artifacts/nope.tar.gz`,
      `/builds/${other.id}/artifacts/${artifact.name}`,
      `/builds/${build.id}/artifacts/..%2F..%2Fetc%2Fpasswd`,
      `/builds/${build.id}/artifacts/%2E%2E%2F${artifact.name}`,
      `/builds/${build.id}/artifacts/../x`,
      `/builds/${build.id}/artifacts/${encodeURIComponent(`../${artifact.name}`)}`,
      `/builds/${build.id}/artifacts/${artifact.name.toUpperCase()}`,
    ]) {
      const response = await download(ctx, url);
      expect(response.statusCode, url).toBe(404);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(problemOf(response).error).toBe('not_found');
    }
  });

  it('answers HEAD with the headers and no body', async () => {
    const response = await injectAs(ctx.app, ctx.adminToken, { method: 'HEAD', url: artifact.download_url });
    expect(response.statusCode).toBe(200);
    expect(response.headers.etag).toBe(`"${artifact.sha256}"`);
    expect(Number(response.headers['content-length'])).toBe(artifact.size_bytes);
    expect(response.rawPayload.length).toBe(0);
  });

  it('404s a build that does not exist, on both routes', async () => {
    for (const url of ['/builds/999999/artifacts', '/builds/999999/artifacts/x.tar.gz']) {
      const response = await download(ctx, url);
      expect(response.statusCode, url).toBe(404);
      expect(problemOf(response)).toMatchObject({ error: 'not_found', detail: 'Build 999999 does not exist' });
    }
  });

  it('400s invalid build ids', async () => {
    for (const url of ['/builds/0/artifacts', '/builds/abc/artifacts', '/builds/0/artifacts/x', '/builds/2147483648/artifacts/x']) {
      const response = await download(ctx, url);
      expect(response.statusCode, url).toBe(400);
      expect(problemOf(response).error).toBe('validation_error');
    }
  });

  it('404s names up to the router limit and refuses longer ones', async () => {
    expect((await download(ctx, `/builds/${build.id}/artifacts/${'a'.repeat(200)}`)).statusCode).toBe(404);
    expect((await download(ctx, `/builds/${build.id}/artifacts/${'a'.repeat(201)}`)).statusCode).toBe(414);
  });

  it('401s without a token, on both routes', async () => {
    for (const url of [`/builds/${build.id}/artifacts`, artifact.download_url]) {
      const response = await ctx.app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(401);
      expect(problemOf(response).error).toBe('unauthorized');
    }
  });

  it('lets a viewer list and download', async () => {
    const username = uniqueName('viewer');
    const created = await injectAs(ctx.app, ctx.adminToken, {
      method: 'POST',
      url: '/users',
      payload: { username, password: 'viewer-password-1', role: 'viewer' },
    });
    expect(created.statusCode, created.body).toBe(201);
    const token = await login(ctx.app, username, 'viewer-password-1');
    expect((await list(ctx, build.id, token)).statusCode).toBe(200);
    const response = await injectAs(ctx.app, token, { method: 'GET', url: artifact.download_url });
    expect(response.statusCode).toBe(200);
    expect(response.headers.etag).toBe(`"${artifact.sha256}"`);
  });

  it('documents the download as application/gzip binary in the OpenAPI document', async () => {
    const document = (await ctx.app.inject({ method: 'GET', url: '/apidocs/json' })).json<{
      paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>>;
    }>();
    const operation = document.paths['/builds/{id}/artifacts/{name}']?.get;
    expect(operation?.responses['200']?.content?.['application/gzip']?.schema).toMatchObject({ type: 'string', format: 'binary' });
    expect(operation?.responses['304']).toBeDefined();
    expect(operation?.responses['304']?.content).toBeUndefined();
    expect(operation?.responses['404']?.content?.['application/problem+json']).toBeDefined();
    expect(document.paths['/builds/{id}/artifacts']?.get?.responses['200']?.content?.['application/json']).toBeDefined();
  });

  it('goes away with its project', async () => {
    const doomed = await createProject(ctx, uniqueName('Doomed'));
    const doomedBuild = await finishedBuild(ctx, doomed.id);
    const [item] = (await list(ctx, doomedBuild.id)).json<{ items: ArtifactJson[] }>().items;
    expect(item).toBeDefined();
    const deleted = await injectAs(ctx.app, ctx.adminToken, { method: 'DELETE', url: `/projects/${doomed.id}` });
    expect(deleted.statusCode).toBe(204);
    expect((await download(ctx, item?.download_url ?? '')).statusCode).toBe(404);
  });
});

describe('artifacts of a failed build', () => {
  const ctx = useTestApp({ BUILD_TIME_SCALE: '0', BUILD_FAIL_RATE: '1' });

  it('lists none and downloads nothing', async () => {
    const project = await createProject(ctx, uniqueName('FailProj'));
    const build = await finishedBuild(ctx, project.id);
    expect(build.status).toBe('fail');
    const listed = await list(ctx, build.id);
    expect(listed.statusCode, listed.body).toBe(200);
    expect(listed.json()).toEqual({ items: [] });
    const response = await download(ctx, `/builds/${build.id}/artifacts/${project.name.toLowerCase()}-${build.number}.tar.gz`);
    expect(response.statusCode).toBe(404);
    expect(problemOf(response)).toMatchObject({ error: 'not_found', detail: `Build ${build.id} is fail: only successful builds have artifacts` });
  });
});
