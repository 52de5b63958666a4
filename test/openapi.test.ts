import type { FastifyInstance, HTTPMethods } from 'fastify';
import type { OpenAPIV3 } from 'openapi-types';
import { beforeAll, describe, expect, it } from 'vitest';
import { testDb, useTestApp } from './helper.js';
import { deref, documentedOperations as listOperations, DocumentValidator, firstExample, isRef } from './openapi-support.js';

/** What the seed and the design's core require to be there and documented. */
const REQUIRED_OPERATIONS = [
  'POST /login',
  'GET /projects',
  'POST /projects',
  'GET /projects/{id}',
  'POST /projects/{id}/build',
  'POST /projects/{id}/builds',
  'GET /projects/{id}/builds',
  'GET /builds/{id}',
  'POST /builds/{id}/cancel',
  'POST /builds/{id}/retry',
  'GET /builds/{id}/logs',
  'GET /builds/{id}/artifacts',
  'GET /builds/{id}/artifacts/{name}',
  'GET /status',
];

/** Operations anyone may call: everything else needs a bearer token. */
const PUBLIC_OPERATIONS = new Set([
  'POST /login',
  'POST /token/refresh',
  'GET /status',
  'GET /metrics',
  'GET /health/live',
  'GET /health/ready',
]);

/** Fastify `:id` → OpenAPI `{id}`. */
const toOpenApiPath = (path: string) => path.replace(/:(\w+)/g, '{$1}');

/**
 * Every route the app really serves, read from Fastify's own route tree (`printRoutes`), so nothing is hard-coded:
 * a route added later without documentation makes the comparison fail.
 */
function servedOperations(app: FastifyInstance): Set<string> {
  const tree = app.printRoutes({ commonPrefix: false });
  const prefixes: string[] = [];
  const operations = new Set<string>();
  for (const line of tree.split('\n')) {
    const match = /^((?:[│ ] {3})*)[├└]── (\S+)(?: \(([^)]*)\))?\s*$/.exec(line);
    if (!match) {
      if (line.trim() !== '') throw new Error(`unexpected printRoutes line: ${JSON.stringify(line)}`);
      continue;
    }
    const depth = [...(match[1] ?? '')].length / 4;
    const path = (depth > 0 ? (prefixes[depth - 1] ?? '') : '') + (match[2] ?? '');
    prefixes[depth] = path;
    prefixes.length = depth + 1;
    for (const method of (match[3] ?? '').split(',').map((m) => m.trim())) {
      if (method !== '') operations.add(`${method} ${path}`);
    }
  }
  return operations;
}

function documentedOperations(document: OpenAPIV3.Document): Map<string, OpenAPIV3.OperationObject> {
  return new Map(listOperations(document).map(({ key, operation }) => [key, operation]));
}

