import { Ajv, type Options } from 'ajv';
import formats from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

const shared: Options = {
  useDefaults: true,
  // Unknown body fields must be refused (mass assignment), not silently dropped as Fastify's default does.
  removeAdditional: false,
  // Every failing field is reported, as the API contract promises; bodies are size-bounded.
  allErrors: true,
  strict: false,
};

// ajv-formats is CommonJS with a `default` export: under NodeNext the callable is that property.
const addFormats = formats.default;

function createAjv(options: Options): Ajv {
  const ajv = new Ajv({ ...shared, ...options });
  addFormats(ajv);
  return ajv;
}

/**
 * Query strings, params and headers arrive as text and are coerced to the schema's types; JSON bodies are
 * already typed, so they are validated as they are: `{"name": 123}` is an error, not the name "123".
 */
export function createValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const coercing = createAjv({ coerceTypes: 'array' });
  const exact = createAjv({ coerceTypes: false });
  return ({ schema, httpPart }) => (httpPart === 'body' ? exact : coercing).compile(schema as object);
}
