import type { Readable } from 'node:stream';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { acceptsEventStream, SSE_HEADERS } from '../../src/http/sse.js';
import { isRefusal } from '../../src/http/stream-quota.js';
import { EventList } from '../../src/schemas/event.js';
import { problemResponses } from '../../src/schemas/responses.js';

/** `Retry-After` of a stream refused for a cap, as for log streams. */
const STREAM_CAP_RETRY_AFTER_S = 5;
const MAX_EVENT_ID = Number.MAX_SAFE_INTEGER;

const EventId = (description: string) => Type.Integer({ minimum: 0, maximum: MAX_EVENT_ID, description, examples: [42] });

const EventQuery = Type.Object({
  project_id: Type.Optional(Type.Integer({ minimum: 1, maximum: 2_147_483_647, description: "Only this project's events", examples: [1] })),
  type: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 64,
      pattern: '^[a-z]+(\\.[a-z]*)?$',
      description: 'Only events whose type starts with this: `build.` (every build event) or a whole type (`build.failed`)',
      examples: ['build.'],
    }),
  ),
  after: Type.Optional(
    EventId('Only events after this id, oldest first (catching up from the last id seen); on a stream, where to start'),
  ),
  before: Type.Optional(EventId('Newest-first pages: only events before this id (the previous page\'s `next_before`)')),
  per_page: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 50, description: 'Events per page, at most 100', examples: [50] })),
});

const EventHeaders = Type.Object({
  'last-event-id': Type.Optional(
    Type.String({
      maxLength: 20,
      pattern: '^[0-9]{1,16}$',
      description: 'On a stream: the id of the last event received; the stream resumes after it (wins over `after`)',
      examples: ['42'],
    }),
  ),
});

const STREAM_EXAMPLE =
  'retry: 2000\n\n' +
  'id: 41\nevent: build.running\ndata: {"id":41,"type":"build.running","project_id":1,"build_id":7,"job_id":null,"created_at":"2026-12-08T10:00:00.000Z","data":{"id":7,"status":"running"}}\n\n' +
  ': keep-alive\n\n' +
  'id: 42\nevent: build.succeeded\ndata: {"id":42,"type":"build.succeeded","project_id":1,"build_id":7,"job_id":null,"created_at":"2026-12-08T10:00:04.370Z","data":{"id":7,"status":"success"}}\n\n';

const DESCRIPTION = `The durable event log: every change of a project, build, job or hook, written in the same transaction as the
change (so none is lost, and none describes a change that was rolled back), kept EVENTS_RETENTION_DAYS days (7).

**Pages** (default): newest first, \`per_page\` at a time; \`next_before\` continues to older ones. With \`?after=<id>\`
the page holds the events after that id, oldest first: poll with the page's \`next_after\` to get each event once.

**Live stream**: with \`Accept: text/event-stream\`, one server-sent event per logged event as it happens: \`id:\` the
event id, \`event:\` its type, \`data:\` the event as JSON. It starts after \`Last-Event-ID\` (what a reconnecting
EventSource sends), or after \`?after=\`, or at the head of the log (new events only). A reconnect — to this replica or
another, after a restart — resumes from the durable log: nothing missed, nothing repeated. Keep-alive comments every
SSE_KEEPALIVE_S seconds. Filters apply to both. Streams count against the same caps as log streams
(SSE_MAX_STREAMS_PER_USER, SSE_MAX_STREAMS: 429 with \`Retry-After\`), and end with an \`end\` event
(\`{"reason": …}\`) within about a second of the caller's access ending.

**Too old**: an \`after\` or \`Last-Event-ID\` older than what retention kept is answered 410 (\`gone\`) instead of a
page or stream with a silent gap: read the newest page, then stream from its \`next_after\`.`;

/** GET /events: the event log, as pages or as a live stream. */
const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { eventsRepository: events, eventLog, logStreams } = fastify;

  fastify.get(
    '/events',
    {
      onRequest: fastify.requireRole('viewer'),
      schema: {
        tags: ['events'],
        operationId: 'listEvents',
        summary: 'List or follow the event log',
        description: DESCRIPTION,
        security: [{ bearerAuth: [] }],
        querystring: EventQuery,
        headers: EventHeaders,
        response: {
          200: {
            description: 'A page of events; with `Accept: text/event-stream`, a live stream of them',
            content: {
              'application/json': { schema: EventList },
              'text/event-stream': {
                schema: Type.Unsafe<Readable>(Type.String({ description: 'Server-sent events, one per logged event', examples: [STREAM_EXAMPLE] })),
              },
            },
          },
          ...problemResponses(400, 401, 403, 410, 429),
        },
      },
    },
    async (request, reply) => {
      const { project_id: projectId, type: typePrefix, before } = request.query;
      const perPage = request.query.per_page ?? 50;
      const stream = request.method === 'GET' && acceptsEventStream(request.headers.accept);
      const lastEventId = request.headers['last-event-id'];
      const after = stream && lastEventId !== undefined ? Number(lastEventId) : request.query.after;

      if (after !== undefined) {
        const purged = await events.mark('purged');
        if (after < purged) {
          throw fastify.httpErrors.gone(
            `Events up to ${purged} are no longer kept (EVENTS_RETENTION_DAYS): read the newest page, then follow from its next_after`,
          );
        }
      }

      if (stream) {
        const slot = logStreams.quota.acquire(request.caller.id);
        if (isRefusal(slot)) {
          reply.header('retry-after', String(STREAM_CAP_RETRY_AFTER_S));
          throw fastify.httpErrors.tooManyRequests(
            slot.refused === 'user'
              ? `You already have ${slot.limit} live streams open, the most one user may hold: close one, or poll with ?after=`
              : `This server already holds ${slot.limit} live streams, the most it serves at once: retry shortly, or poll with ?after=`,
          );
        }
        const from = after ?? (await events.newestId());
        const sse = eventLog.streams.follow({ from, filter: { projectId, typePrefix }, caller: request.caller, slot, log: request.log });
        reply.raw.once('close', () => sse.end());
        return reply.headers(SSE_HEADERS).send(sse.stream);
      }

      const items = await events.page({ limit: perPage, after, before, projectId, typePrefix });
      const newest = after === undefined ? items[0] : items[items.length - 1];
      return {
        items,
        per_page: perPage,
        next_before: after === undefined && items.length === perPage ? items[items.length - 1]!.id : null,
        next_after: newest?.id ?? after ?? null,
      };
    },
  );
};

export default routes;
