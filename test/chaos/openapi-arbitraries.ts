/**
 * fast-check arbitraries driven by the OpenAPI document: for every documented operation, requests with random and
 * adversarial path parameters, query strings, headers and bodies (valid ones too, so that some requests get through
 * and the fuzz reaches deep code paths).
 */
import fc from 'fast-check';

export type Role = 'admin' | 'maintainer' | 'viewer' | 'anonymous';
export const ROLES: Role[] = ['admin', 'maintainer', 'viewer', 'anonymous'];

/** The bits of JSON Schema the document uses. */
export interface JsonSchema {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  nullable?: boolean;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  example?: unknown;
  examples?: unknown;
}

export interface OpenApiDocument {
  paths: Record<string, Record<string, unknown>>;
  components?: { schemas?: Record<string, JsonSchema> };
}

interface RawParameter {
  in: 'path' | 'query' | 'header' | 'cookie';
  name: string;
  required?: boolean;
  schema?: JsonSchema;
}

interface RawOperation {
  operationId?: string;
  parameters?: RawParameter[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: JsonSchema }> };
  responses?: Record<string, unknown>;
  security?: unknown[];
}

export interface Operation {
  id: string;
  method: string;
  /** OpenAPI path template, e.g. /builds/{id}/artifacts/{name}. */
  path: string;
  pathParams: RawParameter[];
  queryParams: RawParameter[];
  headerParams: RawParameter[];
  body?: { required: boolean; schema: JsonSchema };
  /** Status codes the operation documents. */
  statuses: Set<number>;
  secured: boolean;
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete', 'head', 'options'];

export function operationsOf(document: OpenApiDocument): Operation[] {
  const operations: Operation[] = [];
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, raw] of Object.entries(item)) {
      if (!METHODS.includes(method)) continue;
      const op = raw as RawOperation;
      const parameters = op.parameters ?? [];
      const bodySchema = op.requestBody?.content?.['application/json']?.schema;
      operations.push({
        id: op.operationId ?? `${method} ${path}`,
        method: method.toUpperCase(),
        path,
        pathParams: parameters.filter((p) => p.in === 'path'),
        queryParams: parameters.filter((p) => p.in === 'query'),
        headerParams: parameters.filter((p) => p.in === 'header'),
        ...(bodySchema ? { body: { required: op.requestBody?.required === true, schema: bodySchema } } : {}),
        statuses: new Set(Object.keys(op.responses ?? {}).map(Number)),
        secured: (op.security ?? []).length > 0,
      });
    }
  }
  return operations;
}

export function resolve(schema: JsonSchema, document: OpenApiDocument): JsonSchema {
  let current = schema;
  for (let depth = 0; current.$ref && depth < 10; depth++) {
    const name = current.$ref.split('/').pop() ?? '';
    current = document.components?.schemas?.[name] ?? {};
  }
  return current;
}

// ---------------------------------------------------------------------------------------------------------------
// Adversarial material
// ---------------------------------------------------------------------------------------------------------------

/** Text that has broken parsers, routers, SQL builders and shells before. */
export const NASTY_STRINGS: string[] = [
  '',
  ' ',
  '\t',
  '0',
  '-1',
  '-0',
  '1.5',
  '1e3',
  '1e309',
  '0x10',
  '0b1',
  '+1',
  '01',
  ' 1',
  '1 ',
  '2147483647',
  '2147483648',
  '4294967296',
  '9007199254740991',
  '9007199254740993',
  '99999999999999999999999999999',
  '-99999999999999999999999999999',
  'NaN',
  'Infinity',
  '-Infinity',
  'null',
  'undefined',
  'true',
  'false',
  '[]',
  '{}',
  '__proto__',
  'constructor',
  'prototype',
  'hasOwnProperty',
  'toString',
  "' OR '1'='1",
  "1' OR 1=1 --",
  '1; DROP TABLE users; --',
  "'; DELETE FROM projects; --",
  '" OR ""="',
  '%',
  '%%',
  '%00',
  '\\',
  '\\\\',
  '_',
  '%_%',
  '$(id)',
  '`id`',
  '| cat /etc/passwd',
  '; rm -rf /',
  '&& whoami',
  '../../../../etc/passwd',
  '..%2F..%2Fetc%2Fpasswd',
  '\u0000',
  'a\u0000b',
  '\u202e\u0645\u0631\u062d\u0628\u0627',
  '\ud83d\ude00',
  '\ud800',
  '\udfff',
  'e\u0301',
  '\ufeff',
  '\u2028\u2029',
  'Ω≈ç√∫˜µ≤≥÷',
  '田中さんにあげて下さい',
  '<script>alert(1)</script>',
  '{{7*7}}',
  '${7*7}',
  '\r\nX-Injected: 1',
  'a'.repeat(256),
  'a'.repeat(1025),
  'é'.repeat(300),
  'x'.repeat(70_000),
];

