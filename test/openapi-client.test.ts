/**
 * The generated client types (clients/typescript/usine.d.ts) are usable from TypeScript and say what the API
 * answers: checked by the type checker (`tsc --noEmit`, `npm run typecheck`) and by vitest's expectTypeOf, then
 * against a real answer.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { components, operations, paths } from '../clients/typescript/usine.js';
import { injectAs, testDb, useTestApp } from './helper.js';

type Build = components['schemas']['Build'];
type Project = components['schemas']['Project'];
type Problem = components['schemas']['Problem'];

describe(`Generated TypeScript client types (${testDb})`, () => {
  const ctx = useTestApp();

  it('types the shared schemas with their fields, nullable ones included', () => {
    expectTypeOf<Build['status']>().toEqualTypeOf<'queued' | 'running' | 'success' | 'fail' | 'canceled'>();
    expectTypeOf<Build['duration_s']>().toEqualTypeOf<number | null>();
    expectTypeOf<Project['last_build_status']>().toEqualTypeOf<'queued' | 'running' | 'success' | 'fail' | 'canceled' | null>();
    expectTypeOf<Problem['error']>().toExtend<string>();
    expectTypeOf<components['schemas']['TokenPair']['token_type']>().toEqualTypeOf<'bearer'>();
  });

  it('types paths and operations: parameters, bodies and responses by status', () => {
    type CreateProject = paths['/projects']['post'];
    expectTypeOf<CreateProject['requestBody']['content']['application/json']>().toEqualTypeOf<{
      name: string;
      repo: string;
      default_branch?: string;
    }>();
    expectTypeOf<CreateProject['responses'][201]['content']['application/json']>().toEqualTypeOf<Project>();
    expectTypeOf<CreateProject['responses'][409]['content']['application/problem+json']>().toEqualTypeOf<Problem>();
    expectTypeOf<paths['/builds/{id}']['get']['parameters']['path']>().toEqualTypeOf<{ id: number }>();
    expectTypeOf<operations['getBuild']['responses'][200]['content']['application/json']>().toEqualTypeOf<Build>();
  });

  it('matches what the API really answers', async () => {
    const created = await injectAs(ctx.app, ctx.adminToken, {
      method: 'POST',
      url: '/projects',
      payload: { name: 'typed-client', repo: 'https://github.com/demo/typed' } satisfies paths['/projects']['post']['requestBody']['content']['application/json'],
    });
    expect(created.statusCode).toBe(201);
    const project = created.json<Project>();
    const fields: (keyof Project)[] = ['id', 'name', 'repo', 'default_branch', 'last_build_status', 'created_at', 'updated_at'];
    expect(Object.keys(project).sort()).toEqual([...fields].sort());
  });
});
