import type { FastifyReply } from 'fastify';
import { parseByteRange, sliceFrom } from '../builds/log-slice.js';

/**
 * A log (a build's or a job's) as plain text, the way both log routes answer it: the bytes after `?offset=`, or the
 * byte range of `Range: bytes=N-` (206 with Content-Range; 416 past the end), or the whole log; never cached,
 * ranges announced. The route sets its own status headers (`X-Build-Status`, `X-Job-Status`) and `X-Log-Size`.
 */
export function sendLogText(reply: FastifyReply, bytes: Buffer, offset: number | undefined, rangeHeader: string | undefined): Buffer {
  reply.header('cache-control', 'no-cache').header('accept-ranges', 'bytes').type('text/plain; charset=utf-8');
  if (offset !== undefined) return sliceFrom(bytes, offset);
  const range = parseByteRange(rangeHeader, bytes.length);
  if (range === 'unsatisfiable') {
    reply.header('content-range', `bytes */${bytes.length}`);
    throw reply.server.httpErrors.rangeNotSatisfiable(`The log has ${bytes.length} bytes: the range starts past its end`);
  }
  if (range) {
    reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${bytes.length}`);
    return bytes.subarray(range.start, range.end + 1);
  }
  return bytes;
}
