import swagger from '@fastify/swagger';
import type { RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import type { OpenAPIV3 } from 'openapi-types';
import { packageVersion } from '../../src/project-root.js';
import { NEVER_SHED } from './under-pressure.js';

type OpenApiDocument = Partial<OpenAPIV3.Document>;
type Json = Record<string, unknown>;

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** Methods on which Fastify parses a request body (GET and HEAD bodies are ignored). */
const BODY_METHODS = new Set(['post', 'put', 'patch', 'delete', 'options']);

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Fastify's `/builds/:id` is OpenAPI's `/builds/{id}`. */
const toOpenApiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}');

/** What a route's config says about the statuses that hooks (not its handler) may answer with. */
interface RouteTraits {
  /** Counted by the global rate limit, or by a limit of its own: may answer 429. */
  rateLimited: boolean;
  /** Shed under load by @fastify/under-pressure: may answer 503. */
  shed: boolean;
}

const PROBLEM = { $ref: '#/components/schemas/Problem' };
const problemContent = () => ({ 'application/problem+json': { schema: { ...PROBLEM } } });

/** Response headers shared by several responses, referenced from components.headers. */
const HEADERS: Record<string, OpenAPIV3.HeaderObject> = {
  RetryAfter: {
    description: 'Seconds to wait before trying again',
    schema: { type: 'integer', minimum: 0, example: 30 },
  },
  RateLimitLimit: {
    description: 'Requests allowed per window for this client (IETF RateLimit header fields draft)',
    schema: { type: 'integer', minimum: 0, example: 300 },
  },
  RateLimitRemaining: {
    description: 'Requests left in the current window',
    schema: { type: 'integer', minimum: 0, example: 0 },
  },
  WwwAuthenticate: {
    description:
      'The bearer challenge (RFC 6750): `Bearer realm="usine"`, with `error="invalid_token"` when the request ' +
      'presented a bearer token that was refused (expired, forged, revoked)',
    schema: { type: 'string', example: 'Bearer realm="usine", error="invalid_token"' },
  },
  RateLimitReset: {
    description: 'Seconds until the window resets',
    schema: { type: 'integer', minimum: 0, example: 30 },
  },
};
const headerRef = (name: keyof typeof HEADERS) => ({ $ref: `#/components/headers/${name}` });

/**
 * Statuses that the router, hooks and the root error handler produce on any route, whatever its handler does:
 * documented here once rather than on every route. 400, 413 and 415 come from body parsing (on methods that have a
 * body, even where the route takes none), 414 from the router (a path parameter over
 * `maxParamLength`), a `WWW-Authenticate` challenge on every 401 (src/http/problem.ts), 429 from the rate limit (unless the route opts out), 503 from load shedding or an unreachable
 * database, 500 from a bug (a problem without internals; the log has them under the request id).
 */
function addCommonResponses(
  responses: OpenAPIV3.ResponsesObject,
  traits: RouteTraits,
  { hasPathParameters, parsesBody }: { hasPathParameters: boolean; parsesBody: boolean },
): void {
  if (parsesBody) {
    // Fastify reads a body on these methods whether or not the route takes one: a bad one is refused first.
    const bodyErrors: Record<string, string> = {
      '400': 'Bad request: malformed JSON or a field that fails validation (`validation_error`)',
      '413': 'The body is larger than the configured limit (`payload_too_large`)',
      '415': 'The body is not `application/json` (`unsupported_media_type`)',
    };
    for (const [code, description] of Object.entries(bodyErrors)) responses[code] ??= { description, content: problemContent() };
  }
  if (hasPathParameters && !responses['414']) {
    responses['414'] = {
      description: 'A path segment is longer than the 200 characters the router accepts (`uri_too_long`)',
      content: problemContent(),
    };
  }
  const unauthorized = responses['401'] as OpenAPIV3.ResponseObject | undefined;
  if (unauthorized) unauthorized.headers = { ...unauthorized.headers, 'www-authenticate': headerRef('WwwAuthenticate') };
  if (traits.rateLimited && !responses['429']) {
    responses['429'] = {
      description: 'Too many requests from this client (`rate_limited`): wait `Retry-After` seconds',
      headers: {
        'retry-after': headerRef('RetryAfter'),
        'ratelimit-limit': headerRef('RateLimitLimit'),
        'ratelimit-remaining': headerRef('RateLimitRemaining'),
        'ratelimit-reset': headerRef('RateLimitReset'),
      },
      content: problemContent(),
    };
  }
  if (traits.shed) {
    const existing = responses['503'] as OpenAPIV3.ResponseObject | undefined;
    if (!existing) {
      responses['503'] = {
        description:
          'The server is overloaded or its database does not answer (`service_unavailable`): retry after `Retry-After` seconds',
        headers: { 'retry-after': headerRef('RetryAfter') },
        content: problemContent(),
      };
    } else if (!existing.content?.['application/problem+json']) {
      // A route documenting its own 503 body (GET /status) still answers a problem when the process sheds load.
      existing.description += '; when the server sheds load, a `service_unavailable` problem instead';
      existing.content = { ...existing.content, ...problemContent() };
    }
  }
  if (!responses['500']) {
    responses['500'] = {
      description: 'An unexpected error (`internal_error`); the server log has the details under the `X-Request-Id`',
      content: problemContent(),
    };
  }
}

