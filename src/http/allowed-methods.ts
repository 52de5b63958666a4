import type { FastifyInstance } from 'fastify';

/**
 * The methods a client may route to: OPTIONS is left out of the search, since CORS (when on) answers it on every
 * path through a wildcard route, and added to any path that exists (it is answered there: plugins/external/cors.ts
 * or the not-found handler).
 */
const ROUTABLE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

/**
 * The methods with a route for this URL (path and query as received), for a 405's `Allow` header; empty when no
 * method has one (a 404). Only asked once a request found no route: a handful of lookups in the router's tree.
 */
export function allowedMethods(fastify: FastifyInstance, url: string): string[] {
  const allowed: string[] = ROUTABLE_METHODS.filter((method) => fastify.findRoute({ method, url }) !== null);
  if (allowed.length > 0) allowed.push('OPTIONS');
  return allowed;
}