/** JSON values of every type and some extremes. */
export function nastyJsonValue(): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.constantFrom<unknown>(
      null,
      true,
      false,
      0,
      -0,
      -1,
      1.5,
      2 ** 31,
      2 ** 53,
      -(2 ** 63),
      1e308,
      Number.MAX_SAFE_INTEGER,
      [],
      {},
      [null],
      { __proto__: null },
    ),
    fc.constantFrom(...NASTY_STRINGS),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.double(),
    fc.integer(),
    fc.bigInt().map((n) => Number(n)),
    fc.jsonValue({ maxDepth: 3 }),
    fc.integer({ min: 2, max: 2000 }).map((depth) => nest(depth)),
  );
}

function nest(depth: number): unknown {
  let value: unknown = 'deep';
  for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { a: value };
  return value;
}

/** Raw body text no JSON serialiser would produce. */
export const RAW_BODIES: string[] = [
  '',
  ' ',
  'null',
  'true',
  '0',
  '"string"',
  '[]',
  '[{}]',
  '{',
  '}',
  '{"a":',
  '{"a":1,}',
  "{'a':1}",
  '{a:1}',
  'NaN',
  '{"name":NaN}',
  '{"name":Infinity}',
  '{"name":1e999}',
  '{"name":-1e999}',
  '\ufeff{}',
  '{}\u0000',
  '{"a":"\\u0000"}',
  '{"a":"\\ud800"}',
  '/* comment */ {}',
  '{} {}',
  '{}garbage',
  '[' .repeat(5000) + ']'.repeat(5000),
  '{"a":'.repeat(3000) + '1' + '}'.repeat(3000),
  '{"__proto__":{"role":"admin","isAdmin":true}}',
  '{"constructor":{"prototype":{"role":"admin"}}}',
  '{"__proto__":null}',
  '{"a":{"__proto__":{"polluted":1}}}',
  '{"name":"a","name":"b"}',
  '{"username":"admin","username":"x","password":"admin123"}',
  '{"role":"viewer","role":"admin"}',
  '{"status":"success","status":"queued"}',
];

/** Content-Type header values: the real one in every disguise, and impostors. */
export const CONTENT_TYPES: (string | undefined)[] = [
  'application/json',
  'application/json',
  'application/json',
  'application/json; charset=utf-8',
  'Application/JSON',
  'APPLICATION/JSON; CHARSET=UTF-8',
  'application/json;charset=utf-8',
  'application/json\t;\tcharset=utf-8',
  'application/json ; charset="utf-8"',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'application/json; charset=',
  'application/json; foo=bar; foo=baz',
  'application/json;',
  'application/json,text/plain',
  ' application/json',
  'application/json ',
  'application/jsonx',
  'application/json-seq',
  'application/problem+json',
  'application/vnd.api+json',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=xyz',
  'text/plain',
  'text/plain; charset=utf-8',
  'text/json',
  'application/xml',
  'application/octet-stream',
  '*/*',
  'application/*',
  'application',
  '/',
  ';',
  '',
  undefined,
];

// ---------------------------------------------------------------------------------------------------------------
// Values from schemas
// ---------------------------------------------------------------------------------------------------------------

