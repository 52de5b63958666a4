import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { enqueueBuild } from '../../src/builds/enqueue.js';
import { randomCommitSha } from '../../src/builds/simulator.js';
import { decodeCursor, encodeCursor, paginationLinks } from '../../src/http/pagination.js';
import { Build, BuildStatus, CommitSha } from '../../src/schemas/build.js';
import { BuildLocationHeader, idParams } from '../../src/schemas/common.js';
import { LinkHeader, PageFields, PageQuery, pageParams } from '../../src/schemas/pagination.js';
import { BranchName } from '../../src/schemas/project.js';
import { ref } from '../../src/schemas/ref.js';
import { BODY_ERRORS, problemResponses } from '../../src/schemas/responses.js';

const ProjectIdParams = idParams('Project identifier');
const BuildIdParams = idParams('Build identifier');

const TriggerBody = Type.Union(
  [
    Type.Object(
      {
        branch: Type.Optional({ ...BranchName, description: "Branch to build (default: the project's default branch)" }),
        commit_sha: Type.Optional({ ...CommitSha, description: 'Commit to build (default: a generated hash, standing for the branch head)' }),
      },
      { additionalProperties: false },
    ),
    Type.Null(),
  ],
  { description: 'Optional: what to build. The seed sends no body at all.', examples: [{ branch: 'main' }] },
);

const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: '^[\\x21-\\x7e]+$',
      description:
        'Any unique text (a UUID, say), up to 255 visible ASCII characters: the same key from the same user for the same project within 24 h answers the first build instead of queuing another (keys are per user: another user\'s same key is another key)',
      examples: ['5f0c7a1e-8d4b-4c59-9b1e-0a4f3c2d1e77'],
    }),
  ),
});

/** A trigger's Idempotency-Key is its sender's: the same text from two users names two builds. */
const idempotencyOf = (key: string | undefined, userId: number) => (key === undefined ? undefined : { key, userId });

const TriggerHeaders = {
  ...BuildLocationHeader,
  'idempotent-replayed': Type.Optional(
    Type.Literal('true', { description: 'Present when an Idempotency-Key was replayed: the build is the one created the first time' }),
  ),
};

const BuildList = Type.Object(
  {
    items: Type.Array(ref(Build), { description: 'Builds on this page, newest first' }),
    ...PageFields,
    next_cursor: Type.Union([Type.String(), Type.Null()], {
      description: 'Pass as `?cursor=` for the next page (the `next` link carries it too); null on the last page',
      examples: ['bjk5OTk4MQ'],
    }),
  },
  { description: 'A page of builds' },
);

const BuildListQuery = Type.Composite([
  PageQuery,
  Type.Object({
    status: Type.Optional({ ...BuildStatus, description: 'Only builds with this status' }),
    branch: Type.Optional({ ...BranchName, description: 'Only builds of this branch' }),
    cursor: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 32,
        pattern: '^[A-Za-z0-9_-]+$',
        description:
          'Opaque keyset cursor from a previous page\'s `next_cursor` (or its `next` link): the builds after that page, ' +
          'as fast on the millionth build as on the first. Wins over `page`; `total` stays exact',
        examples: ['bjk5OTk4MQ'],
      }),
    ),
  }),
]);

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const canRead = { onRequest: fastify.requireRole('viewer') };
  const canWrite = { onRequest: fastify.requireRole('maintainer') };
  const security = [{ bearerAuth: [] }];

  const triggerSchema = (summary: string, operationId: string) => ({
    tags: ['builds'],
    operationId,
    summary,
    description:
      'Queues a build of the project and answers at once with the queued build (201, `Location: /builds/{id}`): a ' +
      'worker then runs it (checkout, install, test, package), and `GET /builds/{id}` or `GET /builds/{id}/logs` ' +
      'follow it to `success` or `fail`. No body is needed: the branch defaults to the project\'s default branch and ' +
      'the commit to a generated hash. With an `Idempotency-Key` header, repeating the request within 24 h answers ' +
      'the build the first one created (header `Idempotent-Replayed: true`) instead of queuing another; keys are per ' +
      'user, so another user sending the same key gets a build of their own. A project ' +
      'may hold BUILD_QUEUE_LIMIT queued builds: beyond that the answer is 429.',
    security,
    params: ProjectIdParams,
    headers: IdempotencyHeaders,
    body: TriggerBody,
    response: {
      201: { ...ref(Build), description: 'The queued build (or, for a replayed Idempotency-Key, the first one)', headers: TriggerHeaders },
      ...problemResponses(401, 403, 404, 409, 429, ...BODY_ERRORS),
    },
  });

  for (const [path, summary, operationId] of [
    ['/projects/:id/build', 'Trigger a build (seed path)', 'triggerBuildSeedPath'],
    ['/projects/:id/builds', 'Trigger a build', 'triggerBuild'],
  ] as const) {
    fastify.post(path, { ...canWrite, schema: triggerSchema(summary, operationId) }, async (request, reply) => {
      const { id } = request.params;
      const project = await fastify.projectsRepository.findPlainById(id);
      if (!project) throw fastify.httpErrors.notFound(`Project ${id} does not exist`);
      const { build, replayed } = await enqueueBuild(
        fastify,
        {
          project_id: id,
          branch: request.body?.branch ?? project.default_branch,
          commit_sha: request.body?.commit_sha ?? randomCommitSha(),
          triggered_by: request.caller.username,
        },
        {
          idempotency: idempotencyOf(request.headers['idempotency-key'], request.caller.id),
          requested: request.body ?? undefined,
          setHeader: (name, value) => void reply.header(name, value),
        },
      );
      if (replayed) reply.header('idempotent-replayed', 'true');
      reply.code(201).header('location', `/builds/${build.id}`);
      return build;
    });
  }

  fastify.get(
    '/projects/:id/builds',
    {
      ...canRead,
      schema: {
        tags: ['builds'],
        operationId: 'listProjectBuilds',
        summary: "List a project's builds",
        description: 'A page of builds, newest first, optionally filtered by status and branch.',
        security,
        params: ProjectIdParams,
        querystring: BuildListQuery,
        response: { 200: { ...BuildList, headers: LinkHeader }, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const { status, branch, cursor } = request.query;
      const { page: requestedPage, perPage } = pageParams(request.query);
      const before = cursor === undefined ? undefined : decodeCursor(cursor);
      if (cursor !== undefined && before === undefined) throw fastify.httpErrors.badRequest('cursor is not one this service gave out');
      const list = await fastify.buildsRepository.listForProject({ projectId: id, page: requestedPage, perPage, status, branch, before });
      if (!list) throw fastify.httpErrors.notFound(`Project ${id} does not exist`);
      const { items, page, total, nextBefore } = list;
      const next_cursor = nextBefore === null ? null : encodeCursor(nextBefore);
      reply.header('link', paginationLinks(request, { page, perPage, total, nextCursor: next_cursor }));
      return { items, page, per_page: perPage, total, next_cursor };
    },
  );

  fastify.get(
    '/builds/:id',
    {
      ...canRead,
      schema: {
        tags: ['builds'],
        operationId: 'getBuild',
        summary: 'Get a build',
        description: 'One build, with its status, timings and logs.',
        security,
        params: BuildIdParams,
        response: { 200: ref(Build), ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const build = await fastify.buildsRepository.findById(request.params.id);
      if (!build) throw fastify.httpErrors.notFound(`Build ${request.params.id} does not exist`);
      return build;
    },
  );
};

export default routes;
