import { Type } from '@sinclair/typebox';
import { Problem } from './problem.js';
import { ref } from './ref.js';

const DESCRIPTIONS: Record<number, string> = {
  400: 'Bad request: malformed JSON or a field that fails validation (`validation_error`)',
  401: 'Missing, malformed, expired or tampered bearer token, or bad credentials (`unauthorized`); `WWW-Authenticate` names the bearer scheme',
  403: 'The caller is authenticated but lacks the role this route needs (`forbidden`)',
  404: 'No such resource (`not_found`)',
  405: 'The path exists but not with this method (`method_not_allowed`); `Allow` lists those it has',
  408: 'The request was not received within the server\'s timeouts (`request_timeout`)',
  409: 'The request conflicts with the current state (`conflict`)',
  410: 'What was asked for is no longer kept (`gone`)',
  413: 'The body is larger than the configured limit (`payload_too_large`)',
  414: 'A path segment is longer than the router accepts (`uri_too_long`)',
  415: 'The body is not `application/json` (`unsupported_media_type`)',
  429: 'Too many requests (`rate_limited`)',
  431: 'The request line and headers are larger than the server reads (`headers_too_large`)',
  503: 'The service or its database is unavailable (`service_unavailable`)',
};

/**
 * Problem-details responses for the given status codes, for a route's `response` schema. They are keyed by the
 * media type the error handler really sends, so the OpenAPI document says `application/problem+json` too.
 */
export function problemResponses(...codes: number[]) {
  return Object.fromEntries(
    codes.map((code) => [
      code,
      { description: DESCRIPTIONS[code] ?? 'Problem details', content: { 'application/problem+json': { schema: ref(Problem) } } },
    ]),
  );
}

/** Statuses any route with a JSON body can produce before its handler runs. */
export const BODY_ERRORS = [400, 413, 415] as const;

export const Empty = Type.Null({ description: 'No content' });
