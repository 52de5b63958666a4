import type { LightMyRequestResponse } from 'fastify';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { injectAs, login, problemOf, testDb, uniqueName, useTestApp } from '../helper.js';

const EXAMPLE_YAML = `stages: [build, test, deploy]
jobs:
  compile:   { stage: build, script: ["npm ci", "npm run build"], duration_s: [2, 4] }
  unit:      { stage: test, needs: [compile], fail_rate: 0.2, artifacts: true }
  lint:      { stage: test, needs: [compile], allow_failure: true }
  e2e:       { stage: test, needs: [compile], parallel: 3 }
  release:   { stage: deploy, when: manual }
`;
const EXAMPLE = parse(EXAMPLE_YAML) as Record<string, unknown>;

interface LintJson {
  valid: boolean;
  errors: { path: string; message: string }[];
  jobs: { name: string; stage: string; needs: string[]; when: string; allow_failure: boolean; parallel: { index: number; total: number } | null }[];
}

describe(`pipeline definitions (${testDb})`, () => {
  const ctx = useTestApp({ BUILD_FAIL_RATE: '0.5' });
  let projectId: number;
  let viewerToken: string;

  beforeAll(async () => {
    const created = await injectAs(ctx.app, ctx.adminToken, {
      method: 'POST',
      url: '/projects',
      payload: { name: uniqueName('pipe'), repo: 'https://github.com/usine/pipelines' },
    });
    projectId = created.json<{ id: number }>().id;
    const username = uniqueName('viewer');
    await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: '/users', payload: { username, password: 'viewer-password-1', role: 'viewer' } });
    viewerToken = await login(ctx.app, username, 'viewer-password-1');
  });

  const put = (payload: unknown, headers: Record<string, string> = {}, token = ctx.adminToken) =>
    injectAs(ctx.app, token, { method: 'PUT', url: `/projects/${projectId}/pipeline`, payload: payload as string, headers });
  const get = (headers: Record<string, string> = {}, token = ctx.adminToken, id = projectId) =>
    injectAs(ctx.app, token, { method: 'GET', url: `/projects/${id}/pipeline`, headers });
  const lint = (payload: unknown, headers: Record<string, string> = {}) =>
    injectAs(ctx.app, viewerToken, { method: 'POST', url: '/pipelines/lint', payload: payload as string, headers });
  const yaml = { 'content-type': 'application/yaml' };

  function expectProblem(response: LightMyRequestResponse, status: number, error: string) {
    expect(response.statusCode, response.body).toBe(status);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(problemOf(response).error).toBe(error);
    return problemOf(response);
  }

  it('answers the default pipeline, saying so, for a project without a definition', async () => {
    await injectAs(ctx.app, ctx.adminToken, { method: 'DELETE', url: `/projects/${projectId}/pipeline` });
    const response = await get();
    expect(response.statusCode).toBe(200);
    expect(response.headers['x-pipeline-source']).toBe('default');
    const definition = response.json<{ stages: string[]; jobs: Record<string, { artifacts?: boolean; fail_rate: number }> }>();
    expect(definition.stages).toEqual(['checkout', 'install', 'test', 'package']);
    expect(definition.jobs.package?.artifacts).toBe(true);
    // Per-job rates that make a build fail with BUILD_FAIL_RATE (0.5), not 1 − 0.5⁴.
    const passes = Object.values(definition.jobs).reduce((p, job) => p * (1 - job.fail_rate), 1);
    expect(1 - passes).toBeCloseTo(0.5, 3);
  });

  it('round-trips YAML: PUT as YAML, GET as YAML and as JSON', async () => {
    const saved = await put(EXAMPLE_YAML, yaml);
    expect(saved.statusCode, saved.body).toBe(200);
    expect(saved.headers['x-pipeline-source']).toBe('project');
    expect(saved.json()).toEqual(EXAMPLE);

    for (const accept of ['application/yaml', 'application/x-yaml', 'text/yaml', 'application/json;q=0.5, application/yaml']) {
      const asYaml = await get({ accept });
      expect(asYaml.statusCode).toBe(200);
      expect(asYaml.headers['content-type'], accept).toMatch(/^application\/yaml/);
      expect(asYaml.headers['x-pipeline-source']).toBe('project');
      expect(parse(asYaml.body)).toEqual(EXAMPLE);
    }
    for (const accept of [undefined, 'application/json', '*/*', 'text/html', 'application/yaml;q=0.1, application/json']) {
      const asJson = await get(accept ? { accept } : {});
      expect(asJson.headers['content-type'], accept).toMatch(/^application\/json/);
      expect(asJson.json()).toEqual(EXAMPLE);
    }
    // Key order (the order of jobs within a stage) survives the database, jsonb would have sorted it.
    expect(Object.keys((await get()).json<{ jobs: object }>().jobs)).toEqual(['compile', 'unit', 'lint', 'e2e', 'release']);
  });

  it('round-trips JSON, and answers YAML to a JSON PUT when Accept asks for it', async () => {
    const definition = { stages: ['only'], jobs: { solo: { stage: 'only', needs: [], script: ['echo "hi: there"'] } } };
    const saved = await put(definition, { accept: 'application/yaml' });
    expect(saved.statusCode).toBe(200);
    expect(parse(saved.body)).toEqual(definition);
    expect((await get()).json()).toEqual(definition);
  });

  it('DELETE goes back to the default pipeline', async () => {
    await put(EXAMPLE);
    const deleted = await injectAs(ctx.app, ctx.adminToken, { method: 'DELETE', url: `/projects/${projectId}/pipeline` });
    expect(deleted.statusCode).toBe(204);
    expect((await get()).headers['x-pipeline-source']).toBe('default');
  });

  it('refuses an invalid definition with 400 and every problem with its path, and keeps the one stored', async () => {
    await put(EXAMPLE);
    const response = await put(
      `stages: [build, test, test]
jobs:
  compile: {stage: build, duration_s: [4, 2]}
  unit: {stage: test, needs: [compyle, deploy_it], colour: red}
  lint: {stage: tset, when: sometimes}
  deploy_it: {stage: build, needs: [unit]}
  a: {stage: test, needs: [b]}
  b: {stage: test, needs: [a]}
  e2e: {stage: test, parallel: 2}
  e2e 1/2: {stage: test}
  compile: {stage: build}
`,
      yaml,
    );
    const problem = expectProblem(response, 400, 'validation_error');
    expect(problem.errors).toEqual(
      expect.arrayContaining([
        { path: '/body/jobs/compile', message: 'job `compile` is defined twice (lines 3 and 11)' },
        { path: '/body/stages/2', message: 'stage `test` is already listed at /stages/1' },
        { path: '/body/jobs/unit/colour', message: 'is not an accepted field' },
        { path: '/body/jobs/lint/when', message: 'must be one of on_success, on_failure, always, manual' },
        { path: '/body/jobs/lint/stage', message: 'unknown stage `tset`: stages are `build`, `test`' },
        { path: '/body/jobs/unit/needs/0', message: 'unknown job `compyle`' },
        { path: '/body/jobs/deploy_it/needs/0', message: '`unit` is in the later stage `test`: a job can only need jobs of its own or earlier stages' },
        { path: '/body/jobs/a/needs/0', message: 'needs form a cycle: `a` → `b` → `a`' },
        { path: '/body/jobs/e2e 1~12', message: 'job `e2e 1/2` has the name of a copy of `e2e` (parallel: 2)' },
      ]),
    );
    expect((await get()).json()).toEqual(EXAMPLE);
  });

  it('refuses limits: too many jobs after parallel, a long name, min above max', async () => {
    const jobs: Record<string, unknown> = {};
    for (let i = 0; i < 5; i++) jobs[`shard${i}`] = { stage: 's', parallel: 41 };
    jobs['n'.repeat(101)] = { stage: 's', duration_s: [3, 1] };
    const problem = expectProblem(await put({ stages: ['s'], jobs }), 400, 'validation_error');
    expect(problem.errors).toEqual(
      expect.arrayContaining([
        { path: '/body/jobs', message: '206 jobs once `parallel` makes its copies: at most 200' },
        { path: `/body/jobs/${'n'.repeat(101)}`, message: 'job names are 1–100 characters, without control characters or blanks at either end' },
        { path: `/body/jobs/${'n'.repeat(101)}/duration_s`, message: 'min (3) must not be greater than max (1)' },
      ]),
    );
  });

  it('lints without saving: the resolved graph when valid, every problem (200) when not', async () => {
    await injectAs(ctx.app, ctx.adminToken, { method: 'DELETE', url: `/projects/${projectId}/pipeline` });
    const valid = await lint(EXAMPLE_YAML, yaml);
    expect(valid.statusCode).toBe(200);
    const body = valid.json<LintJson>();
    expect(body.valid).toBe(true);
    expect(body.errors).toEqual([]);
    expect(body.jobs.map((job) => [job.name, job.needs.length, job.parallel?.index ?? null])).toEqual([
      ['compile', 0, null],
      ['unit', 1, null],
      ['lint', 1, null],
      ['e2e 1/3', 1, 1],
      ['e2e 2/3', 1, 2],
      ['e2e 3/3', 1, 3],
      ['release', 6, null],
    ]);
    expect(body.jobs.at(-1)).toMatchObject({ stage: 'deploy', when: 'manual', allow_failure: true });
    expect((await get()).headers['x-pipeline-source']).toBe('default');

    const invalid = await lint({ stages: ['build'], jobs: { unit: { stage: 'build', needs: ['compyle'] } } });
    expect(invalid.statusCode).toBe(200);
    expect(invalid.json()).toEqual({ valid: false, errors: [{ path: '/jobs/unit/needs/0', message: 'unknown job `compyle`' }], jobs: [] });
  });

  it('lets a viewer read and lint but not write (403), and answers 404 for an unknown project', async () => {
    expect((await get({}, viewerToken)).statusCode).toBe(200);
    expectProblem(await put(EXAMPLE, {}, viewerToken), 403, 'forbidden');
    expectProblem(await injectAs(ctx.app, viewerToken, { method: 'DELETE', url: `/projects/${projectId}/pipeline` }), 403, 'forbidden');
    expectProblem(await get({}, ctx.adminToken, 999_999), 404, 'not_found');
    expectProblem(
      await injectAs(ctx.app, ctx.adminToken, { method: 'PUT', url: '/projects/999999/pipeline', payload: EXAMPLE }),
      404,
      'not_found',
    );
    expectProblem(await injectAs(ctx.app, ctx.adminToken, { method: 'DELETE', url: '/projects/999999/pipeline' }), 404, 'not_found');
    expectProblem(await ctx.app.inject({ method: 'GET', url: `/projects/${projectId}/pipeline` }), 401, 'unauthorized');
  });

  describe('hostile bodies are refused with a 4xx, never a 500', () => {
    it('an alias bomb (billion laughs)', async () => {
      const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
      for (let i = 1; i < 10; i++) lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
      const problem = expectProblem(await put(lines.join('\n'), yaml), 400, 'validation_error');
      expect(problem.errors?.[0]?.message).toMatch(/aliases expand too much/);
      expectProblem(await lint(lines.join('\n'), yaml), 400, 'validation_error');
    });

    it('deep nesting, flow and block', async () => {
      for (const deep of ['['.repeat(20_000) + ']'.repeat(20_000), '- '.repeat(20_000) + 'x', `stages: ${'{a: '.repeat(5000)}1${'}'.repeat(5000)}`]) {
        const problem = expectProblem(await put(deep, yaml), 400, 'validation_error');
        expect(problem.errors?.[0]?.message).toMatch(/nests too deeply/);
      }
      // JSON nesting is read by JSON.parse and refused by the schema at the first level.
      const json = `{"stages": ${'['.repeat(10_000)}${']'.repeat(10_000)}, "jobs": {}}`;
      expectProblem(await put(json, { 'content-type': 'application/json' }), 400, 'validation_error');
    });

    it('YAML that costs the composer more than its size: refused at its first problem, once', async () => {
      // Up to 64 KiB each; the composer made an error per token of the first four (seconds of CPU for the first), and
      // 30 000 nodes of the last. Each now gets the one refusal of the token check.
      const shapes: [string, RegExp][] = [
        ['[[[1]]]'.repeat(9000), /^line 1, column 8: Unexpected flow-seq-start at node end$/],
        ['{a: [1, {b: 2}]}, '.repeat(3600), /^line 1, column 34: Unexpected flow-map-end token in YAML stream: "}"$/],
        ['"'.repeat(64 * 1024), /^line 1, column 3: Unexpected double-quoted-scalar at node end$/],
        ['&a '.repeat(20_000), /^line 1, column 4: a node can have at most one anchor$/],
        [`x: [${'1,'.repeat(30_000)}]`, /^line 1, column 4: a collection holds more than 1000 entries/],
      ];
      for (const [text, message] of shapes) {
        for (const response of [await put(text, yaml), await lint(text, yaml)]) {
          const problem = expectProblem(response, 400, 'validation_error');
          expect(problem.errors).toEqual([{ path: '/body', message: expect.stringMatching(message) }]);
        }
      }
    });

    it('a 1 MB body, JSON or YAML, and YAML over its own limit', async () => {
      const big = JSON.stringify({ stages: ['s'], jobs: { a: { stage: 's', script: ['x'.repeat(1024 * 1024)] } } });
      expectProblem(await put(big, { 'content-type': 'application/json' }), 413, 'payload_too_large');
      expectProblem(await put(`stages: [s]\n# ${'x'.repeat(1024 * 1024)}\n`, yaml), 413, 'payload_too_large');
      expectProblem(await lint(`stages: [s]\n# ${'x'.repeat(100 * 1024)}\n`, yaml), 413, 'payload_too_large');
    });

    it('custom tags, several documents, syntax errors and other media types', async () => {
      const tagged = expectProblem(await put('stages: !reference [x]\njobs: {}\n', yaml), 400, 'validation_error');
      expect(tagged.errors?.[0]).toMatchObject({ path: '/body', message: expect.stringMatching(/^line 1, column 9: .*tag/i) });
      expectProblem(await put('stages: [a]\n---\njobs: {}\n', yaml), 400, 'validation_error');
      expectProblem(await put('stages: [a\n', { 'content-type': 'text/yaml' }), 400, 'validation_error');
      expectProblem(await put('stages: [a]', { 'content-type': 'text/plain' }), 415, 'unsupported_media_type');
      expectProblem(await put('', yaml), 400, 'validation_error');
    });
  });
});
