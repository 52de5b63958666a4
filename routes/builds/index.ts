import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { randomCommitSha, simulateRun } from '../../src/builds/simulate.js';
import { paginationLinks } from '../../src/http/pagination.js';
import { Build, BuildStatus, CommitSha } from '../../src/schemas/build.js';
import { IdParams, LocationHeader } from '../../src/schemas/common.js';
import { LinkHeader, PageFields, PageQuery, pageParams } from '../../src/schemas/pagination.js';
import { BranchName } from '../../src/schemas/project.js';
import { ref } from '../../src/schemas/ref.js';
import { BODY_ERRORS, problemResponses } from '../../src/schemas/responses.js';

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

const BuildList = Type.Object(
  { items: Type.Array(ref(Build), { description: 'Builds on this page, newest first' }), ...PageFields },
  { description: 'A page of builds' },
);

const BuildListQuery = Type.Composite([
  PageQuery,
  Type.Object({
    status: Type.Optional({ ...BuildStatus, description: 'Only builds with this status' }),
    branch: Type.Optional({ ...BranchName, description: 'Only builds of this branch' }),
  }),
]);

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const canRead = { onRequest: fastify.requireRole('viewer') };
  const canWrite = { onRequest: fastify.requireRole('maintainer') };
  const security = [{ bearerAuth: [] }];

  const triggerSchema = (summary: string) => ({
    tags: ['builds'],
    summary,
    description:
      'Records a simulated build of the project: a duration drawn in 2–10 s, success or fail (BUILD_FAIL_RATE), short logs. ' +
      "The project's `last_build_status` follows. No body is needed.",
    security,
    params: IdParams,
    body: TriggerBody,
    response: {
      201: { ...ref(Build), description: 'The build', headers: LocationHeader },
      ...problemResponses(401, 403, 404, ...BODY_ERRORS),
    },
  });

  const trigger = async (id: number, body: { branch?: string; commit_sha?: string } | null | undefined, user: string) => {
    const project = await fastify.projectsRepository.findById(id);
    if (!project) throw fastify.httpErrors.notFound(`Project ${id} does not exist`);
    const now = new Date();
    const run = simulateRun(fastify.config.BUILD_FAIL_RATE, now);
    const build = await fastify.buildsRepository.create({
      project_id: project.id,
      branch: body?.branch ?? project.default_branch,
      commit_sha: body?.commit_sha ?? randomCommitSha(),
      triggered_by: user,
      ...run,
      started_at: now,
      finished_at: new Date(now.getTime() + run.duration_s * 1000),
    });
    if (!build) throw fastify.httpErrors.notFound(`Project ${id} does not exist`);
    return build;
  };

  for (const [path, summary] of [
    ['/projects/:id/build', 'Trigger a build (seed path)'],
    ['/projects/:id/builds', 'Trigger a build'],
  ] as const) {
    fastify.post(path, { ...canWrite, schema: triggerSchema(summary) }, async (request, reply) => {
      const build = await trigger(request.params.id, request.body, request.caller.username);
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
        summary: "List a project's builds",
        description: 'A page of builds, newest first, optionally filtered by status and branch.',
        security,
        params: IdParams,
        querystring: BuildListQuery,
        response: { 200: { ...BuildList, headers: LinkHeader }, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const { status, branch } = request.query;
      const { page, perPage } = pageParams(request.query);
      if (!(await fastify.projectsRepository.findById(id))) throw fastify.httpErrors.notFound(`Project ${id} does not exist`);
      const { items, total } = await fastify.buildsRepository.listForProject({ projectId: id, page, perPage, status, branch });
      reply.header('link', paginationLinks(request.url, { page, perPage, total }));
      return { items, page, per_page: perPage, total };
    },
  );

  fastify.get(
    '/builds/:id',
    {
      ...canRead,
      schema: {
        tags: ['builds'],
        summary: 'Get a build',
        description: 'One build, with its status, timings and logs.',
        security,
        params: IdParams,
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
