import cors from '@fastify/cors';
import fp from 'fastify-plugin';

/** Response headers a cross-origin script may read (beyond the CORS-safelisted ones). */
const EXPOSED_HEADERS = [
  'RateLimit-Limit',
  'RateLimit-Remaining',
  'RateLimit-Reset',
  'Retry-After',
  'Location',
  'Link',
  'ETag',
  'Content-Disposition',
  'Content-Range',
  'Accept-Ranges',
  'X-Build-Status',
  'X-Log-Size',
  'Idempotent-Replayed',
  'X-Request-Id',
];

/** Request headers a cross-origin script may send. */
const ALLOWED_HEADERS = ['Authorization', 'Content-Type', 'Idempotency-Key', 'Last-Event-ID', 'Range', 'If-None-Match', 'X-Request-Id'];

/** The configured origins in their serialized form (lower-case host, no default port), as browsers send them. */
export function parseOrigins(list: string): string[] {
  return list
    .split(',')
    .map((origin) => origin.trim())
    .filter((origin) => origin !== '')
    .map((origin) => (origin === '*' ? origin : new URL(origin).origin));
}

/**
 * CORS from CORS_ORIGINS. Empty (the default): not registered, so no response carries CORS headers and browsers
 * keep other sites' scripts out. A list: those origins (exactly) are answered with their own origin and
 * credentials allowed; any other origin gets no CORS header at all. `*`: any origin, never with credentials
 * (browsers refuse that pair, and it would let any site act with the user's cookies).
 */
export default fp(
  async (fastify) => {
    const origins = parseOrigins(fastify.config.CORS_ORIGINS);
    if (origins.length === 0) return;
    const anyOrigin = origins.includes('*');
    const allowed = new Set(origins);
    await fastify.register(cors, {
      origin: anyOrigin ? '*' : (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
      credentials: !anyOrigin,
      methods: ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE'],
      allowedHeaders: ALLOWED_HEADERS,
      exposedHeaders: EXPOSED_HEADERS,
      maxAge: 600,
    });
  },
  { name: 'cors' },
);
