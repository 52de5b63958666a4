import { Type, type Static } from '@sinclair/typebox';

export const MAX_PER_PAGE = 100;

export const DEFAULT_PER_PAGE = 20;

// Optional for clients; the validator fills in the defaults, so handlers always see numbers.
export const PageQuery = Type.Object({
  page: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1, description: 'Page number, from 1', examples: [1] })),
  per_page: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: MAX_PER_PAGE,
      default: DEFAULT_PER_PAGE,
      description: `Items per page, at most ${MAX_PER_PAGE}`,
      examples: [DEFAULT_PER_PAGE],
    }),
  ),
});
export type PageQuery = Static<typeof PageQuery>;

export const PageFields = {
  page: Type.Integer({ minimum: 1, description: 'This page number', examples: [1] }),
  per_page: Type.Integer({ minimum: 1, description: 'Items per page', examples: [20] }),
  total: Type.Integer({ minimum: 0, description: 'Items across all pages', examples: [1] }),
};

/** Response headers are documented as a map of name to schema. */
export const LinkHeader = {
  link: Type.String({
    description: 'RFC 8288 links to the `first`, `prev`, `next` and `last` pages',
    examples: ['</projects?page=2&per_page=20>; rel="next", </projects?page=1&per_page=20>; rel="first"'],
  }),
};

/** The validator already applied the defaults; this narrows the types for handlers. */
export function pageParams(query: PageQuery): { page: number; perPage: number } {
  return { page: query.page ?? 1, perPage: query.per_page ?? DEFAULT_PER_PAGE };
}
