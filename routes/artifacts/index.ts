import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ArtifactList, ArtifactName } from '../../src/schemas/artifact.js';
import { idParams } from '../../src/schemas/common.js';
import { Empty, problemResponses } from '../../src/schemas/responses.js';

/** A stored artifact never changes (its build succeeded once and for all; ids are never reused). */
const CACHE_CONTROL = 'private, max-age=31536000, immutable';

const BuildIdParams = idParams('Build identifier');

const ArtifactParams = Type.Object({
  id: BuildIdParams.properties.id,
  name: ArtifactName,
});

const DownloadHeaders = {
  etag: Type.String({ description: 'The SHA-256 of the file, in quotes', examples: ['"c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2"'] }),
  'cache-control': Type.String({ description: 'Artifacts are immutable: cache them privately', examples: [CACHE_CONTROL] }),
  'content-disposition': Type.String({ description: 'Download as a file of the artifact\'s name', examples: ['attachment; filename="demoproj-1.tar.gz"'] }),
};

/** The handler sends a Buffer, which Fastify writes as is (no serialiser runs on it). */
const FileBytes = Type.Unsafe<Buffer>(Type.String({ format: 'binary', description: "The file's bytes" }));

/**
 * A 304 has no body at all: documented as `null` (no content in OpenAPI), sent as `undefined` so that Fastify writes
 * neither a body nor `Content-Length`/`Content-Type` (a `null` would be serialised as the 4 bytes `null`).
 */
const NotModified = Type.Unsafe<undefined>({ ...Empty, description: 'Not modified: `If-None-Match` names the current `ETag`; no body' });

/**
 * Whether an `If-None-Match` header matches the entity tag: `*`, or any tag of its comma-separated list, compared
 * weakly (`W/"x"` matches `"x"`), as RFC 9110 prescribes for this header.
 */
function ifNoneMatchHits(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}

/** Artifact names are slugs; anything else is made safe for the quoted `filename` and given in full in `filename*`. */
function contentDisposition(name: string): string {
  const plain = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return plain === name ? `attachment; filename="${name}"` : `attachment; filename="${plain}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

const download = (buildId: number, name: string) => `/builds/${buildId}/artifacts/${encodeURIComponent(name)}`;

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
        response: {
          200: {
            description: 'The `.tar.gz` file',
            headers: DownloadHeaders,
            content: { 'application/gzip': { schema: FileBytes } },
          },
          304: {
            ...NotModified,
            headers: { etag: DownloadHeaders.etag, 'cache-control': DownloadHeaders['cache-control'] },
          },
          ...problemResponses(400, 401, 403, 404),
        },
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
      const etag = `"${artifact.sha256}"`;
      reply.header('etag', etag).header('cache-control', CACHE_CONTROL);
      if (ifNoneMatchHits(request.headers['if-none-match'], etag)) return reply.code(304).send();
      return reply
        .type(artifact.content_type)
        .header('content-disposition', contentDisposition(artifact.name))
        .header('content-length', artifact.content.length)
        .send(artifact.content);
    },
  );
};

export default routes;
