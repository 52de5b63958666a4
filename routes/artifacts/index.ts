import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { artifactDownloadResponses, sendArtifact } from '../../src/http/artifact-download.js';
import { ArtifactList, ArtifactName, JobArtifactList } from '../../src/schemas/artifact.js';
import { idParams } from '../../src/schemas/common.js';
import { problemResponses } from '../../src/schemas/responses.js';

const BuildIdParams = idParams('Build identifier');

const ArtifactParams = Type.Object({
  id: BuildIdParams.properties.id,
  name: ArtifactName,
});

/** In the examples, job 4 is build 1's `package` job (the default pipeline's fourth), which stores `demoproj-1.tar.gz`. */
const JobIdParams = idParams('Job identifier', 4);

const JobArtifactParams = Type.Object({
  id: JobIdParams.properties.id,
  name: { ...ArtifactName, description: 'Artifact file name, as listed by `GET /jobs/{id}/artifacts`' },
});

const download = (buildId: number, name: string) => `/builds/${buildId}/artifacts/${encodeURIComponent(name)}`;
const jobDownload = (jobId: number, name: string) => `/jobs/${jobId}/artifacts/${encodeURIComponent(name)}`;

/** GET /builds/:id/artifacts[/:name] and GET /jobs/:id/artifacts[/:name]: the same files, by build or by the job that stored them. */

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const canRead = { onRequest: fastify.requireRole('viewer') };
  const security = [{ bearerAuth: [] }];

  fastify.get(
    '/builds/:id/artifacts',
    {
      ...canRead,
      schema: {
        tags: ['builds'],
        operationId: 'listBuildArtifacts',
        summary: "List a build's artifacts",
        description:
          'The files a build produced, with their size and SHA-256. A successful build has one, ' +
          '`<project-slug>-<build number>.tar.gz` (holding `build-info.json` and `build.log`); a build that did not ' +
          'succeed (yet) has none.',
        security,
        params: BuildIdParams,
        response: { 200: ArtifactList, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const { id } = request.params;
      if (!(await fastify.buildsRepository.findById(id))) throw fastify.httpErrors.notFound(`Build ${id} does not exist`);
      const rows = await fastify.artifactsRepository.listForBuild(id);
      return { items: rows.map((row) => ({ ...row, download_url: download(id, row.name) })) };
    },
  );

  fastify.get(
    '/builds/:id/artifacts/:name',
    {
      ...canRead,
      schema: {
        tags: ['builds'],
        operationId: 'downloadBuildArtifact',
        summary: 'Download an artifact',
        description:
          'The file itself (`application/gzip`). Its `ETag` is its SHA-256: send it back in `If-None-Match` to get a ' +
          '304 without the bytes. Only successful builds have artifacts: any other build answers 404.',
        security,
        params: ArtifactParams,
        response: { ...artifactDownloadResponses('demoproj-1.tar.gz'), ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const { id, name } = request.params;
      const artifact = await fastify.artifactsRepository.find(id, name);
      if (!artifact) {
        const build = await fastify.buildsRepository.findById(id);
        if (!build) throw fastify.httpErrors.notFound(`Build ${id} does not exist`);
        if (build.status !== 'success') throw fastify.httpErrors.notFound(`Build ${id} is ${build.status}: only successful builds have artifacts`);
        throw fastify.httpErrors.notFound(`Build ${id} has no artifact named "${name}"`);
      }
      return sendArtifact(reply, request.headers['if-none-match'], artifact);
    },
  );

  fastify.get(
    '/jobs/:id/artifacts',
    {
      ...canRead,
      schema: {
        tags: ['jobs'],
        operationId: 'listJobArtifacts',
        summary: "List a job's artifacts",
        description:
          'The files a job stored, with their size and SHA-256: a successful job whose pipeline definition says ' +
          '`artifacts: true` has one, a `.tar.gz` holding `build-info.json` and `build.log` (its build’s log up to the ' +
          'job’s end), named `<project-slug>-<build number>-<job>.tar.gz`, or `<project-slug>-<build number>.tar.gz` for ' +
          'the default pipeline’s `package` job (the build’s artifact). Any other job, and a job that did not succeed ' +
          '(yet), has none. A job retried since that stores the file again hands it to its new attempt.',
        security,
        params: JobIdParams,
        response: { 200: JobArtifactList, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const { id } = request.params;
      const rows = await fastify.artifactsRepository.listForJob(id);
      // A job with artifacts exists; an empty list is a job without any, or no job at all.
      if (rows.length === 0 && !(await fastify.jobsRepository.findById(id))) throw fastify.httpErrors.notFound(`Job ${id} does not exist`);
      return { items: rows.map((row) => ({ ...row, download_url: jobDownload(id, row.name) })) };
    },
  );

  fastify.get(
    '/jobs/:id/artifacts/:name',
    {
      ...canRead,
      schema: {
        tags: ['jobs'],
        operationId: 'downloadJobArtifact',
        summary: "Download a job's artifact",
        description:
          'The file itself (`application/gzip`), as `GET /builds/{id}/artifacts/{name}` sends it: its `ETag` is its ' +
          'SHA-256, to send back in `If-None-Match` for a 304 without the bytes. Only successful jobs have artifacts: ' +
          'any other job answers 404, as does a name the job did not store.',
        security,
        params: JobArtifactParams,
        response: { ...artifactDownloadResponses('demoproj-1.tar.gz'), ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const { id, name } = request.params;
      const artifact = await fastify.artifactsRepository.findForJob(id, name);
      if (!artifact) {
        const job = await fastify.jobsRepository.findById(id);
        if (!job) throw fastify.httpErrors.notFound(`Job ${id} does not exist`);
        if (job.status !== 'success') throw fastify.httpErrors.notFound(`Job ${id} (${job.name}) is ${job.status}: only successful jobs have artifacts`);
        throw fastify.httpErrors.notFound(`Job ${id} (${job.name}) has no artifact named "${name}"`);
      }
      return sendArtifact(reply, request.headers['if-none-match'], artifact);
    },
  );
};

export default routes;