const isNullMember = (schema: unknown) =>
  isObject(schema) && schema.nullable === true && Array.isArray(schema.enum) && schema.enum.length === 1 && schema.enum[0] === null;

/** `{type: T, enum: [v]}` (what a TypeBox literal becomes), with at most a description or example beside. */
const isSingleEnum = (schema: unknown): schema is Json & { type: string; enum: unknown[] } =>
  isObject(schema) &&
  typeof schema.type === 'string' &&
  Array.isArray(schema.enum) &&
  schema.enum.length === 1 &&
  Object.keys(schema).every((key) => ['type', 'enum', 'description', 'example'].includes(key));

/** The keys a union keeps from itself when it collapses into one schema. */
const outerAnnotations = (schema: Json) =>
  Object.fromEntries(Object.entries(schema).filter(([key]) => key !== 'anyOf'));

/**
 * Rewrites one schema (and everything under it) into idiomatic OpenAPI 3.0:
 * - `const: x` becomes `enum: [x]`;
 * - `examples: [x]` (JSON Schema, refused by OpenAPI 3.0 schemas, headers included) becomes `example: x`;
 * - a union of literals of one type (`anyOf: [{enum: [a]}, {enum: [b]}]`) becomes one `enum: [a, b]`;
 * - a union with null (`anyOf: [X, {nullable, enum: [null]}]`) becomes `X` with `nullable: true` (and `null` in its
 *   enum, as OpenAPI 3.0.3 requires), which code generators read as `X | null`.
 */
function normalizeSchema(schema: unknown): void {
  if (!isObject(schema) || '$ref' in schema) return;
  // `const` is JSON Schema 2019+, unknown to OpenAPI 3.0 (schemas that skip @fastify/swagger's own conversion: headers).
  if ('const' in schema) {
    schema.enum = [schema.const];
    delete schema.const;
  }
  if (Array.isArray(schema.examples)) {
    if (!('example' in schema) && schema.examples.length > 0) schema.example = schema.examples[0];
    delete schema.examples;
  }
  if (isObject(schema.properties)) for (const property of Object.values(schema.properties)) normalizeSchema(property);
  normalizeSchema(schema.items);
  normalizeSchema(schema.additionalProperties);
  normalizeSchema(schema.not);
  for (const key of ['allOf', 'oneOf', 'anyOf'] as const) {
    const members = schema[key];
    if (Array.isArray(members)) for (const member of members) normalizeSchema(member);
  }

  const members = schema.anyOf;
  if (!Array.isArray(members)) return;
  const nullable = members.some(isNullMember);
  const others = members.filter((member) => !isNullMember(member));
  let merged: Json | undefined;
  if (others.length > 0 && others.every(isSingleEnum) && new Set(others.map((member) => member.type)).size === 1) {
    merged = { type: others[0]?.type, enum: others.flatMap((member) => member.enum) };
  } else if (others.length === 1 && isObject(others[0]) && !('$ref' in others[0])) {
    merged = { ...others[0] };
  }
  if (!merged) {
    if (nullable && others.length < members.length) {
      schema.anyOf = others;
      schema.nullable = true;
    }
    return;
  }
  if (nullable) {
    merged.nullable = true;
    if (Array.isArray(merged.enum) && !merged.enum.includes(null)) merged.enum = [...merged.enum, null];
  }
  const annotations = outerAnnotations(schema);
  for (const key of Object.keys(schema)) delete schema[key];
  Object.assign(schema, merged, annotations);
}

/** Every schema of the document: components, parameters, bodies, responses and their headers. */
function normalizeSchemas(document: OpenApiDocument): void {
  for (const schema of Object.values(document.components?.schemas ?? {})) normalizeSchema(schema);
  for (const header of Object.values(document.components?.headers ?? {})) normalizeSchema((header as { schema?: unknown }).schema);
  for (const pathItem of Object.values(document.paths ?? {})) {
    for (const method of HTTP_METHODS) {
      const operation = pathItem?.[method];
      if (!operation) continue;
      for (const parameter of operation.parameters ?? []) normalizeSchema((parameter as { schema?: unknown }).schema);
      const body = operation.requestBody as OpenAPIV3.RequestBodyObject | undefined;
      for (const media of Object.values(body?.content ?? {})) normalizeSchema(media.schema);
      for (const response of Object.values(operation.responses ?? {}) as OpenAPIV3.ResponseObject[]) {
        for (const media of Object.values(response.content ?? {})) normalizeSchema(media.schema);
        for (const header of Object.values(response.headers ?? {})) normalizeSchema((header as { schema?: unknown }).schema);
      }
    }
  }
}

const sortedByKey = <T>(record: Record<string, T>): Record<string, T> =>
  Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/**
 * The finishing touches on the document @fastify/swagger generates from the routes' schemas, so that it lints clean
 * and reads well in code generators. It only describes: no route's validation or serialisation changes.
 */
