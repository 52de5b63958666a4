/**
 * Every regex a request schema runs is bounded (issue #15): each `pattern` on a path, query, header or body field
 * sits next to a `maxLength` no larger than PATTERN_INPUT_CAP, the length past which src/http/validators.ts refuses
 * text without running the pattern at all. A new patterned field without a bound fails here.
 */
import { describe, expect, it } from 'vitest';
import { PATTERN_INPUT_CAP } from '../../src/http/validators.js';
import { testDb, useTestApp } from '../helper.js';

type Schema = Record<string, unknown>;

const ctx = useTestApp();

describe(`request schema patterns (${testDb})`, () => {
  it(`are all bounded by a maxLength of at most ${PATTERN_INPUT_CAP} characters`, () => {
    const document = ctx.app.swagger() as unknown as { paths: Record<string, Record<string, Schema>>; components?: { schemas?: Record<string, Schema> } };
    const components = document.components?.schemas ?? {};
    const patterned: string[] = [];
    const unbounded: string[] = [];
    const visit = (schema: unknown, where: string, seen: Set<unknown>) => {
      if (typeof schema !== 'object' || schema === null || seen.has(schema)) return;
      seen.add(schema);
      const node = schema as Schema;
      if (typeof node.$ref === 'string') visit(components[node.$ref.split('/').pop()!], where, seen);
      if (typeof node.pattern === 'string') {
        patterned.push(where);
        if (typeof node.maxLength !== 'number' || node.maxLength > PATTERN_INPUT_CAP) unbounded.push(`${where} (maxLength ${String(node.maxLength)})`);
      }
      for (const [key, value] of Object.entries(node.properties ?? {})) visit(value, `${where}.${key}`, seen);
      for (const key of ['items', 'additionalProperties', 'not']) visit(node[key], `${where}[${key}]`, seen);
      for (const key of ['anyOf', 'allOf', 'oneOf']) for (const [index, part] of ((node[key] as unknown[] | undefined) ?? []).entries()) visit(part, `${where}|${index}`, seen);
    };
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        for (const parameter of (operation.parameters as { in: string; name: string; schema: unknown }[] | undefined) ?? []) {
          visit(parameter.schema, `${method.toUpperCase()} ${path} ${parameter.in}:${parameter.name}`, new Set());
        }
        const content = (operation.requestBody as { content?: Record<string, { schema: unknown }> } | undefined)?.content ?? {};
        for (const [type, { schema }] of Object.entries(content)) visit(schema, `${method.toUpperCase()} ${path} body(${type})`, new Set());
      }
    }
    // The walk found the patterned fields it must (names, branches, the idempotency key, the cursor…).
    expect(patterned.some((where) => where.includes('body(application/json).name'))).toBe(true);
    expect(patterned.some((where) => where.includes('header:idempotency-key'))).toBe(true);
    expect(patterned.some((where) => where.includes('query:cursor'))).toBe(true);
    expect(unbounded).toEqual([]);
  });
});
