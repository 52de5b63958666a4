import type { LightMyRequestResponse } from 'fastify';
import { beforeAll, describe, expect, it } from 'vitest';
import { injectAs, problemOf, uniqueName, useTestApp, type TestContext, type BuildJson } from '../helper.js';

/** Build pages by keyset (`?cursor=`) next to `?page=`: same items, exact totals, page numbers and Link headers. */


interface CursorPage {
  items: BuildJson[];
  page: number;
  per_page: number;
  total: number;
  next_cursor: string | null;
}

const STATUSES = ['success', 'fail', 'canceled'] as const;
const BUILDS = 53;

/** Build n: status cycles through STATUSES, branch is `main` except every fourth (`feature/x`). */
const statusOf = (number: number) => STATUSES[number % STATUSES.length]!;
const branchOf = (number: number) => (number % 4 === 0 ? 'feature/x' : 'main');

function links(header: LightMyRequestResponse['headers'][string]): Record<string, string> {
  const result: Record<string, string> = {};
  for (const part of String(header).split(',')) {
    const match = /^\s*<([^>]*)>\s*;\s*rel="([^"]+)"\s*$/.exec(part);
    expect(match, `malformed link part: ${part}`).not.toBeNull();
    result[match![2]!] = match![1]!;
  }
  return result;
}

describe('GET /projects/:id/builds with ?cursor=', () => {
  // No workers: the builds below are written straight to the table, already finished, and must stay as they are.
  const ctx: TestContext = useTestApp({ BUILD_CONCURRENCY: '0' });
  let projectId: number;

  beforeAll(async () => {
    const created = await injectAs(ctx.app, ctx.adminToken, {
      method: 'POST',
      url: '/projects',
      payload: { name: uniqueName('CursorProj'), repo: 'https://github.com/demo/repo' },
    });
    expect(created.statusCode, created.body).toBe(201);
    projectId = created.json<{ id: number }>().id;
    const { db, tables } = ctx.app.database;
    await db.insert(tables.builds).values(
      Array.from({ length: BUILDS }, (_, index) => ({
        project_id: projectId,
        number: index + 1,
        status: statusOf(index + 1),
        branch: branchOf(index + 1),
        commit_sha: 'a94a8fe5ccb19ba61c4c0873d391e987982fbbd3',
        triggered_by: 'admin',
      })),
    );
  });

  const list = (query: Record<string, string>) => injectAs(ctx.app, ctx.adminToken, { url: `/projects/${projectId}/builds`, query });

  /** Follows next_cursor from the first page to the end; checks each page against `?page=` on the way. */
  async function walk(filter: Record<string, string>, perPage: number) {
    const numbers: number[] = [];
    let cursor: string | null = null;
    let expectedPage = 1;
    let total: number | undefined;
    do {
      const response = await list({ ...filter, per_page: String(perPage), ...(cursor ? { cursor } : {}) });
      expect(response.statusCode, response.body).toBe(200);
      const body = response.json<CursorPage>();
      expect(body.page).toBe(expectedPage);
      expect(body.per_page).toBe(perPage);
      total ??= body.total;
      expect(body.total).toBe(total);

      const byPage = await list({ ...filter, per_page: String(perPage), page: String(expectedPage) });
      expect(byPage.json<CursorPage>().items).toEqual(body.items);
      expect(byPage.json<CursorPage>().next_cursor).toBe(body.next_cursor);

      const next = links(response.headers.link).next;
      if (body.next_cursor === null) {
        expect(next).toBeUndefined();
      } else {
        const params = new URLSearchParams(next!.split('?')[1]);
        expect(params.get('cursor')).toBe(body.next_cursor);
        expect(params.get('page')).toBe(String(expectedPage + 1));
        for (const [name, value] of Object.entries(filter)) expect(params.get(name)).toBe(value);
      }
      expect(body.items.length).toBeLessThanOrEqual(perPage);
      numbers.push(...body.items.map((build) => build.number));
      cursor = body.next_cursor;
      expectedPage++;
    } while (cursor !== null);
    return { numbers, total };
  }

  const newestFirst = (keep: (number: number) => boolean) =>
    Array.from({ length: BUILDS }, (_, index) => BUILDS - index).filter(keep);

  it('walks every build, newest first, with the exact total and the page number on each page', async () => {
    const { numbers, total } = await walk({}, 7);
    expect(numbers).toEqual(newestFirst(() => true));
    expect(total).toBe(BUILDS);
  });

  it('walks a status filter, the total following the filter', async () => {
    const { numbers, total } = await walk({ status: 'fail' }, 5);
    const expected = newestFirst((number) => statusOf(number) === 'fail');
    expect(numbers).toEqual(expected);
    expect(total).toBe(expected.length);
  });

  it('walks a branch and status filter together', async () => {
    const { numbers, total } = await walk({ branch: 'feature/x', status: 'success' }, 2);
    const expected = newestFirst((number) => branchOf(number) === 'feature/x' && statusOf(number) === 'success');
    expect(numbers).toEqual(expected);
    expect(total).toBe(expected.length);
  });

  it('a page that fills exactly has no next cursor', async () => {
    const response = await list({ per_page: String(BUILDS) });
    const body = response.json<CursorPage>();
    expect(body.items).toHaveLength(BUILDS);
    expect(body.next_cursor).toBeNull();
    expect(links(response.headers.link).next).toBeUndefined();
  });

  it('a page past the last is empty, with the total and without a next cursor', async () => {
    const body = (await list({ page: '99', per_page: '10' })).json<CursorPage>();
    expect(body).toEqual({ items: [], page: 99, per_page: 10, total: BUILDS, next_cursor: null });
  });

  it('the cursor wins over page', async () => {
    const first = (await list({ per_page: '10' })).json<CursorPage>();
    const body = (await list({ per_page: '10', page: '5', cursor: first.next_cursor! })).json<CursorPage>();
    expect(body.page).toBe(2);
    expect(body.items[0]?.number).toBe(BUILDS - 10);
  });

  it.each([
    ['not base64url text', 'not a cursor!'],
    ['another shape', Buffer.from('x42').toString('base64url')],
    ['a zero', Buffer.from('n0').toString('base64url')],
    ['too long', 'A'.repeat(40)],
  ])('refuses a cursor that is %s with 400', async (_label, cursor) => {
    const response = await list({ cursor });
    expect(response.statusCode).toBe(400);
    expect(problemOf(response).error).toBe('validation_error');
  });

  it('404 for a missing project, with or without a cursor, filtered or not', async () => {
    const response = await injectAs(ctx.app, ctx.adminToken, { url: '/projects/999999/builds', query: { cursor: Buffer.from('n5').toString('base64url') } });
    expect(response.statusCode).toBe(404);
    const queries: Record<string, string>[] = [{}, { status: 'success' }, { branch: 'main', page: '2' }, { status: 'fail', cursor: Buffer.from('n5').toString('base64url') }];
    for (const query of queries) {
      const missing = await injectAs(ctx.app, ctx.adminToken, { url: '/projects/999999/builds', query });
      expect(missing.statusCode, JSON.stringify(query)).toBe(404);
    }
  });
});
