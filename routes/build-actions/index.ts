import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { enqueueBuild } from '../../src/builds/enqueue.js';
import { Build } from '../../src/schemas/build.js';
import { BuildLocationHeader, idParams } from '../../src/schemas/common.js';
import { ref } from '../../src/schemas/ref.js';
import { BODY_ERRORS, problemResponses } from '../../src/schemas/responses.js';

const BuildIdParams = idParams('Build identifier');

/** The list, or undefined when it is empty (a build made before it had jobs: its retry runs the pipeline as it is now). */
const nonEmpty = async <T>(list: Promise<T[]>) => ((await list).length > 0 ? list : undefined);

/** POST /builds/:id/cancel and /builds/:id/retry: the moves a user makes on an existing build. */
const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const canWrite = { onRequest: fastify.requireRole('maintainer') };
  const security = [{ bearerAuth: [] }];
  const NoBody = Type.Union([Type.Object({}, { additionalProperties: false }), Type.Null()], {
    description: 'No body is needed (an empty JSON object is accepted)',
  });

  const findOr404 = async (id: number) => {
    const build = await fastify.buildsRepository.findById(id);
    if (!build) throw fastify.httpErrors.notFound(`Build ${id} does not exist`);
    return build;
  };

  fastify.post(
    '/builds/:id/cancel',
    {
      ...canWrite,
      schema: {
        tags: ['builds'],
        operationId: 'cancelBuild',
        summary: 'Cancel a build',
        description:
          'Moves a queued or running build to `canceled` and logs who did it; a running build stops within one second ' +
          '(of simulated time). A build that already finished cannot be canceled: 409.',
        security,
        params: BuildIdParams,
        body: NoBody,
        response: { 200: { ...ref(Build), description: 'The canceled build' }, ...problemResponses(401, 403, 404, 409, ...BODY_ERRORS) },
      },
    },
    async (request) => {
      const { id } = request.params;
      const settled = await fastify.jobEngine.cancelBuild(id, request.caller.username);
      const build = await findOr404(id);
      if (!settled) throw fastify.httpErrors.conflict(`Build ${id} is already ${build.status}: only queued or running builds can be canceled`);
      return build;
    },
  );

  fastify.post(
    '/builds/:id/retry',
    {
      ...canWrite,
      schema: {
        tags: ['builds'],
        operationId: 'retryBuild',
        summary: 'Retry a build',
        description:
          'Queues a new build of the same project, branch and commit, with `retry_of` naming this one. Only finished ' +
          'builds (success, fail, canceled) can be retried: 409 while the build is queued or running. ' +
          'The project queue limit applies (429).',
        security,
        params: BuildIdParams,
        body: NoBody,
        response: {
          201: { ...ref(Build), description: 'The new, queued build', headers: BuildLocationHeader },
          ...problemResponses(401, 403, 404, 409, 429, ...BODY_ERRORS),
        },
      },
    },
    async (request, reply) => {
      const original = await findOr404(request.params.id);
      if (original.status === 'queued' || original.status === 'running') {
        throw fastify.httpErrors.conflict(`Build ${original.id} is still ${original.status}: retry it once it has finished`);
      }
      const { build } = await enqueueBuild(
        fastify,
        {
          project_id: original.project_id,
          branch: original.branch,
          commit_sha: original.commit_sha,
          triggered_by: request.caller.username,
          retry_of: original.id,
        },
        {
          setHeader: (name, value) => void reply.header(name, value),
          // The original's snapshot runs again: its jobs as planned, whatever the pipeline is now.
          jobs: await nonEmpty(fastify.jobsRepository.plansOf(original.id)),
        },
      );
      reply.code(201).header('location', `/builds/${build.id}`);
      return build;
    },
  );
};

export default routes;
