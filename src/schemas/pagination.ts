import { Type, type Static } from '@sinclair/typebox';

export const MAX_PER_PAGE = 100;

export const PageQuery = Type.Object({
  page: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1, description: 'Page number, from 1' }),
  per_page: Type.Integer({
    minimum: 1,
    maximum: MAX_PER_PAGE,
    default: 20,
    description: `Items per page, at most ${MAX_PER_PAGE}`,
  }),
});
export type PageQuery = Static<typeof PageQuery>;

export const PageFields = {
  page: Type.Integer({ minimum: 1, description: 'This page number', examples: [1] }),
  per_page: Type.Integer({ minimum: 1, description: 'Items per page', examples: [20] }),
  total: Type.Integer({ minimum: 0, description: 'Items across all pages', examples: [1] }),
};

export const LinkHeader = Type.Object({
  link: Type.String({
    description: 'RFC 8288 links to the `first`, `prev`, `next` and `last` pages',
    examples: ['</projects?page=2&per_page=20>; rel="next", </projects?page=1&per_page=20>; rel="first"'],
  }),
});
