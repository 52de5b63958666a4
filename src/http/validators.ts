import { Ajv, type ErrorObject, type Options, type SchemaValidateFunction } from 'ajv';
import formats from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';
import { CANONICAL_NAME_KEYWORD, nameViolation } from '../schemas/names.js';

/**
 * The longest string a schema `pattern` is ever run on. Every patterned field has a `maxLength` below it
 * (test/http/schema-patterns.test.ts checks so), but with `allErrors` Ajv still runs the pattern after `maxLength` has
 * failed: a 64 KiB value must not reach a regex at all, whatever the regex. Longer strings fail the pattern unread.
 */
export const PATTERN_INPUT_CAP = 4096;

/** A schema pattern that refuses, without running, any text longer than PATTERN_INPUT_CAP. */
function cappedPattern(pattern: string, flags: string) {
  const regex = new RegExp(pattern, flags);
  // Ajv caches compiled patterns under their toString(): it must differ from one pattern to the next.
  return { test: (text: string) => text.length <= PATTERN_INPUT_CAP && regex.test(text), toString: () => `capped ${String(regex)}` };
}
// Only read by Ajv's standalone code generation, which this service does not use.
cappedPattern.code = 'cappedPattern';

const shared: Options = {
  useDefaults: true,
  // Unknown body fields must be refused (mass assignment), not silently dropped as Fastify's default does.
  removeAdditional: false,
  // Every failing field is reported, as the API contract promises; bodies are size-bounded.
  allErrors: true,
  strict: false,
  code: { regExp: cappedPattern },
};

// ajv-formats is CommonJS with a `default` export: under NodeNext the callable is that property.
const addFormats = formats.default;

function createAjv(options: Options): Ajv {
  const ajv = new Ajv({ ...shared, ...options });
  addFormats(ajv);
  // Names (projects, users, branches): NFC first, so that maxLength and pattern see the stored form.
  const canonicalName: SchemaValidateFunction = (enabled: boolean, text: string, _parentSchema, data) => {
    if (!enabled) return true;
    const violation = nameViolation(text);
    if (violation) {
      canonicalName.errors = [{ keyword: CANONICAL_NAME_KEYWORD, message: violation, params: {} }];
      return false;
    }
    const normalized = text.normalize('NFC');
    if (normalized !== text && data) data.parentData[data.parentDataProperty] = normalized;
    return true;
  };
  ajv.addKeyword({ keyword: CANONICAL_NAME_KEYWORD, type: 'string', modifying: true, errors: true, before: 'maxLength', validate: canonicalName });
  return ajv;
}

/** What a query, path or header integer must look like: decimal digits only (no sign, blank, `0x`, exponent or point). */
const DECIMAL_DIGITS = /^[0-9]+$/;

const isIntegerSchema = (schema: unknown) => {
  const type = (schema as { type?: unknown } | undefined)?.type;
  return type === 'integer' || (Array.isArray(type) && type.includes('integer'));
};

/**
 * Ajv coerces text to numbers as JavaScript does: `0x10` is 16, `1e3` is 1000, ` 1`, `+1` and `1.0` are 1. Two
 * spellings of one page or id are two cache keys and a way past naive filters, so integers in query strings, paths and
 * headers are refused unless written in decimal digits; the schema's bounds are checked by Ajv after.
 */
function nonCanonicalIntegers(schema: unknown, data: unknown): ErrorObject[] {
  const properties = (schema as { properties?: Record<string, unknown> } | undefined)?.properties;
  if (!properties || typeof data !== 'object' || data === null) return [];
  const errors: ErrorObject[] = [];
  for (const [name, property] of Object.entries(properties)) {
    if (!isIntegerSchema(property)) continue;
    const value = (data as Record<string, unknown>)[name];
    const texts = Array.isArray(value) ? value : [value];
    if (texts.some((text) => typeof text === 'string' && !DECIMAL_DIGITS.test(text))) {
      errors.push({
        instancePath: `/${name}`,
        schemaPath: `#/properties/${name}/type`,
        keyword: 'type',
        params: { type: 'integer' },
        message: 'must be an integer written with decimal digits only',
      });
    }
  }
  return errors;
}

/**
 * Query strings, params and headers arrive as text and are coerced to the schema's types (integers only from decimal
 * digits); JSON bodies are already typed, so they are validated as they are: `{"name": 123}` is an error, not the
 * name "123".
 */
export function createValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const coercing = createAjv({ coerceTypes: 'array' });
  const exact = createAjv({ coerceTypes: false });
  return ({ schema, httpPart }) => {
    if (httpPart === 'body') return exact.compile(schema as object);
    const validate = coercing.compile(schema as object);
    const validateText = (data: unknown) => {
      const refused = nonCanonicalIntegers(schema, data);
      const valid = validate(data);
      // What Ajv says of a value refused here (not an integer, or out of bounds once coerced) would only confuse.
      const refusedPaths = new Set(refused.map((error) => error.instancePath));
      const errors = [...refused, ...(validate.errors ?? []).filter((error) => !refusedPaths.has(error.instancePath))];
      validateText.errors = errors.length > 0 ? errors : null;
      return valid && refused.length === 0;
    };
    validateText.errors = null as ErrorObject[] | null;
    return validateText;
  };
}
