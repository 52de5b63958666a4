import { Type, type Static } from '@sinclair/typebox';

export const ERROR_CODES = [
  'unauthorized',
  'forbidden',
  'not_found',
  'method_not_allowed',
  'request_timeout',
  'conflict',
  'gone',
  'validation_error',
  'rate_limited',
  'payload_too_large',
  'uri_too_long',
  'unsupported_media_type',
  'headers_too_large',
  'service_unavailable',
  'internal_error',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export const Problem = Type.Object(
  {
    type: Type.String({ description: 'A URI naming the kind of problem', examples: ['urn:usine:problem:not_found'] }),
    title: Type.String({ description: 'Short, human-readable summary of the kind of problem', examples: ['Not Found'] }),
    status: Type.Integer({ description: 'The HTTP status code', examples: [404] }),
    detail: Type.String({ description: 'What went wrong in this occurrence', examples: ['Project 42 does not exist'] }),
    instance: Type.Optional(Type.String({ description: 'The request path that produced the problem', examples: ['/projects/42'] })),
    error: Type.Union(
      ERROR_CODES.map((code) => Type.Literal(code)),
      { description: "Stable snake_case error code (the seed API's `error` field)", examples: ['not_found'] },
    ),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          path: Type.String({ description: 'JSON pointer to the failing field', examples: ['/body/name'] }),
          message: Type.String({ description: 'Why the field was refused', examples: ['must NOT have fewer than 1 characters'] }),
        }),
        { description: 'For validation errors: each failing field' },
      ),
    ),
  },
  {
    $id: 'Problem',
    title: 'Problem',
    description: 'RFC 9457 problem details, served as `application/problem+json`',
  },
);
export type ProblemBody = Static<typeof Problem>;