function safeStringMatching(pattern: string, maxLength: number): fc.Arbitrary<string> | undefined {
  try {
    const arbitrary = fc.stringMatching(new RegExp(pattern), { maxLength: Math.min(maxLength, 80) });
    fc.sample(arbitrary, 1);
    return arbitrary;
  } catch {
    return undefined;
  }
}

/** Values that satisfy the schema most of the time (patterns with look-arounds fall back to plain words). */
export function validValue(schema: JsonSchema, document: OpenApiDocument): fc.Arbitrary<unknown> {
  const s = resolve(schema, document);
  if (s.enum) return fc.constantFrom(...s.enum);
  if (s.const !== undefined) return fc.constant(s.const);
  const alternatives = s.anyOf ?? s.oneOf;
  if (alternatives?.length) return fc.oneof(...alternatives.map((alt) => validValue(alt, document)));
  const type = Array.isArray(s.type) ? s.type.find((t) => t !== 'null') : s.type;
  let arbitrary: fc.Arbitrary<unknown>;
  switch (type) {
    case 'integer':
      arbitrary = fc.oneof(
        fc.integer({ min: s.minimum ?? 0, max: Math.min(s.maximum ?? 1000, (s.minimum ?? 0) + 30) }),
        fc.integer({ min: Math.max(s.minimum ?? -(2 ** 31), Number.MIN_SAFE_INTEGER), max: Math.min(s.maximum ?? 2 ** 31, Number.MAX_SAFE_INTEGER) }),
      );
      break;
    case 'number':
      arbitrary = fc.double({ min: s.minimum ?? -1e6, max: s.maximum ?? 1e6, noNaN: true });
      break;
    case 'boolean':
      arbitrary = fc.boolean();
      break;
    case 'array':
      arbitrary = fc.array(validValue(s.items ?? {}, document), { maxLength: 3 });
      break;
    case 'object': {
      const properties = s.properties ?? {};
      const record: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [key, value] of Object.entries(properties)) record[key] = validValue(value, document);
      arbitrary = fc.record(record, { requiredKeys: (s.required ?? []).filter((key) => key in properties) });
      break;
    }
    case 'string':
    default: {
      const min = s.minLength ?? 0;
      const max = s.maxLength ?? 64;
      if (s.format === 'uri' || s.format === 'url') {
        arbitrary = fc.webUrl().filter((url) => url.length <= max);
      } else if (s.format === 'date-time') {
        arbitrary = fc.date({ noInvalidDate: true }).map((d) => d.toISOString());
      } else {
        const matching = s.pattern ? safeStringMatching(s.pattern, max) : undefined;
        const word = fc.stringMatching(/^[a-z][a-z0-9._-]*$/, { maxLength: Math.max(1, Math.min(max, 40)) });
        arbitrary = (matching ?? word).filter((text) => text.length >= min && text.length <= max);
        if (!matching && min > 1) arbitrary = fc.constant('x'.repeat(min)).chain((pad) => word.map((w) => `${w}${pad}`.slice(0, max)));
      }
    }
  }
  return s.nullable ? fc.oneof({ weight: 9, arbitrary }, { weight: 1, arbitrary: fc.constant(null) }) : arbitrary;
}

/** Values that break the schema: wrong types, out of range, too long, and the nasty list. */
export function invalidValue(schema: JsonSchema, document: OpenApiDocument): fc.Arbitrary<unknown> {
  const s = resolve(schema, document);
  const edges: unknown[] = [];
  if (s.maxLength !== undefined) edges.push('a'.repeat(s.maxLength + 1), 'é'.repeat(s.maxLength + 1));
  if (s.minLength !== undefined && s.minLength > 0) edges.push('a'.repeat(s.minLength - 1));
  if (s.maximum !== undefined) edges.push(s.maximum + 1, s.maximum * 10, String(s.maximum + 1));
  if (s.minimum !== undefined) edges.push(s.minimum - 1, -(2 ** 31), String(s.minimum - 1));
  if (s.enum) edges.push(`${String(s.enum[0])}x`, String(s.enum[0]).toUpperCase(), ` ${String(s.enum[0])}`);
  return edges.length ? fc.oneof(fc.constantFrom(...edges), nastyJsonValue()) : nastyJsonValue();
}