function finishDocument(document: OpenApiDocument, traits: Map<string, RouteTraits>): OpenApiDocument {
  for (const [path, pathItem] of Object.entries(document.paths ?? {})) {
    for (const method of HTTP_METHODS) {
      const operation = pathItem?.[method];
      if (!operation) continue;
      // A body schema that accepts null (the build trigger's) means the body may be left out entirely.
      const body = operation.requestBody as OpenAPIV3.RequestBodyObject | undefined;
      const bodySchema = body?.content['application/json']?.schema as OpenAPIV3.SchemaObject | undefined;
      if (body && bodySchema?.nullable) body.required = false;
      // A route that declares no security is public: say so explicitly (an empty list), as OpenAPI means it.
      operation.security ??= [];
      for (const [code, response] of Object.entries(operation.responses ?? {}) as [string, OpenAPIV3.ResponseObject][]) {
        // 204 and 304 have no body: no media type may be listed (@fastify/swagger adds empty ones with `produces`).
        if (code === '204' || code === '304') delete response.content;
        else if (response.content) {
          for (const [type, media] of Object.entries(response.content)) if (Object.keys(media).length === 0) delete response.content[type];
        }
      }
      const hasPathParameters = (operation.parameters ?? []).some((parameter) => (parameter as OpenAPIV3.ParameterObject).in === 'path');
      addCommonResponses(operation.responses, traits.get(`${method} ${path}`) ?? { rateLimited: true, shed: true }, {
        hasPathParameters,
        parsesBody: BODY_METHODS.has(method),
      });
      operation.responses = sortedByKey(operation.responses);
    }
  }
  document.components = {
    ...document.components,
    schemas: sortedByKey(document.components?.schemas ?? {}),
    headers: sortedByKey({ ...document.components?.headers, ...HEADERS }),
  };
  normalizeSchemas(document);
  document.paths = sortedByKey(document.paths ?? {});
  return document;
}

/** The OpenAPI 3 document, built from the routes' TypeBox schemas. Registered before any route. */
export default fp(
  async (fastify) => {
    // What each route's config says about rate limiting and load shedding, read as routes are added.
    const traits = new Map<string, RouteTraits>();
    fastify.addHook('onRoute', (route: RouteOptions) => {
      const config = (route.config ?? {}) as { rateLimit?: unknown; pressureHandler?: unknown };
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      for (const method of methods) {
        traits.set(`${method.toLowerCase()} ${toOpenApiPath(route.url)}`, {
          rateLimited: config.rateLimit !== false,
          shed: config.pressureHandler !== NEVER_SHED,
        });
      }
    });

    await fastify.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'Usine API',
          version: packageVersion,
          description:
            'A software-factory (CI/CD) REST API: log in, register projects, trigger simulated builds and follow them, ' +
            'watch the service.\n\n' +
            'JSON in and out, snake_case fields, ISO-8601 UTC timestamps, integer ids. Send the `access_token` of ' +
            '`POST /login` as `Authorization: Bearer <token>`. Errors are RFC 9457 problem details ' +
            '(`application/problem+json`) with a stable `error` code; a method a path does not have is a 405 ' +
            '(`method_not_allowed`) with `Allow`, a request not received within the server\'s timeouts a 408 ' +
            '(`request_timeout`), headers over 16 KiB a 431 (`headers_too_large`). Lists are pages (`?page=`, `?per_page=`) with ' +
            'a `Link` header. Every response carries an `X-Request-Id`; rate-limited responses carry `RateLimit-*` headers.',
          license: { name: 'MIT', url: 'https://opensource.org/licenses/MIT' },
        },
        servers: [{ url: '/', description: 'The server that serves this document' }],
        tags: [
          { name: 'auth', description: 'Log in, rotate refresh tokens, log out' },
          { name: 'users', description: 'Who am I, and user management (admin only): accounts, roles, passwords' },
          { name: 'projects', description: 'Projects: a named repository that Usine builds' },
          { name: 'builds', description: 'Simulated CI runs of a project: trigger, follow, cancel, retry, logs and artifacts' },
          { name: 'jobs', description: 'The jobs of a build run by its pipeline: list, follow, retry, cancel, play' },
          { name: 'pipelines', description: 'Pipeline definitions: the stages and jobs a project\'s builds run (JSON or YAML), and their lint' },
          { name: 'events', description: 'The durable event log of every change, as pages or a resumable live stream' },
          { name: 'hooks', description: 'Webhooks: signed deliveries of a project\'s events (Standard Webhooks), their history and redelivery' },
          { name: 'monitoring', description: 'Health, readiness, version and Prometheus metrics of the service' },
        ],
        components: {
          securitySchemes: {
            bearerAuth: {
              type: 'http',
              scheme: 'bearer',
              bearerFormat: 'JWT',
              description: 'The `access_token` returned by `POST /login` or `POST /token/refresh`',
            },
          },
        },
      },
      transformObject: (document) =>
        'openapiObject' in document ? finishDocument(document.openapiObject as OpenApiDocument, traits) : document.swaggerObject,
      refResolver: {
        // Shared schemas keep their own names under components.schemas (not def-0, def-1…).
        buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
      },
    });
  },
  { name: 'swagger' },
);
