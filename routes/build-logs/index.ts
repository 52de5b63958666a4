import type { Readable } from 'node:stream';
import { LogRequestHeaders } from '../../src/schemas/log.js';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FollowedLog } from '../../src/builds/log-followers.js';
import { logBytes } from '../../src/builds/log-slice.js';
import { sendLogText } from '../../src/http/log-text.js';
import { acceptsEventStream, SSE_HEADERS } from '../../src/http/sse.js';
import { isRefusal } from '../../src/http/stream-quota.js';
import { isTerminal } from '../../src/repositories/builds.js';
import { BUILD_STATUSES, type BuildStatusValue } from '../../src/schemas/build.js';
import { idParams } from '../../src/schemas/common.js';
import { problemResponses } from '../../src/schemas/responses.js';

/** `Retry-After` of a stream refused for a cap: streams last as long as their build (seconds to minutes). */
const STREAM_CAP_RETRY_AFTER_S = 5;

const Offset = Type.Integer({
  minimum: 0,
  maximum: Number.MAX_SAFE_INTEGER,
  description:
    'Byte offset in the UTF-8 log: only what follows it is returned (past the end: an empty body). ' +
    'On a stream, where to resume when there is no `Last-Event-ID`.',
  examples: [0, 512],
});

const LogQuery = Type.Object({ offset: Type.Optional(Offset) });

const StatusHeader = Type.Union(
  BUILD_STATUSES.map((status) => Type.Literal(status)),
  { description: "The build's status when the log was read: stop polling once it is success, fail or canceled", examples: ['running'] },
);
const SizeHeader = Type.Integer({
  minimum: 0,
  description: 'Size of the whole log in bytes when it was read: the `?offset=` to poll from next',
  examples: [1024],
});
const LogHeaders = { 'x-build-status': StatusHeader, 'x-log-size': SizeHeader };

/**
 * A text body in the OpenAPI document; in the handler, the bytes (a Buffer, so that byte offsets inside a character stay
 * exact) or the event stream that Fastify sends as they are, without a serialiser.
 */
const TextBody = (description: string, example: string) =>
  Type.Unsafe<string | Buffer | Readable>(Type.String({ description, examples: [example] }));

const PLAIN_EXAMPLE =
  '[usine] Build #1 of DemoProj (main @ 3f78685) started\n' +
  '[checkout] [usine] Job checkout (attempt 1) picked up by api-0:1:a1b2c3/w1, claim 1\n' +
  '[checkout] [00:00.000] ==> Step checkout\n' +
  '[checkout] [00:00.021] $ git clone --branch main https://github.com/demo/repo DemoProj\n';

const STREAM_EXAMPLE =
  'retry: 2000\n\n' +
  'id: 54\ndata: [usine] Build #1 of DemoProj (main @ 3f78685) started\n\n' +
  'id: 138\ndata: [checkout] [usine] Job checkout (attempt 1) picked up by api-0:1:a1b2c3/w1, claim 1\n\n' +
  'id: 179\ndata: [checkout] [00:00.000] ==> Step checkout\n\n' +
  ': keep-alive\n\n' +
  'id: 1024\ndata: Build finished: success in 4.37 s\n\n' +
  'event: end\nid: 1024\ndata: {"status":"success"}\n\n';

const DESCRIPTION = `The build's log, as plain text or as a live stream of server-sent events.

**Plain text** (default): the whole log as \`text/plain; charset=utf-8\`, or with \`?offset=N\` only the bytes after byte N
(offsets count bytes of the UTF-8 text; past the end the body is empty). \`X-Log-Size\` is the total size, the offset to
poll from next; \`X-Build-Status\` says when to stop (success, fail, canceled). \`Range: bytes=N-\` works too (206).

**Live stream**: with \`Accept: text/event-stream\` the answer is an event stream that follows the build as it runs:
\`retry: 2000\` first, then one event per log line, with \`data:\` the line (without its line feed) and \`id:\` the byte
offset just past it, so \`Last-Event-ID\` (or \`?offset=\`) resumes exactly after it. Only whole lines are sent. When the
build has finished and every line is sent, a last \`end\` event carries \`{"status": "<status>"}\` (and \`id:\` the log size),
then the stream closes; a finished build streams its whole log and \`end\` at once. Comment lines (\`: keep-alive\`) are
sent every SSE_KEEPALIVE_S seconds. A build that goes back to the queue (its worker stopped) keeps its stream open.

A stream ends early, with an \`end\` event that says why, within about a second of its caller's access ending:
\`{"status": "<status then>", "reason": "session_revoked"}\` (logout, password change, refresh-token reuse) or
\`"reason": "user_deleted"\`, and when the access token it was opened with expires (\`"reason": "token_expired"\`); its
\`id:\` is where to resume (with a fresh token). \`reason\` appears only then.

Each user may hold SSE_MAX_STREAMS_PER_USER streams open (default 50), and the server SSE_MAX_STREAMS in all
(default 1000, per replica); one more is refused with 429 and \`Retry-After\`: close a stream, or poll the plain text
with \`?offset=\`.`;