/** Text for a path, query or header parameter: valid (as text) or adversarial. */
function parameterText(parameter: RawParameter, document: OpenApiDocument, hints: string[]): fc.Arbitrary<string> {
  const schema = parameter.schema ?? {};
  const asText = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value) ?? '');
  const arbitraries: fc.WeightedArbitrary<string>[] = [
    { weight: 4, arbitrary: validValue(schema, document).map(asText) },
    { weight: 3, arbitrary: invalidValue(schema, document).map(asText) },
    { weight: 2, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }) },
  ];
  if (hints.length) arbitraries.push({ weight: 5, arbitrary: fc.constantFrom(...hints) });
  return fc.oneof(...arbitraries);
}

// ---------------------------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------------------------

export interface FuzzRequest {
  op: Operation;
  role: Role;
  method: string;
  url: string;
  headers: Record<string, string>;
  payload?: string | Buffer;
  /** How the body was made (for reports). */
  bodyKind: string;
}

export interface FuzzHints {
  /** Known-good values of path parameters by name (existing ids, artifact names), so deep paths are reached. */
  pathValues: Record<string, string[]>;
  /** Known-good values of query parameters by name. */
  queryValues?: Record<string, string[]>;
  /** Strings that look like bearer tokens but are not valid ones (expired, tampered, other secret…). */
  badTokens: string[];
}

/**
 * encodeURIComponent, except that lone surrogates (which it refuses) become their WTF-8 bytes: invalid UTF-8 once
 * percent-decoded, exactly what a hostile client would send.
 */
export function percentEncode(value: string): string {
  try {
    return encodeURIComponent(value);
  } catch {
    let out = '';
    for (const char of value) {
      const code = char.codePointAt(0) ?? 0;
      if (code >= 0xd800 && code <= 0xdfff) {
        out += [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)].map((b) => `%${b.toString(16).toUpperCase()}`).join('');
      } else out += encodeURIComponent(char);
    }
    return out;
  }
}

/** Percent-encodes a path parameter; the "." and ".." segments, which URL parsers resolve, are disguised. */
function encodePathSegment(value: string): string {
  const encoded = percentEncode(value);
  return encoded === '.' || encoded === '..' ? encoded.replace(/\./g, '%252E') : encoded;
}

// eslint-disable-next-line no-control-regex -- control characters are exactly what is looked for
const CONTROL_OR_SURROGATE = /[#\s\u0000-\u001f\u007f]|[\ud800-\udfff]/g;
// eslint-disable-next-line no-control-regex -- a header value may not carry these
const LINE_BREAK_OR_NUL = /[\r\n\u0000]/g;

function encodeQuery(value: string): fc.Arbitrary<string> {
  // Mostly well-formed; sometimes raw (unencoded &, =, #, % and spaces reach the parser as they are).
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant(percentEncode(value)) },
    { weight: 1, arbitrary: fc.constant(value.replace(CONTROL_OR_SURROGATE, (c) => percentEncode(c))) },
  );
}

const EXTRA_QUERY: string[] = [
  'foo=bar',
  '__proto__[role]=admin',
  'constructor[prototype][role]=admin',
  '__proto__=1',
  'page=1&page=2',
  'per_page=1&per_page=abc',
  'page[]=1',
  'q[]=a&q[]=b',
  'status=success&status=fail',
  'offset=1&offset=2',
  '=',
  '&&&',
  'a=%ZZ',
  '%E0%A4%A=1',
  '%00=%00',
];

const ACCEPTS = ['application/json', '*/*', 'text/html', 'application/xml', 'application/problem+json', 'text/plain', 'application/octet-stream', '', 'garbage;;;q=x'];

