import { Type } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';
import { Empty } from '../schemas/responses.js';

/**
 * Downloading an artifact, the way both download routes answer (`GET /builds/{id}/artifacts/{name}` and
 * `GET /jobs/{id}/artifacts/{name}`): the file with its SHA-256 as `ETag`, immutable private caching and an attachment
 * name, or a 304 without a body when `If-None-Match` names it. The routes find the artifact and say why when none.
 */

/** A stored artifact never changes (its build or job succeeded once and for all; ids are never reused). */
export const ARTIFACT_CACHE_CONTROL = 'private, max-age=31536000, immutable';

/** What the answer needs of a stored artifact. */
export interface DownloadableArtifact {
  name: string;
  content_type: string;
  sha256: string;
  content: Buffer;
}

const downloadHeaders = (filename: string) => ({
  etag: Type.String({ description: 'The SHA-256 of the file, in quotes', examples: ['"c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2"'] }),
  'cache-control': Type.String({ description: 'Artifacts are immutable: cache them privately', examples: [ARTIFACT_CACHE_CONTROL] }),
  'content-disposition': Type.String({ description: 'Download as a file of the artifact\'s name', examples: [`attachment; filename="${filename}"`] }),
});

/** The handler sends a Buffer, which Fastify writes as is (no serialiser runs on it). */
const FileBytes = Type.Unsafe<Buffer>(Type.String({ format: 'binary', description: "The file's bytes" }));

/**
 * A 304 has no body at all: documented as `null` (no content in OpenAPI), sent as `undefined` so that Fastify writes
 * neither a body nor `Content-Length`/`Content-Type` (a `null` would be serialised as the 4 bytes `null`).
 */
const NotModified = Type.Unsafe<undefined>({ ...Empty, description: 'Not modified: `If-None-Match` names the current `ETag`; no body' });

/** The 200 (the file) and 304 (not modified) of a download route's `response` schema; `filename` is the example's. */
export function artifactDownloadResponses(filename: string) {
  const headers = downloadHeaders(filename);
  return {
    200: {
      description: 'The `.tar.gz` file',
      headers,
      content: { 'application/gzip': { schema: FileBytes } },
    },
    304: {
      ...NotModified,
      headers: { etag: headers.etag, 'cache-control': headers['cache-control'] },
    },
  };
}

/**
 * Whether an `If-None-Match` header matches the entity tag: `*`, or any tag of its comma-separated list, compared
 * weakly (`W/"x"` matches `"x"`), as RFC 9110 prescribes for this header.
 */
export function ifNoneMatchHits(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}

/** Artifact names are slugs; anything else is made safe for the quoted `filename` and given in full in `filename*`. */
export function contentDisposition(name: string): string {
  const plain = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return plain === name ? `attachment; filename="${name}"` : `attachment; filename="${plain}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

/** Answers a download: 304 when `ifNoneMatch` names the file's tag, else the file itself. */
export function sendArtifact(reply: FastifyReply, ifNoneMatch: string | undefined, artifact: DownloadableArtifact): FastifyReply {
  const etag = `"${artifact.sha256}"`;
  reply.header('etag', etag).header('cache-control', ARTIFACT_CACHE_CONTROL);
  if (ifNoneMatchHits(ifNoneMatch, etag)) return reply.code(304).send();
  return reply
    .type(artifact.content_type)
    .header('content-disposition', contentDisposition(artifact.name))
    .header('content-length', artifact.content.length)
    .send(artifact.content);
}
