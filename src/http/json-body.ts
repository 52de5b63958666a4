import type { FastifyBodyParser, FastifyInstance, FastifyRequest } from 'fastify';

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null;

/** `/a/b~1c` for the keys a, b/c (RFC 6901). */
const pointer = (keys: string[]) => keys.map((key) => `/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');

/**
 * Where a parsed JSON value holds what Fastify's prototype-poisoning guard refuses: a `__proto__` key, or a
 * `constructor` key whose object has a `prototype` (JSON.parse keeps both as plain own keys). A loop, not recursion:
 * the body limit allows nesting deep enough to overflow the stack.
 */
export function poisonedKey(value: unknown): string | undefined {
  const pending: { value: unknown; path: string[] }[] = [{ value, path: [] }];
  for (let next = pending.pop(); next; next = pending.pop()) {
    if (!isObject(next.value)) continue;
    if (Object.hasOwn(next.value, '__proto__')) return pointer([...next.path, '__proto__']);
    const constructor = next.value.constructor;
    if (Object.hasOwn(next.value, 'constructor') && isObject(constructor) && Object.hasOwn(constructor, 'prototype')) {
      return pointer([...next.path, 'constructor', 'prototype']);
    }
    for (const [key, child] of Object.entries(next.value)) if (isObject(child)) pending.push({ value: child, path: [...next.path, key] });
  }
  return undefined;
}

/** Whether a body schema accepts "no body" (which Fastify validates as `null`): none at all, or one that admits null. */
export function admitsNoBody(schema: unknown): boolean {
  if (schema === undefined) return true;
  if (!isObject(schema)) return false;
  if (schema.type === 'null' || (Array.isArray(schema.type) && schema.type.includes('null')) || schema.nullable === true) return true;
  return ['anyOf', 'oneOf'].some((keyword) => Array.isArray(schema[keyword]) && (schema[keyword] as unknown[]).some(admitsNoBody));
}

/** A refused key as a validation error, so that the problem names it in `errors` like any other failing field. */
function poisonError(path: string): Error {
  return Object.assign(new Error(`The body contains the key ${path}, which this server refuses`), {
    statusCode: 400,
    validationContext: 'body',
    validation: [{ instancePath: path, message: 'is a key that could rewrite object prototypes, refused in any body' }],
  });
}

/**
 * Fastify's JSON parser (prototype poisoning refused, as by default), with two differences:
 * - an empty body sent as `application/json` means "no body" on routes whose body is optional (Swagger UI sends
 *   exactly that on the build trigger); where a body is required it stays Fastify's clear 400;
 * - a body refused for a `__proto__` or `constructor.prototype` key says so, not "not valid JSON". The second parse
 *   that finds the key happens only on that error path.
 */
export function jsonBodyParser(fastify: FastifyInstance): FastifyBodyParser<string> {
  const parse = fastify.getDefaultJsonParser('error', 'error');
  return (request: FastifyRequest, body: string, done) => {
    if (body.length === 0 && admitsNoBody(request.routeOptions.schema?.body)) {
      done(null, undefined);
      return;
    }
    parse(request, body, (error, value: unknown) => {
      if (error) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(body);
        } catch {
          // Not JSON at all: Fastify's error stands.
        }
        const key = parsed === undefined ? undefined : poisonedKey(parsed);
        if (key !== undefined) {
          done(poisonError(key), undefined);
          return;
        }
      }
      done(error, value);
    });
  };
}