export function requestArbitrary(op: Operation, document: OpenApiDocument, tokens: Record<Role, string | undefined>, hints: FuzzHints): fc.Arbitrary<FuzzRequest> {
  const pathArbitraries = op.pathParams.map((parameter) =>
    parameterText(parameter, document, hints.pathValues[parameter.name] ?? []).filter((text) => text !== ''),
  );
  const queryArbitraries = op.queryParams.map((parameter) =>
    fc.option(
      parameterText(parameter, document, hints.queryValues?.[parameter.name] ?? []).chain((value) =>
        encodeQuery(value).map((encoded) => `${percentEncode(parameter.name)}=${encoded}`),
      ),
      { nil: undefined, freq: 2 },
    ),
  );
  const headerArbitraries = op.headerParams
    // A live log stream would never end on a queued build: Accept is not among the fuzzed header parameters.
    .filter((parameter) => parameter.name.toLowerCase() !== 'accept')
    .map((parameter) =>
      fc.option(
        parameterText(parameter, document, []).map((value) => [parameter.name, value.replace(LINE_BREAK_OR_NUL, '')] as const),
        { nil: undefined, freq: 2 },
      ),
    );

  const authorization: fc.Arbitrary<{ role: Role; header?: string }> = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom<Role>('admin', 'maintainer', 'viewer').map((role) => ({ role, header: `Bearer ${tokens[role] ?? ''}` })) },
    { weight: 2, arbitrary: fc.constant({ role: 'anonymous' as Role }) },
    {
      weight: 2,
      arbitrary: fc
        .constantFrom(
          ...hints.badTokens.map((token) => `Bearer ${token}`),
          'Bearer',
          'Bearer ',
          'bearer',
          'Basic YWRtaW46YWRtaW4xMjM=',
          'Bearer a.b.c',
          'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.',
          `Bearer ${'x'.repeat(5000)}`,
          `Bearer ${tokens.admin ?? ''} extra`,
          `Token ${tokens.admin ?? ''}`,
          `bearer ${tokens.viewer ?? ''}`,
          `Bearer\t${tokens.viewer ?? ''}`,
          'Bearer null',
          "Bearer ' OR 1=1 --",
        )
        .map((header) => ({ role: 'anonymous' as Role, header })),
    },
  );

  const body: fc.Arbitrary<{ kind: string; payload?: string | Buffer; contentType?: string }> = (() => {
    const schema = op.body ? resolve(op.body.schema, document) : undefined;
    const contentType = fc.constantFrom(...CONTENT_TYPES);
    const valid = schema ? validValue(schema, document) : fc.constant({});
    const properties = Object.entries(schema?.properties ?? {});
    const mutated: fc.Arbitrary<unknown> =
      properties.length && schema
        ? fc
            .tuple(valid, fc.constantFrom(...properties))
            .chain(([base, [key, propertySchema]]) =>
              invalidValue(propertySchema, document).map((bad) => ({ ...(base as object), [key]: bad })),
            )
        : nastyJsonValue();
    const extraKeys = valid.chain((base) =>
      fc
        .constantFrom('admin', 'role', 'id', 'password_hash', 'status', 'project_id', 'number', 'is_admin', 'created_at', 'zz')
        .chain((key) => nastyJsonValue().map((value) => ({ ...(base as object), [key]: value }))),
    );
    const kinds: fc.WeightedArbitrary<{ kind: string; payload?: string | Buffer; contentType?: string }>[] = [
      { weight: 4, arbitrary: fc.tuple(valid, contentType).map(([v, ct]) => ({ kind: 'valid', payload: JSON.stringify(v), contentType: ct })) },
      { weight: 4, arbitrary: fc.tuple(mutated, contentType).map(([v, ct]) => ({ kind: 'mutated', payload: JSON.stringify(v) ?? 'null', contentType: ct })) },
      { weight: 2, arbitrary: fc.tuple(extraKeys, contentType).map(([v, ct]) => ({ kind: 'extra-key', payload: JSON.stringify(v) ?? 'null', contentType: ct })) },
      { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...RAW_BODIES), contentType).map(([raw, ct]) => ({ kind: 'raw', payload: raw, contentType: ct })) },
      { weight: 1, arbitrary: fc.tuple(nastyJsonValue(), contentType).map(([v, ct]) => ({ kind: 'any-json', payload: JSON.stringify(v) ?? 'null', contentType: ct })) },
      {
        weight: 1,
        arbitrary: fc.tuple(fc.uint8Array({ maxLength: 64 }), contentType).map(([bytes, ct]) => ({ kind: 'bytes', payload: Buffer.from(bytes), contentType: ct })),
      },
      {
        weight: 1,
        // Valid JSON in another encoding than it claims, or invalid UTF-8 inside a string.
        arbitrary: fc.tuple(valid, fc.constantFrom('utf16le', 'latin1', 'bad-utf8')).map(([v, encoding]) => ({
          kind: `encoding-${encoding}`,
          payload:
            encoding === 'bad-utf8'
              ? Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xc3, 0x28, 0xff, 0xfe]), Buffer.from('"}')])
              : Buffer.from(JSON.stringify(v), encoding as BufferEncoding),
          contentType: 'application/json',
        })),
      },
    ];
    if (!op.body || !op.body.required) kinds.push({ weight: 3, arbitrary: fc.constant({ kind: 'none' }) });
    if (op.method === 'GET' || op.method === 'DELETE') {
      // Bodies on methods without one: mostly nothing, sometimes something.
      return fc.oneof({ weight: 6, arbitrary: fc.constant({ kind: 'none' }) }, ...kinds);
    }
    return fc.oneof(...kinds);
  })();

  const extraHeaders = fc.record(
    {
      accept: fc.constantFrom(...ACCEPTS),
      'x-request-id': fc.constantFrom('abc', 'x'.repeat(200), '../../etc', '\t', 'é', 'id with spaces'),
      'if-none-match': fc.constantFrom('*', '"abc"', 'W/"x"', ''.padEnd(300, 'x')),
      'accept-encoding': fc.constantFrom('gzip', 'br', 'identity;q=0', '*;q=0', 'zstd'),
      'x-http-method-override': fc.constantFrom('DELETE', 'PUT'),
      'content-encoding': fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'x-unknown'),
      'transfer-encoding': fc.constantFrom('chunked'),
    },
    { requiredKeys: [] },
  );

  return fc
    .record({
      path: fc.tuple(...pathArbitraries),
      query: fc.tuple(...queryArbitraries),
      extraQuery: fc.option(fc.constantFrom(...EXTRA_QUERY), { nil: undefined, freq: 4 }),
      headerParams: fc.tuple(...headerArbitraries),
      auth: authorization,
      body,
      extraHeaders: fc.option(extraHeaders, { nil: undefined, freq: 3 }),
    })
    .map(({ path, query, extraQuery, headerParams, auth, body: chosen, extraHeaders: more }) => {
      let index = 0;
      const url = op.path.replace(/\{[^}]+\}/g, () => encodePathSegment(path[index++] ?? ''));
      const queryParts = [...query.filter((part): part is string => part !== undefined), ...(extraQuery ? [extraQuery] : [])];
      const headers: Record<string, string> = {};
      for (const [key, value] of Object.entries(more ?? {})) {
        // A body-less request must not claim a body encoding it does not have (light-my-request would hang on it).
        if ((key === 'transfer-encoding' || key === 'content-encoding') && chosen.payload === undefined) continue;
        if (key !== 'transfer-encoding') headers[key] = value;
      }
      for (const header of headerParams) if (header) headers[header[0]] = header[1];
      if (auth.header !== undefined) headers.authorization = auth.header;
      if (chosen.contentType !== undefined && chosen.payload !== undefined) headers['content-type'] = chosen.contentType;
      return {
        op,
        role: auth.role,
        method: op.method,
        url: queryParts.length ? `${url}?${queryParts.join('&')}` : url,
        headers,
        ...(chosen.payload !== undefined ? { payload: chosen.payload } : {}),
        bodyKind: chosen.kind,
      };
    });
}

/** One arbitrary over every operation, each equally likely. */
export function anyRequest(operations: Operation[], document: OpenApiDocument, tokens: Record<Role, string | undefined>, hints: FuzzHints): fc.Arbitrary<FuzzRequest> {
  return fc.oneof(...operations.map((op) => requestArbitrary(op, document, tokens, hints)));
}
