/**
 * The document's request examples are real: every operation is called with the examples it documents (path, query
 * and header parameters, body), and what the app answers must be a documented status whose documented schema (and
 * media type, and headers) the answer matches.
 *
 * The examples chain like a user's first session: `POST /projects` creates project 1 (DemoProj), `POST /users` user 2
 * (alice), the triggers build 1 of project 1, which runs at once (BUILD_TIME_SCALE 0) and succeeds (BUILD_FAIL_RATE
 * 0), so that its artifact `demoproj-1.tar.gz` exists; the deletions and the logout come last.
 * Build 1 runs as jobs: job 1 (its first, a success) is the one the job examples name.
 */
import type { LightMyRequestResponse } from 'fastify';
import type { OpenAPIV3 } from 'openapi-types';
import { beforeAll, describe, expect, it } from 'vitest';
import { login, testDb, useTestApp, waitForBuild } from './helper.js';
import { documentedOperations, DocumentValidator, firstExample, isRef, type DocumentedOperation } from './openapi-support.js';

/** Run first, in this order: they create what the other examples name. */
const FIRST = [
  'POST /projects',
  'POST /users',
  'POST /projects/{id}/builds',
  'POST /projects/{id}/build',
  'POST /projects/{id}/hooks',
  'POST /projects/{id}/hooks/{hook_id}/ping',
];
/** Run last, in this order: they remove what the other examples name, or end the session. */
const LAST = ['DELETE /users/{id}', 'DELETE /projects/{id}/hooks/{hook_id}', 'DELETE /projects/{id}', 'POST /logout'];

/** The examples that cannot succeed, and why; every other example must get a 2xx. */
const EXPECTED_REFUSALS: Record<string, { status: number; why: string }> = {
  'POST /token/refresh': { status: 401, why: 'the example refresh token is not a live one (they are random and single-use)' },
  'POST /builds/{id}/cancel': { status: 409, why: 'build 1 has finished (it must, for its artifact to exist)' },
  'POST /jobs/{id}/cancel': { status: 409, why: 'job 1 (the checkout of build 1) has succeeded' },
  'POST /jobs/{id}/play': { status: 409, why: 'job 1 is no manual job' },
};

function ordered(operations: DocumentedOperation[]): DocumentedOperation[] {
  const rank = (key: string) => (FIRST.includes(key) ? FIRST.indexOf(key) - 100 : LAST.includes(key) ? LAST.indexOf(key) + 100 : 0);
  return [...operations].sort((a, b) => rank(a.key) - rank(b.key));
}

/** Header values are text: a header schema of integers is checked against the number. */
function headerValue(schema: OpenAPIV3.SchemaObject | undefined, value: string): unknown {
  return schema?.type === 'integer' || schema?.type === 'number' ? Number(value) : value;
}