/** GET /builds/:id/logs: a build's log, plain (with offsets and ranges) or as a live event stream. */
const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { buildsRepository: builds, logStreams } = fastify;

  /** Build `id`'s log, as live streams follow it. */
  const buildLog = (id: number): FollowedLog => ({
    key: `build:${id}`,
    buildId: id,
    read: async () => {
      const build = await builds.findById(id);
      return build && { status: build.status, bytes: logBytes(build.logs) };
    },
    isFinal: (status) => isTerminal(status as BuildStatusValue),
    gone: `build ${id} was deleted`,
  });

  fastify.get(
    '/builds/:id/logs',
    {
      onRequest: fastify.requireRole('viewer'),
      schema: {
        tags: ['builds'],
        operationId: 'getBuildLogs',
        summary: "Get or follow a build's log",
        description: DESCRIPTION,
        security: [{ bearerAuth: [] }],
        params: idParams('Build identifier'),
        querystring: LogQuery,
        headers: LogRequestHeaders,
        response: {
          200: {
            description:
              'The log (or the part after `?offset=`) as plain text; with `Accept: text/event-stream`, a live event stream: ' +
              'one event per line (`id:` byte offset past the line, `data:` the line), keep-alive comments, and a final ' +
              '`end` event with `{"status": …}` (and a `reason` when the caller\'s session or account ended first).',
            headers: LogHeaders,
            content: {
              'text/plain': { schema: TextBody('Log text (UTF-8)', PLAIN_EXAMPLE) },
              'text/event-stream': {
                schema: TextBody('Server-sent events, one per log line', STREAM_EXAMPLE),
              },
            },
          },
          206: {
            description: 'The requested byte range of the log (`Range: bytes=N-`), with `Content-Range`',
            headers: {
              ...LogHeaders,
              'content-range': Type.String({ description: 'The range sent and the whole size', examples: ['bytes 512-1023/1024'] }),
            },
            content: { 'text/plain': { schema: TextBody('Part of the log text', PLAIN_EXAMPLE) } },
          },
          ...problemResponses(400, 401, 403, 404, 416),
          429: {
            ...problemResponses(429)[429],
            description:
              'Too many requests from this client (`rate_limited`, with `RateLimit-*` headers), or, for a stream, too many ' +
              'streams open: the caller already holds SSE_MAX_STREAMS_PER_USER, or the server SSE_MAX_STREAMS ' +
              '(`rate_limited`). Wait `Retry-After` seconds',
            headers: {
              'retry-after': Type.Integer({ minimum: 1, description: 'Seconds to wait before trying again', examples: [5] }),
            },
          },
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const build = await builds.findById(id);
      if (!build) throw fastify.httpErrors.notFound(`Build ${id} does not exist`);
      const bytes = logBytes(build.logs);

      if (request.method === 'GET' && acceptsEventStream(request.headers.accept)) {
        const slot = logStreams.quota.acquire(request.caller.id);
        if (isRefusal(slot)) {
          reply.header('retry-after', String(STREAM_CAP_RETRY_AFTER_S));
          throw fastify.httpErrors.tooManyRequests(
            slot.refused === 'user'
              ? `You already have ${slot.limit} live log streams open, the most one user may hold: close one, or poll the plain-text log with ?offset=`
              : `This server already holds ${slot.limit} live log streams, the most it serves at once: retry shortly, or poll the plain-text log with ?offset=`,
          );
        }
        const from = request.headers['last-event-id'] ?? request.query.offset ?? 0;
        const sse = logStreams.followers.follow(buildLog(id), from, { status: build.status, caller: request.caller, slot, log: request.log });
        // Whatever becomes of the response (sent and finished, cut, or never sent because a hook failed), the stream
        // ends with it: its slot, subscription and timers never outlive the request.
        reply.raw.once('close', () => sse.end());
        reply.header('x-build-status', build.status).header('x-log-size', String(bytes.length));
        return reply.headers(SSE_HEADERS).send(sse.stream);
      }

      reply.header('x-build-status', build.status).header('x-log-size', String(bytes.length));

      return sendLogText(reply, bytes, request.query.offset, request.headers.range);
    },
  );
};

export default routes;
