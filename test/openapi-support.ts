/**
 * Reading the OpenAPI document in tests: its operations, and an Ajv that validates values against its schemas
 * (OpenAPI 3.0 dialect: `nullable`, `example`, `$ref`s into components.schemas).
 */
import { Ajv, type ValidateFunction } from 'ajv';
import formats from 'ajv-formats';
import type { OpenAPIV3 } from 'openapi-types';

export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

export interface DocumentedOperation {
  /** `GET /builds/{id}` */
  key: string;
  method: (typeof HTTP_METHODS)[number];
  path: string;
  operation: OpenAPIV3.OperationObject;
}

export function documentedOperations(document: OpenAPIV3.Document): DocumentedOperation[] {
  const operations: DocumentedOperation[] = [];
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of HTTP_METHODS) {
      const operation = item?.[method];
      if (operation) operations.push({ key: `${method.toUpperCase()} ${path}`, method, path, operation });
    }
  }
  return operations;
}

export const isRef = (value: unknown): value is OpenAPIV3.ReferenceObject =>
  typeof value === 'object' && value !== null && '$ref' in value;

const DOCUMENT_ID = 'usine-openapi.json';

// ajv-formats is CommonJS with a `default` export: under NodeNext the callable is that property (src/http/validators.ts).
const addFormats = formats.default;

/** Validates values against schemas of one document; `$ref`s resolve to its components. */
export class DocumentValidator {
  private readonly ajv: Ajv;
  private readonly cache = new Map<unknown, ValidateFunction>();

  constructor(document: OpenAPIV3.Document) {
    this.ajv = new Ajv({ allErrors: true, strict: false, validateFormats: true });
    addFormats(this.ajv);
    // `binary` (file bytes) is not a JSON Schema format: any string of bytes is one.
    this.ajv.addFormat('binary', true);
    this.ajv.addSchema({ $id: DOCUMENT_ID, components: rebase(document.components ?? {}) });
  }

  /** Undefined when the value is valid, else Ajv's errors as text. */
  errors(schema: unknown, value: unknown): string | undefined {
    let validate = this.cache.get(schema);
    if (!validate) {
      validate = this.ajv.compile(rebase(schema) as object);
      this.cache.set(schema, validate);
    }
    return validate(value) ? undefined : this.ajv.errorsText(validate.errors, { separator: '; ' });
  }
}

/** A copy whose `#/components/...` references point into the document registered under DOCUMENT_ID. */
function rebase(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rebase);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, inner]) => [
      key,
      key === '$ref' && typeof inner === 'string' && inner.startsWith('#/') ? `${DOCUMENT_ID}${inner}` : rebase(inner),
    ]),
  );
}

/** The schema a `$ref` names, or the schema itself. */
export function deref(document: OpenAPIV3.Document, schema: unknown): OpenAPIV3.SchemaObject | undefined {
  if (isRef(schema)) {
    const name = schema.$ref.replace('#/components/schemas/', '');
    return document.components?.schemas?.[name] as OpenAPIV3.SchemaObject | undefined;
  }
  return schema as OpenAPIV3.SchemaObject | undefined;
}

/** The first example of a parameter or media type: `example`, else the first of `examples`, else its schema's. */
export function firstExample(
  document: OpenAPIV3.Document,
  holder: { example?: unknown; examples?: Record<string, OpenAPIV3.ReferenceObject | OpenAPIV3.ExampleObject>; schema?: unknown },
): { found: boolean; value?: unknown } {
  if (holder.example !== undefined) return { found: true, value: holder.example };
  const first = Object.values(holder.examples ?? {})[0];
  if (first && !isRef(first) && first.value !== undefined) return { found: true, value: first.value };
  const schema = deref(document, holder.schema);
  if (schema?.example !== undefined) return { found: true, value: schema.example };
  return { found: false };
}
