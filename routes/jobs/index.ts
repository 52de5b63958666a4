import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { LogRequestHeaders } from '../../src/schemas/log.js';
import type { FollowedLog } from '../../src/builds/log-followers.js';
import { logBytes } from '../../src/builds/log-slice.js';
import { sendLogText } from '../../src/http/log-text.js';
import { acceptsEventStream, SSE_HEADERS } from '../../src/http/sse.js';
import { isRefusal } from '../../src/http/stream-quota.js';
import { JOB_STATUSES, TERMINAL_JOB_STATUSES } from '../../src/pipelines/progress.js';
import type { JobActionResult } from '../../src/repositories/jobs.js';
import { idParams, locationHeader } from '../../src/schemas/common.js';
import { Job } from '../../src/schemas/job.js';
import { ref } from '../../src/schemas/ref.js';
import { BODY_ERRORS, problemResponses } from '../../src/schemas/responses.js';

const BuildIdParams = idParams('Build identifier');
const JobIdParams = idParams('Job identifier');

const JobList = Type.Object(
  {
    items: Type.Array(ref(Job), {
      description: 'Every job of the build, every attempt included, in pipeline order (stage order, then the order jobs are listed in); a job’s older attempts come before its newer ones',
    }),
  },
  { description: 'The jobs of a build' },
);

const NoBody = Type.Union([Type.Object({}, { additionalProperties: false }), Type.Null()], {
  description: 'No body is needed (an empty JSON object is accepted)',
});

const JobLocationHeader = locationHeader('/jobs/1');

// ---- logs ------------------------------------------------------------------------------------------------------------

const LogQuery = Type.Object({
  offset: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: Number.MAX_SAFE_INTEGER,
      description: 'Byte offset in the UTF-8 log: only what follows it is returned (past the end: an empty body)',
      examples: [0, 512],
    }),
  ),
});

const LogHeaders = {
  'x-job-status': Type.Union(
    JOB_STATUSES.map((status) => Type.Literal(status)),
    {
      description: "The job's status when the log was read: its log grows no more once it is success, fail, canceled or skipped",
      examples: ['running'],
    },
  ),
  'x-log-size': Type.Integer({
    minimum: 0,
    description: 'Size of the whole log in bytes when it was read: the `?offset=` to poll from next',
    examples: [1024],
  }),
};

/** A text body in the OpenAPI document; in the handler, the bytes (a Buffer: byte offsets inside a character stay exact). */
const TextBody = (description: string, example: string) => Type.Unsafe<string | Buffer>(Type.String({ description, examples: [example] }));

const LOG_EXAMPLE =
  '[usine] Job test 1/2 (attempt 1) picked up by api-0:1:a1b2c3/w1, claim 1\n' +
  '[00:00.000] ==> Job test 1/2\n' +
  '[00:00.000] $ npm test\n';

const STREAM_EXAMPLE = 'retry: 2000\n\nid: 58\ndata: [00:00.000] $ npm run e2e\n\nevent: end\nid: 96\ndata: {"status":"success"}\n\n';

/** `Retry-After` of a stream refused for a cap: streams last as long as their job. */
const STREAM_CAP_RETRY_AFTER_S = 5;

/** A job is over (its log complete) once it is success, fail, canceled or skipped. */
const isFinalJobStatus = (status: string) => (TERMINAL_JOB_STATUSES as readonly string[]).includes(status);

const LOG_DESCRIPTION = `The job's own log (what the build's log shows with the job's name in front of each line), as
\`text/plain; charset=utf-8\`: the whole log, or with \`?offset=N\` only the bytes after byte N (offsets count bytes of the
UTF-8 text; past the end the body is empty). \`X-Log-Size\` is the total size, the offset to poll from next;
\`X-Job-Status\` says when to stop (success, fail, canceled, skipped). \`Range: bytes=N-\` works too (206 with
\`Content-Range\`; a range starting past the end is a 416). Each attempt of a job has its own log.

**Live stream**: with \`Accept: text/event-stream\` the answer is an event stream that follows the job as it runs, exactly
as \`GET /builds/{id}/logs\` follows a build: \`retry: 2000\`, one event per log line (\`id:\` the byte offset just past
it, so \`Last-Event-ID\` or \`?offset=\` resumes after it), keep-alive comments, and a last \`end\` event with
\`{"status": "<status>"}\` once the job is over (success, fail, canceled, skipped); or, earlier, with a \`reason\` when the
caller's session is revoked, the user deleted or the access token expires. Job and build streams share one quota:
SSE_MAX_STREAMS_PER_USER per user, SSE_MAX_STREAMS per server (429 with \`Retry-After\` beyond).`;

// ---- actions ---------------------------------------------------------------------------------------------------------