describe(`OpenAPI request examples against the live app (${testDb})`, () => {
  // A small body limit, so that the 413 probe stays small. The example hook's host is not resolved (no network here)
  // and nothing is sent to it: the ping stays queued for the delivery examples.
  const ctx = useTestApp({
    BUILD_FAIL_RATE: '0',
    BUILD_TIME_SCALE: '0',
    BODY_LIMIT: '2048',
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    WEBHOOK_CONCURRENCY: '0',
  });
  let document: OpenAPIV3.Document;
  let validator: DocumentValidator;

  beforeAll(async () => {
    const response = await ctx.app.inject({ method: 'GET', url: '/apidocs/json' });
    document = response.json<OpenAPIV3.Document>();
    validator = new DocumentValidator(document);
  });

  /** The request an operation's examples describe; `problems` collects what is missing to build it. */
  function exampleRequest({ key, path, operation }: DocumentedOperation, problems: string[]) {
    let url = path;
    const query = new URLSearchParams();
    const headers: Record<string, string> = {};
    for (const entry of operation.parameters ?? []) {
      if (isRef(entry)) {
        problems.push(`${key}: parameter is a $ref`);
        continue;
      }
      const example = firstExample(document, entry);
      if (!example.found) {
        problems.push(`${key}: ${entry.in} parameter ${entry.name} has no example`);
        continue;
      }
      const text = String(example.value);
      if (entry.in === 'path') url = url.replace(`{${entry.name}}`, encodeURIComponent(text));
      else if (entry.in === 'query') query.set(entry.name, text);
      else if (entry.in === 'header') headers[entry.name] = text;
    }
    let payload: unknown;
    const body = operation.requestBody as OpenAPIV3.RequestBodyObject | undefined;
    const media = body?.content['application/json'];
    if (media) {
      const example = firstExample(document, media);
      if (example.found) payload = example.value;
      else if (body?.required) problems.push(`${key}: the required body has no example`);
    }
    const search = query.toString();
    return { url: search ? `${url}?${search}` : url, headers, payload };
  }

  /** What is wrong with an answer, measured against the operation's documented responses. */
  function answerProblems({ key, operation }: DocumentedOperation, response: LightMyRequestResponse): string[] {
    const problems: string[] = [];
    const at = `${key} → ${response.statusCode}`;
    const documented = operation.responses[String(response.statusCode)] ?? operation.responses.default;
    if (!documented || isRef(documented)) {
      return [`${at}: status not documented (documented: ${Object.keys(operation.responses).join(', ')}); body ${response.body.slice(0, 300)}`];
    }
    const content = documented.content ?? {};
    if (Object.keys(content).length === 0) {
      if (response.body !== '') problems.push(`${at}: documented without a body, but one was sent`);
    } else {
      const type = String(response.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
      const media = content[type];
      if (!media) problems.push(`${at}: media type ${type} not documented (documented: ${Object.keys(content).join(', ')})`);
      else if (/[/+]json$/.test(type)) {
        const errors = validator.errors(media.schema, response.json());
        if (errors) problems.push(`${at}: body does not match the documented schema: ${errors}; body ${response.body.slice(0, 300)}`);
      } else {
        const errors = validator.errors(media.schema, response.body);
        if (errors) problems.push(`${at}: ${type} body does not match the documented schema: ${errors}`);
      }
    }
    for (const [name, header] of Object.entries(documented.headers ?? {})) {
      const value = response.headers[name.toLowerCase()];
      if (value === undefined) continue;
      const resolved = isRef(header) ? document.components?.headers?.[header.$ref.split('/').pop() ?? ''] : header;
      const schema = (resolved as OpenAPIV3.HeaderObject | undefined)?.schema as OpenAPIV3.SchemaObject | undefined;
      const errors = validator.errors(schema ?? {}, headerValue(schema, String(value)));
      if (errors) problems.push(`${at}: header ${name}: ${value} does not match the documented schema: ${errors}`);
      // A Location example names the right kind of resource (ids aside).
      const shape = (text: unknown) => String(text).replace(/\d+/g, 'N');
      if (name === 'location' && schema?.example !== undefined && shape(value) !== shape(schema.example)) {
        problems.push(`${at}: Location ${value} is not shaped like its example ${String(schema.example)}`);
      }
    }
    return problems;
  }

  it('sends every operation its documented examples and gets a documented, schema-valid answer', async () => {
    const operations = ordered(documentedOperations(document));
    const problems: string[] = [];
    const answered: string[] = [];
    // POST /logout ends the session of the token it is sent with: it gets its own.
    const logoutToken = await login(ctx.app, ctx.config.ADMIN_USERNAME, ctx.config.ADMIN_PASSWORD);

    for (const op of operations) {
      if (op.key === LAST[0]) {
        // Build 1 (and the retry's) must be over before the project goes.
        await waitForBuild(ctx.app, ctx.adminToken, 1);
      }
      const request = exampleRequest(op, problems);
      const protectedOperation = (op.operation.security ?? []).length > 0;
      const token = op.key === 'POST /logout' ? logoutToken : ctx.adminToken;
      const response = await ctx.app.inject({
        method: op.method.toUpperCase() as 'GET',
        url: request.url,
        headers: { ...request.headers, ...(protectedOperation ? { authorization: `Bearer ${token}` } : {}) },
        ...(request.payload === undefined ? {} : { payload: request.payload as object }),
      });
      answered.push(`${op.key} → ${response.statusCode}`);
      problems.push(...answerProblems(op, response));

      const refusal = EXPECTED_REFUSALS[op.key];
      if (refusal) {
        if (response.statusCode !== refusal.status) problems.push(`${op.key}: expected ${refusal.status} (${refusal.why}), got ${response.statusCode}`);
      } else if (response.statusCode < 200 || response.statusCode > 299) {
        problems.push(`${op.key}: the example request failed with ${response.statusCode}: ${response.body.slice(0, 300)}`);
      }
      if (op.key === 'POST /projects/{id}/builds') {
        // The artifact examples need build 1 to have succeeded.
        const build = await waitForBuild(ctx.app, ctx.adminToken, 1);
        expect(build.status, 'build 1 (BUILD_FAIL_RATE 0)').toBe('success');
      }
    }
    expect(problems, answered.join('\n')).toEqual([]);
    expect(answered).toHaveLength(operations.length);
  });

  it('answers documented statuses, with problems matching the schema, to refused requests too', async () => {
    const operations = documentedOperations(document);
    // Requests that never reach a handler (or only to be told the resource does not exist): nothing is changed.
    const refused: Record<string, (op: DocumentedOperation) => { url?: string; headers?: Record<string, string>; payload?: string; anonymous?: boolean } | undefined> = {
      'a text/plain body': () => ({ headers: { 'content-type': 'text/plain' }, payload: 'hello' }),
      'malformed JSON': () => ({ headers: { 'content-type': 'application/json' }, payload: '{"name":' }),
      'a body over BODY_LIMIT': () => ({ headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ name: 'x'.repeat(5000) }) }),
      'no token': () => ({ anonymous: true }),
      'a forged token': () => ({ headers: { authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.forged' } }),
      'an over-long path parameter': (op) => (op.path.includes('{') ? { url: op.path.replace(/\{\w+\}/g, '1'.repeat(250)) } : undefined),
      'an id that does not exist': (op) => (op.path.includes('{id}') ? { url: op.path.replace('{id}', '999999').replace('{name}', 'x.tar.gz') } : undefined),
    };
    const problems: string[] = [];
    let sent = 0;
    for (const op of operations) {
      // POST /logout gets a token of its own: a request that did reach it would only end that session.
      const token = op.key === 'POST /logout' ? await login(ctx.app, ctx.config.ADMIN_USERNAME, ctx.config.ADMIN_PASSWORD) : ctx.adminToken;
      const base = op.path.replace('{id}', '1').replace('{name}', 'demoproj-1.tar.gz');
      for (const [what, make] of Object.entries(refused)) {
        const request = make(op);
        if (!request) continue;
        const response = await ctx.app.inject({
          method: op.method.toUpperCase() as 'GET',
          url: request.url ?? base,
          headers: { ...(request.anonymous ? {} : { authorization: `Bearer ${token}` }), ...request.headers },
          ...(request.payload === undefined ? {} : { payload: request.payload }),
        });
        sent++;
        for (const problem of answerProblems(op, response)) problems.push(`with ${what}: ${problem}`);
      }
    }
    expect(problems).toEqual([]);
    expect(sent).toBeGreaterThan(operations.length * 4);
  });
});