describe(`OpenAPI document (${testDb})`, () => {
  const ctx = useTestApp();
  let document: OpenAPIV3.Document;
  let operations: Map<string, OpenAPIV3.OperationObject>;

  beforeAll(async () => {
    const response = await ctx.app.inject({ method: 'GET', url: '/apidocs/json' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    document = response.json<OpenAPIV3.Document>();
    operations = documentedOperations(document);
  });

  it('is an OpenAPI 3 document describing Usine', () => {
    expect(document.openapi).toMatch(/^3\.\d+\.\d+$/);
    expect(document.info.title).toMatch(/usine/i);
    expect(document.info.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('documents exactly the routes the app serves (HEAD and /apidocs aside), the seed and core ones included', () => {
    const served = [...servedOperations(ctx.app)]
      .filter((op) => !op.startsWith('HEAD ') && !/^\w+ \/apidocs(\/|$)/.test(op))
      .map((op) => {
        const [method = '', path = ''] = op.split(' ');
        return `${method} ${toOpenApiPath(path)}`;
      });
    // The parser read the tree: the seed's routes are among what it found.
    expect(served).toEqual(expect.arrayContaining(REQUIRED_OPERATIONS));
    expect(new Set(served).size).toBe(served.length);
    expect([...operations.keys()].sort()).toEqual([...served].sort());

    // And every documented operation really answers (no documented route that does not exist).
    for (const op of operations.keys()) {
      const [method = '', path = ''] = op.split(' ');
      expect(ctx.app.hasRoute({ method: method as HTTPMethods, url: path.replace(/\{(\w+)\}/g, ':$1') }), op).toBe(true);
    }
  });

  it('gives every operation tags, a summary, a description and a 2xx response with a schema', () => {
    expect(operations.size).toBeGreaterThanOrEqual(REQUIRED_OPERATIONS.length);
    const declaredTags = new Set((document.tags ?? []).map((tag) => tag.name));
    for (const [op, operation] of operations) {
      expect(operation.tags, op).toBeDefined();
      expect(operation.tags?.length, op).toBeGreaterThan(0);
      for (const tag of operation.tags ?? []) expect(declaredTags, `${op} tag ${tag}`).toContain(tag);
      expect(operation.summary?.trim(), op).toBeTruthy();
      expect(operation.description?.trim(), op).toBeTruthy();
      const success = Object.entries(operation.responses).filter(([code]) => /^2\d\d$/.test(code));
      expect(success.length, `${op} has a 2xx response`).toBeGreaterThan(0);
      for (const [code, response] of success) {
        expect(isRef(response), `${op} ${code}`).toBe(false);
        const content = (response as OpenAPIV3.ResponseObject).content ?? {};
        const schemas = Object.values(content).map((media) => media.schema);
        // 204 No Content is documented by its description alone: it has no body.
        if (code === '204') {
          expect((response as OpenAPIV3.ResponseObject).description.trim(), `${op} ${code}`).toBeTruthy();
          expect(schemas, `${op} 204 has no content`).toEqual([]);
          continue;
        }
        expect(schemas.length, `${op} ${code} has content`).toBeGreaterThan(0);
        for (const schema of schemas) expect(schema, `${op} ${code} schema`).toBeTruthy();
      }
    }
  });

  it('requires bearerAuth on every operation except POST /login, POST /token/refresh and GET /status', () => {
    const scheme = document.components?.securitySchemes?.bearerAuth as OpenAPIV3.HttpSecurityScheme | undefined;
    expect(scheme).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(document.security ?? []).toEqual([]);
    for (const [op, operation] of operations) {
      if (PUBLIC_OPERATIONS.has(op)) {
        expect(operation.security ?? [], op).toEqual([]);
        expect(operation.responses['401'], `${op} documents no 401 for missing tokens`).toSatisfy(
          (r) => op === 'POST /login' || op === 'POST /token/refresh' || r === undefined,
        );
      } else {
        expect(operation.security, op).toEqual([{ bearerAuth: [] }]);
        expect(operation.responses['401'], `${op} documents 401`).toBeDefined();
      }
    }
    for (const op of PUBLIC_OPERATIONS) expect(operations.has(op), op).toBe(true);
  });

  it('names the shared schemas (Problem, Project, Build) and leaves no def-N behind', () => {
    const schemas = document.components?.schemas ?? {};
    expect(Object.keys(schemas)).toEqual(expect.arrayContaining(['Problem', 'Project', 'Build']));
    expect(Object.keys(schemas).filter((key) => key.startsWith('def-'))).toEqual([]);
    expect(JSON.stringify(document)).not.toMatch(/#\/components\/schemas\/def-/);
  });

  it('describes every 4xx response as a Problem, in the media type actually sent', () => {
    let count = 0;
    for (const [op, operation] of operations) {
      for (const [code, response] of Object.entries(operation.responses)) {
        if (!/^4\d\d$/.test(code)) continue;
        count++;
        expect(isRef(response), `${op} ${code}`).toBe(false);
        const { content, description } = response as OpenAPIV3.ResponseObject;
        expect(description.trim(), `${op} ${code}`).toBeTruthy();
        expect(content, `${op} ${code}`).toEqual({
          'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } },
        });
      }
    }
    expect(count).toBeGreaterThanOrEqual(REQUIRED_OPERATIONS.length);
  });

  it('describes every field of Project, Build and Problem', () => {
    for (const name of ['Project', 'Build', 'Problem']) {
      const schema = document.components?.schemas?.[name] as OpenAPIV3.SchemaObject | undefined;
      expect(schema?.description?.trim(), name).toBeTruthy();
      const properties = Object.entries(schema?.properties ?? {});
      expect(properties.length, name).toBeGreaterThan(0);
      for (const [field, property] of properties) {
        expect(isRef(property), `${name}.${field}`).toBe(false);
        expect((property as OpenAPIV3.SchemaObject).description?.trim(), `${name}.${field}`).toBeTruthy();
      }
    }
    // The seed's fields are there.
    const project = document.components?.schemas?.Project as OpenAPIV3.SchemaObject;
    expect(Object.keys(project.properties ?? {})).toEqual(expect.arrayContaining(['id', 'name', 'repo', 'last_build_status']));
    const build = document.components?.schemas?.Build as OpenAPIV3.SchemaObject;
    expect(Object.keys(build.properties ?? {})).toEqual(
      expect.arrayContaining(['id', 'project_id', 'status', 'duration_s', 'logs', 'created_at']),
    );
    // And the build engine's: a queued build has no start, end or duration yet.
    expect(Object.keys(build.properties ?? {})).toEqual(expect.arrayContaining(['number', 'retry_of', 'started_at', 'finished_at']));
    const status = build.properties?.status as OpenAPIV3.SchemaObject;
    const statuses = (status.anyOf ?? status.oneOf ?? []).map((s) => (s as OpenAPIV3.SchemaObject & { const?: string }).const ?? (s as OpenAPIV3.SchemaObject).enum?.[0]);
    expect([...(status.enum ?? []), ...statuses].sort()).toEqual(['canceled', 'fail', 'queued', 'running', 'success']);
    for (const field of ['duration_s', 'started_at', 'finished_at']) {
      expect(JSON.stringify(build.properties?.[field]), `Build.${field} is nullable`).toMatch(/"null"|"nullable":true/);
    }
  });

  it('documents the queued build answer of the triggers and the build queue figures of /status', () => {
    for (const op of ['POST /projects/{id}/build', 'POST /projects/{id}/builds', 'POST /builds/{id}/retry']) {
      const created = operations.get(op)?.responses['201'] as OpenAPIV3.ResponseObject | undefined;
      expect(created, `${op} answers 201`).toBeDefined();
      expect(JSON.stringify(created?.content?.['application/json']?.schema), op).toContain('#/components/schemas/Build');
      expect(created?.headers?.location, `${op} documents Location`).toBeDefined();
    }
    const cancel = operations.get('POST /builds/{id}/cancel')?.responses;
    expect(Object.keys(cancel ?? {})).toEqual(expect.arrayContaining(['200', '404', '409']));
    const status = deref(
      document,
      (operations.get('GET /status')?.responses['200'] as OpenAPIV3.ResponseObject | undefined)?.content?.['application/json']?.schema,
    );
    expect(Object.keys(status?.properties ?? {})).toEqual(expect.arrayContaining(['status', 'version', 'uptime_s', 'db', 'time', 'queue', 'workers']));
  });

  it('gives request body examples for POST /login and POST /projects (the seed curl bodies)', () => {
    const bodyExample = (op: string) => {
      const body = operations.get(op)?.requestBody as OpenAPIV3.RequestBodyObject | undefined;
      const media = body?.content['application/json'];
      const schema = media?.schema as OpenAPIV3.SchemaObject | undefined;
      return media?.example ?? Object.values(media?.examples ?? {})[0] ?? schema?.example;
    };
    expect(bodyExample('POST /login')).toEqual({ username: 'admin', password: 'admin123' });
    expect(bodyExample('POST /projects')).toEqual({ name: 'DemoProj', repo: 'https://github.com/demo/repo' });
  });
});

/** Every schema of an operation, with where it sits: parameters, body, responses and their headers. */
function operationSchemas(op: string, operation: OpenAPIV3.OperationObject): [string, unknown][] {
  const found: [string, unknown][] = [];
  for (const parameter of operation.parameters ?? []) {
    if (!isRef(parameter)) found.push([`${op} ${parameter.in} parameter ${parameter.name}`, parameter.schema]);
  }
  const body = operation.requestBody as OpenAPIV3.RequestBodyObject | undefined;
  for (const [type, media] of Object.entries(body?.content ?? {})) found.push([`${op} body ${type}`, media.schema]);
  for (const [code, response] of Object.entries(operation.responses)) {
    if (isRef(response)) continue;
    for (const [type, media] of Object.entries(response.content ?? {})) found.push([`${op} ${code} ${type}`, media.schema]);
    for (const [name, header] of Object.entries(response.headers ?? {})) {
      if (!isRef(header)) found.push([`${op} ${code} header ${name}`, header.schema]);
    }
  }
  return found;
}

/** Calls `visit` on a schema and every schema under it (properties, items, unions), with a readable path. */
function walkSchema(where: string, schema: unknown, visit: (where: string, schema: OpenAPIV3.SchemaObject) => void): void {
  if (typeof schema !== 'object' || schema === null || isRef(schema)) return;
  const s = schema as OpenAPIV3.SchemaObject;
  visit(where, s);
  for (const [name, property] of Object.entries(s.properties ?? {})) walkSchema(`${where}.${name}`, property, visit);
  if (s.type === 'array') walkSchema(`${where}[]`, s.items, visit);
  if (typeof s.additionalProperties === 'object') walkSchema(`${where}{}`, s.additionalProperties, visit);
  for (const key of ['allOf', 'anyOf', 'oneOf'] as const) s[key]?.forEach((member, i) => walkSchema(`${where}.${key}[${i}]`, member, visit));
}

describe(`OpenAPI document, completeness (${testDb})`, () => {
  const ctx = useTestApp();
  let document: OpenAPIV3.Document;
  let operations: Map<string, OpenAPIV3.OperationObject>;
  /** Every schema of the document with where it sits: components first, then each operation's. */
  let schemas: [string, unknown][];

  beforeAll(async () => {
    const response = await ctx.app.inject({ method: 'GET', url: '/apidocs/json' });
    document = response.json<OpenAPIV3.Document>();
    operations = documentedOperations(document);
    schemas = [
      ...Object.entries(document.components?.schemas ?? {}).map(([name, schema]): [string, unknown] => [name, schema]),
      ...Object.entries(document.components?.headers ?? {}).map(([name, header]): [string, unknown] => [
        `header ${name}`,
        (header as OpenAPIV3.HeaderObject).schema,
      ]),
      ...[...operations].flatMap(([op, operation]) => operationSchemas(op, operation)),
    ];
  });

  it('names every operation with a unique operationId', () => {
    const ids = [...operations.values()].map((operation) => operation.operationId);
    for (const [op, operation] of operations) expect(operation.operationId, op).toMatch(/^[a-z][A-Za-z]+$/);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('describes every tag, every parameter and every field of every schema', () => {
    for (const tag of document.tags ?? []) expect(tag.description?.trim(), `tag ${tag.name}`).toBeTruthy();
    const used = new Set([...operations.values()].flatMap((operation) => operation.tags ?? []));
    expect([...used].sort()).toEqual((document.tags ?? []).map((tag) => tag.name).sort());

    const undescribed: string[] = [];
    for (const [op, operation] of operations) {
      for (const parameter of operation.parameters ?? []) {
        if (!isRef(parameter) && !parameter.description?.trim()) undescribed.push(`${op} ${parameter.in} parameter ${parameter.name}`);
      }
      for (const [code, response] of Object.entries(operation.responses)) {
        if (isRef(response)) continue;
        for (const [name, header] of Object.entries(response.headers ?? {})) {
          if (!isRef(header) && !header.description?.trim()) undescribed.push(`${op} ${code} header ${name}`);
        }
      }
    }
    for (const [where, schema] of schemas) {
      walkSchema(where, schema, (path, s) => {
        for (const [name, property] of Object.entries(s.properties ?? {})) {
          if (!isRef(property) && !property.description?.trim()) undescribed.push(`${path}.${name}`);
        }
      });
    }
    expect(undescribed).toEqual([]);
  });

  it('gives every example a value its schema accepts', () => {
    const validator = new DocumentValidator(document);
    const wrong: string[] = [];
    let checked = 0;
    const check = (where: string, schema: unknown, value: unknown) => {
      checked++;
      const errors = validator.errors(schema ?? {}, value);
      if (errors) wrong.push(`${where}: ${JSON.stringify(value)?.slice(0, 120)}: ${errors}`);
    };
    for (const [where, schema] of schemas) {
      walkSchema(where, schema, (path, s) => {
        if (s.example !== undefined) check(path, s, s.example);
      });
    }
    for (const [op, operation] of operations) {
      const holders: [string, { schema?: unknown; example?: unknown; examples?: Record<string, unknown> }][] = [];
      for (const parameter of operation.parameters ?? []) if (!isRef(parameter)) holders.push([`${op} ${parameter.name}`, parameter]);
      const body = operation.requestBody as OpenAPIV3.RequestBodyObject | undefined;
      for (const [type, media] of Object.entries(body?.content ?? {})) holders.push([`${op} body ${type}`, media]);
      for (const [code, response] of Object.entries(operation.responses)) {
        if (isRef(response)) continue;
        for (const [type, media] of Object.entries(response.content ?? {})) holders.push([`${op} ${code} ${type}`, media]);
      }
      for (const [where, holder] of holders) {
        if (holder.example !== undefined) check(where, holder.schema, holder.example);
        for (const [name, example] of Object.entries(holder.examples ?? {})) {
          check(`${where} example ${name}`, holder.schema, (example as OpenAPIV3.ExampleObject).value);
        }
      }
    }
    expect(wrong).toEqual([]);
    expect(checked).toBeGreaterThan(50);
  });

  it('gives every request a complete example: each parameter and each body', () => {
    const missing: string[] = [];
    for (const [op, operation] of operations) {
      for (const parameter of operation.parameters ?? []) {
        if (!isRef(parameter) && !firstExample(document, parameter).found) missing.push(`${op} ${parameter.in} parameter ${parameter.name}`);
      }
      const body = operation.requestBody as OpenAPIV3.RequestBodyObject | undefined;
      const media = body?.content['application/json'];
      // An optional body that accepts nothing but `{}` (cancel, retry) needs no example.
      const schema = deref(document, media?.schema);
      const trivial = schema?.type === 'object' && Object.keys(schema.properties ?? {}).length === 0;
      if (media && !trivial && !firstExample(document, media).found) missing.push(`${op} body`);
    }
    expect(missing).toEqual([]);
  });

  it('documents the statuses that come from outside the handler: 400, 401, 429, 500, 503', () => {
    const missing: string[] = [];
    const expectStatus = (op: string, operation: OpenAPIV3.OperationObject, code: string, why: string) => {
      if (!operation.responses[code]) missing.push(`${op}: no ${code} (${why})`);
    };
    for (const [op, operation] of operations) {
      const input = (operation.parameters ?? []).some((p) => !isRef(p) && p.in !== 'header') || operation.requestBody !== undefined;
      if (input) expectStatus(op, operation, '400', 'it takes input');
      if ((operation.security ?? []).length > 0) expectStatus(op, operation, '401', 'it needs a token');
      expectStatus(op, operation, '500', 'any operation may fail');
      if (op !== 'GET /health/live') expectStatus(op, operation, '503', 'load shedding or the database');
      if (!['GET /health/live', 'GET /health/ready', 'GET /metrics'].includes(op)) expectStatus(op, operation, '429', 'rate limited');
      // 204 and 304 carry no body: no media type.
      for (const code of ['204', '304']) {
        const response = operation.responses[code] as OpenAPIV3.ResponseObject | undefined;
        if (response?.content) missing.push(`${op}: ${code} lists content`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('says explicitly that public operations need no credentials (security: [])', () => {
    for (const op of PUBLIC_OPERATIONS) expect(operations.get(op)?.security, op).toEqual([]);
    for (const [op, operation] of operations) expect(operation.security, op).toBeDefined();
  });

  it('names the shared schemas after themselves and references them rather than copying them', () => {
    const names = Object.keys(document.components?.schemas ?? {});
    expect(names).toEqual(expect.arrayContaining(['Artifact', 'Build', 'Problem', 'Project', 'ServiceStatus', 'TokenPair', 'User']));
    for (const name of names) expect((document.components?.schemas?.[name] as OpenAPIV3.SchemaObject).title, name).toBe(name);
    const text = JSON.stringify(document.paths);
    for (const name of names) expect(text, `${name} is referenced from some operation`).toContain(`"#/components/schemas/${name}"`);
  });

  it('is OpenAPI 3.0 throughout: no JSON Schema `examples` arrays or `const` in schemas', () => {
    const foreign: string[] = [];
    for (const [where, schema] of schemas) {
      walkSchema(where, schema, (path, s) => {
        if ('examples' in s) foreign.push(`${path}: examples`);
        if ('const' in s) foreign.push(`${path}: const`);
      });
    }
    expect(foreign).toEqual([]);
  });
});

describe(`Swagger UI (${testDb})`, () => {
  const ctx = useTestApp();

  it('serves an HTML page at /apidocs that loads Swagger UI', async () => {
    let url = '/apidocs';
    let response = await ctx.app.inject({ method: 'GET', url });
    for (let hops = 0; hops < 3 && response.statusCode >= 300 && response.statusCode < 400; hops++) {
      const location = response.headers.location;
      expect(location).toBeTruthy();
      url = new URL(String(location), `http://localhost${url}`).pathname;
      response = await ctx.app.inject({ method: 'GET', url });
    }
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/html/);
    expect(response.body.toLowerCase()).toContain('swagger');
    expect(response.body).toContain('id="swagger-ui"');

    // The page's scripts are served too.
    const scripts = [...response.body.matchAll(/<script src="([^"]+)"/g)].map((m) => m[1] ?? '');
    expect(scripts.length).toBeGreaterThan(0);
    for (const src of scripts) {
      const script = await ctx.app.inject({ method: 'GET', url: new URL(src, `http://localhost${url}`).pathname });
      expect(script.statusCode, src).toBe(200);
    }
  });
});