/** What each action accepts, for the 409's wording. */
const ACTIONS = {
  retry: { verb: 'retried', accepted: 'a job that succeeded, failed or was canceled' },
  cancel: { verb: 'canceled', accepted: 'a created, queued, running or manual job' },
  play: { verb: 'played', accepted: 'a manual job' },
} as const;
type Action = keyof typeof ACTIONS;

/** GET /builds/:id/jobs, GET /jobs/:id, GET /jobs/:id/logs and the actions on one job: retry, cancel, play. */
const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const canRead = { onRequest: fastify.requireRole('viewer') };
  const canWrite = { onRequest: fastify.requireRole('maintainer') };
  const security = [{ bearerAuth: [] }];
  const { jobsRepository: jobs } = fastify;

  const findOr404 = async (id: number) => {
    const job = await jobs.findById(id);
    if (!job) throw fastify.httpErrors.notFound(`Job ${id} does not exist`);
    return job;
  };

  /**
   * The engine's answer as HTTP: the job after the action, or 404, or a 409 that says why (its status, or that it is
   * an older attempt). The job is read again after the action: its row now, as the action left it.
   */
  async function settle(id: number, action: Action, result: JobActionResult) {
    switch (result.outcome) {
      case 'done':
        return findOr404(result.job_id);
      case 'not_found':
        throw fastify.httpErrors.notFound(`Job ${id} does not exist`);
      case 'conflict': {
        const job = await findOr404(id);
        const { verb, accepted } = ACTIONS[action];
        if (job.retried) {
          throw fastify.httpErrors.conflict(
            `Job ${id} (${job.name}, attempt ${job.attempt}) has been retried since: only its latest attempt can be ${verb} (see GET /builds/${job.build_id}/jobs)`,
          );
        }
        throw fastify.httpErrors.conflict(`Job ${id} (${job.name}) is ${result.status}: only ${accepted} can be ${verb}`);
      }
    }
  }

  fastify.get(
    '/builds/:id/jobs',
    {
      ...canRead,
      schema: {
        tags: ['jobs'],
        operationId: 'listBuildJobs',
        summary: "List a build's jobs",
        description:
          'Every job of the build, as planned from its project’s pipeline when it was triggered, with its status: every ' +
          'attempt, in pipeline order, a job’s older attempts (`retried: true`) before its newer ones. Not paged: a ' +
          'build has at most 200 jobs (plus their retries).',
        security,
        params: BuildIdParams,
        response: { 200: JobList, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const { id } = request.params;
      const items = await jobs.listForBuild(id);
      // A build with jobs exists; an empty list is a build without any, or no build at all.
      if (items.length === 0 && !(await fastify.buildsRepository.findById(id))) throw fastify.httpErrors.notFound(`Build ${id} does not exist`);
      return { items };
    },
  );

  fastify.get(
    '/jobs/:id',
    {
      ...canRead,
      schema: {
        tags: ['jobs'],
        operationId: 'getJob',
        summary: 'Get a job',
        description: 'One job (one attempt of it), with its status and timings; its log is `GET /jobs/{id}/logs`.',
        security,
        params: JobIdParams,
        response: { 200: ref(Job), ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => findOr404(request.params.id),
  );

  /** Job `id`'s log, as live streams follow it: it grows with its build (the build's events say when). */
  const jobLog = (id: number, buildId: number): FollowedLog => ({
    key: `job:${id}`,
    buildId,
    read: async () => {
      const job = await jobs.findById(id);
      return job && { status: job.status, bytes: logBytes(job.logs) };
    },
    isFinal: isFinalJobStatus,
    gone: `job ${id} was deleted`,
  });

  fastify.get(
    '/jobs/:id/logs',
    {
      ...canRead,
      schema: {
        tags: ['jobs'],
        operationId: 'getJobLogs',
        summary: "Get a job's log",
        description: LOG_DESCRIPTION,
        security,
        params: JobIdParams,
        querystring: LogQuery,
        headers: LogRequestHeaders,
        response: {
          200: {
            description:
              'The log (or the part after `?offset=`) as plain text; with `Accept: text/event-stream`, a live event stream: ' +
              'one event per line (`id:` byte offset past the line, `data:` the line), keep-alive comments, and a final ' +
              '`end` event with `{"status": …}` (and a `reason` when the caller\'s access ended first).',
            headers: LogHeaders,
            content: {
              'text/plain': { schema: TextBody('Log text (UTF-8)', LOG_EXAMPLE) },
              'text/event-stream': { schema: TextBody('Server-sent events, one per log line', STREAM_EXAMPLE) },
            },
          },
          206: {
            description: 'The requested byte range of the log (`Range: bytes=N-`), with `Content-Range`',
            headers: {
              ...LogHeaders,
              'content-range': Type.String({ description: 'The range sent and the whole size', examples: ['bytes 512-1023/1024'] }),
            },
            content: { 'text/plain': { schema: TextBody('Part of the log text', LOG_EXAMPLE) } },
          },
          ...problemResponses(400, 401, 403, 404),
          429: {
            ...problemResponses(429)[429],
            description:
              'Too many requests from this client (`rate_limited`), or, for a stream, too many streams open: the caller ' +
              'already holds SSE_MAX_STREAMS_PER_USER, or the server SSE_MAX_STREAMS (`rate_limited`). Wait `Retry-After` seconds',
            headers: {
              'retry-after': Type.Integer({ minimum: 1, description: 'Seconds to wait before trying again', examples: [5] }),
            },
          },
          416: {
            ...problemResponses(416)[416],
            description: 'The `Range` starts at or past the end of the log: `Content-Range: bytes */<size>` gives its size',
            headers: {
              'content-range': Type.String({ description: 'The size of the whole log', examples: ['bytes */1024'] }),
            },
          },
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const job = await findOr404(id);
      const bytes = logBytes(job.logs);
      reply.header('x-job-status', job.status).header('x-log-size', String(bytes.length));
      if (request.method === 'GET' && acceptsEventStream(request.headers.accept)) {
        const slot = fastify.logStreams.quota.acquire(request.caller.id);
        if (isRefusal(slot)) {
          reply.header('retry-after', String(STREAM_CAP_RETRY_AFTER_S));
          throw fastify.httpErrors.tooManyRequests(
            `You already have ${slot.limit} live log streams open${slot.refused === 'user' ? '' : ' on this server'}, ` +
              'the most allowed: close one, or poll the plain-text log with ?offset=',
          );
        }
        const from = request.headers['last-event-id'] ?? request.query.offset ?? 0;
        const sse = fastify.logStreams.followers.follow(jobLog(id, job.build_id), from, {
          status: job.status,
          caller: request.caller,
          slot,
          log: request.log,
        });
        // Whatever becomes of the response, the stream ends with it: its slot, subscription and timers go too.
        reply.raw.once('close', () => sse.end());
        return reply.headers(SSE_HEADERS).send(sse.stream);
      }
      return sendLogText(reply, bytes, request.query.offset, request.headers.range);
    },
  );

  fastify.post(
    '/jobs/:id/retry',
    {
      ...canWrite,
      schema: {
        tags: ['jobs'],
        operationId: 'retryJob',
        summary: 'Retry a job',
        description:
          'Runs a finished job again as a new attempt (201, `Location: /jobs/{id}` of the new one): the new attempt is ' +
          'queued with `attempt` one more and `retry_of` naming this one, which stays listed with `retried: true`. Jobs ' +
          'skipped because of this one wait for the new attempt again, and the build runs again. Only the latest ' +
          'attempt of a job that succeeded, failed or was canceled can be retried: 409 otherwise.',
        security,
        params: JobIdParams,
        body: NoBody,
        response: {
          201: { ...ref(Job), description: 'The new attempt, queued', headers: JobLocationHeader },
          ...problemResponses(401, 403, 404, 409, ...BODY_ERRORS),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const job = await settle(id, 'retry', await fastify.jobEngine.retryJob(id));
      reply.code(201).header('location', `/jobs/${job.id}`);
      return job;
    },
  );

  fastify.post(
    '/jobs/:id/cancel',
    {
      ...canWrite,
      schema: {
        tags: ['jobs'],
        operationId: 'cancelJob',
        summary: 'Cancel a job',
        description:
          'Moves a created, queued, running or manual job to `canceled` and logs who did it (a running job stops ' +
          'within one second of simulated time); the jobs that need it follow (`always` ones still run, the others ' +
          'are skipped), and the build ends if nothing is left to run. A job that is already over, or an older ' +
          'attempt, cannot be canceled: 409.',
        security,
        params: JobIdParams,
        body: NoBody,
        response: {
          200: { ...ref(Job), description: 'The canceled job' },
          ...problemResponses(401, 403, 404, 409, ...BODY_ERRORS),
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      return settle(id, 'cancel', await fastify.jobEngine.cancelJob(id, request.caller.username));
    },
  );

  fastify.post(
    '/jobs/:id/play',
    {
      ...canWrite,
      schema: {
        tags: ['jobs'],
        operationId: 'playJob',
        summary: 'Play a manual job',
        description:
          'Starts a `manual` job (a job with `when: manual` whose needs are over): it is queued for a worker, and its ' +
          'build runs again if it was over. Any other status: 409.',
        security,
        params: JobIdParams,
        body: NoBody,
        response: {
          200: { ...ref(Job), description: 'The played job, queued' },
          ...problemResponses(401, 403, 404, 409, ...BODY_ERRORS),
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      return settle(id, 'play', await fastify.jobEngine.playJob(id));
    },
  );
};

export default routes;
