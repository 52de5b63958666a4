import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { ErrorCode, ProblemBody } from '../schemas/problem.js';
import { problem } from './problem.js';
import { answeredBeforeItsBody } from './unread-bodies.js';

/** What Node reports on a connection (`clientError`): a parse error, a timeout, a reset. */
type ClientError = Error & { code?: string };

interface ClientErrorLimits {
  /** HTTP_REQUEST_TIMEOUT_S: the time a client has to send a whole request. */
  requestTimeoutS: number;
  /** HTTP_HEADERS_TIMEOUT_S: the time it has to send the headers. */
  headersTimeoutS: number;
}

/** The problem for an error Node reports before Fastify has (or while it still reads) a request. */
export function clientErrorProblem(error: ClientError, limits: ClientErrorLimits): ProblemBody {
  const answer = (status: number, code: ErrorCode, detail: string) => problem(status, code, detail);
  switch (error.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      // Node gives the same code whether the headers or the body were late.
      return answer(
        408,
        'request_timeout',
        `The request was not received in time (headers within ${limits.headersTimeoutS} s, the whole request within ${limits.requestTimeoutS} s)`,
      );
    case 'HPE_HEADER_OVERFLOW':
      // Node counts the request line with the headers, so an over-long URL ends here too.
      return answer(431, 'headers_too_large', 'The request line and headers are larger than this server reads');
    default:
      return answer(400, 'validation_error', 'The request is not valid HTTP/1.1');
  }
}

/** The response in progress on the socket, if any: Node's own bookkeeping, which `socketOnError` reads too. */
const responseOn = (socket: Socket): ServerResponse | null | undefined => (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;

/**
 * Fastify's `clientErrorHandler`: answers what Node reports on a connection (a request not received in time,
 * headers too large, bytes that are not HTTP) as a problem document, instead of Fastify's own JSON shape, then
 * closes the connection. Nothing is written when the connection is already gone, a response has started on it, or
 * the request was answered before its body was in (src/http/unread-bodies.ts): a client gets exactly one answer
 * per request. Logged at debug: a
 * slow or broken client is not the server's failure.
 */
export function createClientErrorHandler(limits: ClientErrorLimits) {
  // Fastify calls it with the instance as `this`.
  return function answerClientError(this: FastifyInstance, error: ClientError, socket: Socket): void {
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const body = clientErrorProblem(error, limits);
    this.log.debug({ err: { message: error.message, code: error.code }, status: body.status }, 'connection refused by the HTTP parser or timeouts');
    if (socket.writable && !responseOn(socket)?.headersSent && !answeredBeforeItsBody(socket)) {
      const json = JSON.stringify(body);
      socket.write(
        `HTTP/1.1 ${body.status} ${body.title}\r\n` +
          'Content-Type: application/problem+json\r\n' +
          `Content-Length: ${Buffer.byteLength(json)}\r\n` +
          'Connection: close\r\n\r\n' +
          json,
      );
    }
    socket.destroy(error);
  };
}
