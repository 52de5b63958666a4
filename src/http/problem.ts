import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { isDatabaseUnavailable, isUnstorableText } from '../db/errors.js';
import type { ErrorCode, ProblemBody } from '../schemas/problem.js';
import { noteAnswered } from './unread-bodies.js';

const CODE_BY_STATUS: Record<number, ErrorCode> = {
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  408: 'request_timeout',
  409: 'conflict',
  410: 'gone',
  413: 'payload_too_large',
  414: 'uri_too_long',
  415: 'unsupported_media_type',
  429: 'rate_limited',
  431: 'headers_too_large',
  503: 'service_unavailable',
};

/** Fastify's own client-error codes, re-worded for API users. */
const FASTIFY_DETAILS: Record<string, string> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'The body is not valid JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: "The body is empty but Content-Type says 'application/json'",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'The body must be sent as application/json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'Content-Length does not match the body',
  FST_ERR_CTP_BODY_TOO_LARGE: 'The body is larger than the limit this server accepts',
  FST_ERR_BAD_URL: 'The URL is malformed (invalid percent-encoding)',
  FST_ERR_MAX_PARAM_LENGTH: 'A path segment is longer than the 200 characters this server accepts',
};

export function problem(status: number, error: ErrorCode, detail: string, instance?: string): ProblemBody {
  return {
    type: `urn:usine:problem:${error}`,
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail,
    ...(instance === undefined ? {} : { instance }),
    error,
  };
}

/** The request path without its query string (which may carry secrets). */
export const pathOf = (request: FastifyRequest): string => request.url.split('?', 1)[0] ?? '/';

interface ValidationIssue {
  instancePath: string;
  message?: string;
  params?: Record<string, unknown>;
}

function validationErrors(issues: ValidationIssue[], part: string) {
  return issues.map((issue) => {
    const missing = issue.params?.missingProperty ?? issue.params?.additionalProperty;
    const path = `/${part}${issue.instancePath}${typeof missing === 'string' ? `/${missing}` : ''}`;
    const message =
      typeof issue.params?.additionalProperty === 'string' ? 'is not an accepted field' : (issue.message ?? 'is invalid');
    return { path, message };
  });
}

/** Turns anything thrown while handling a request into RFC 9457 problem details. */
export function toProblem(error: FastifyError, request: FastifyRequest): ProblemBody {
  const instance = pathOf(request);
  if (error.validation) {
    const part = error.validationContext ?? 'request';
    const errors = validationErrors(error.validation as ValidationIssue[], part);
    const summary = errors.map((e) => `${e.path} ${e.message}`).join('; ');
    return { ...problem(400, 'validation_error', `Invalid ${part}: ${summary}`, instance), errors };
  }
  // A safety net behind the schemas, which already refuse control characters in the text they accept.
  if (isUnstorableText(error)) {
    return problem(400, 'validation_error', 'The request contains a character that cannot be stored (such as NUL)', instance);
  }
  // The request's own stream failed (the client went away or was cut off mid-body, e.g. by the request timeout,
  // whose 408 Node has already written): its ECONNRESET is the client's, not a sign of a database outage. Nobody
  // reads this answer; it only keeps the log and the status honest.
  if (request.raw.errored === error) {
    return problem(400, 'validation_error', 'The request body was not received in full', instance);
  }
  if (isDatabaseUnavailable(error)) {
    return problem(503, 'service_unavailable', 'The database is unavailable; retry shortly', instance);
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    const code = CODE_BY_STATUS[status] ?? 'validation_error';
    return problem(status, code, FASTIFY_DETAILS[error.code] ?? error.message, instance);
  }
  if (status === 503) return problem(503, 'service_unavailable', error.message || 'Service unavailable', instance);
  // Never leak internals of a 5xx: the log has them, keyed by the request id.
  return problem(500, 'internal_error', `An unexpected error occurred (request ${request.id})`, instance);
}

/**
 * The challenge every 401 carries (RFC 9110 §15.5.2 requires one): the bearer scheme of RFC 6750, with
 * `error="invalid_token"` when the request presented a bearer token that was refused (expired, forged, revoked).
 * Without one (no Authorization header, another scheme, or a failed `POST /login`, whose credentials are in the body),
 * no error code: RFC 6750 §3.1 asks for none when the request had no bearer token. The problem's detail says why.
 */
function bearerChallenge(request: FastifyRequest): string {
  const authorization = request.headers.authorization;
  const presented = authorization !== undefined && /^bearer ./i.test(authorization);
  return presented ? 'Bearer realm="usine", error="invalid_token"' : 'Bearer realm="usine"';
}

export function sendProblem(reply: FastifyReply, body: ProblemBody): FastifyReply {
  if (body.status === 503 || body.status === 429) reply.header('retry-after', reply.getHeader('retry-after') ?? '1');
  if (body.status === 401) reply.header('www-authenticate', bearerChallenge(reply.request));
  noteAnswered(reply.request.raw);
  // Serialized here, not by the route's response schema for that status: a route may document its own body for a
  // status (GET /status's 503 is a degraded status body) that a problem from a hook (load shedding) does not match.
  return reply.code(body.status).type('application/problem+json').serializer(JSON.stringify).send(body);
}
