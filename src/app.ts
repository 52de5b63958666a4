import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autoload from '@fastify/autoload';
import type { FastifyError, FastifyInstance } from 'fastify';
import type { Config } from './config.js';
import { allowedMethods } from './http/allowed-methods.js';
import { jsonBodyParser } from './http/json-body.js';
import { pathOf, problem, sendProblem, toProblem } from './http/problem.js';
import { Artifact } from './schemas/artifact.js';
import { TokenPair } from './schemas/auth.js';
import { Build } from './schemas/build.js';
import { Job } from './schemas/job.js';
import { Problem } from './schemas/problem.js';
import { Project } from './schemas/project.js';
import { Event } from './schemas/event.js';
import { Delivery, Hook } from './schemas/hook.js';
import { ServiceStatus } from './schemas/status.js';
import { User } from './schemas/user.js';

declare module 'fastify' {
  interface FastifyInstance {
    config: Config;
  }
}

export interface AppOptions {
  config: Config;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Usine as a Fastify plugin: library plugins, then the app's own plugins, then every route,
 * with one error handler and one 404 handler producing problem details.
 */
export default async function usineApp(fastify: FastifyInstance, { config }: AppOptions): Promise<void> {
  fastify.decorate('config', config);

  // Shared schemas: referenced with ref() and named after their $id under the OpenAPI document's components.schemas.
  for (const schema of [Problem, Build, Job, Project, User, TokenPair, Artifact, ServiceStatus, Event, Hook, Delivery]) fastify.addSchema(schema);

  // JSON is the only body format: anything else (text/plain included) is a 415, not a validation error.
  fastify.removeContentTypeParser('text/plain');
  // Same parser, but an empty body where none is needed is no body, and a refused __proto__ key is named.
  fastify.removeContentTypeParser('application/json');
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, jsonBodyParser(fastify));

  fastify.setErrorHandler((error: FastifyError, request, reply) => {
    const body = toProblem(error, request);
    // The status answered, next to the error: a 500 is then found in a busy log by `"status":500`.
    if (body.status >= 500) request.log.error({ err: error, status: body.status }, 'request failed');
    else request.log.info({ err: { message: error.message, code: error.code } }, 'request refused');
    return sendProblem(reply, body);
  });

  // No route for this method: a 405 with `Allow` if the path has others (Fastify itself answers 404 either way), and
  // OPTIONS on such a path answers with the list itself (RFC 9110 §9.3.7).
  fastify.setNotFoundHandler((request, reply) => {
    const path = pathOf(request);
    const allowed = allowedMethods(fastify, request.url);
    if (allowed.length === 0) return sendProblem(reply, problem(404, 'not_found', `No route for ${request.method} ${path}`, path));
    reply.header('allow', allowed.join(', '));
    if (request.method === 'OPTIONS') return reply.code(204).send();
    return sendProblem(
      reply,
      problem(405, 'method_not_allowed', `${request.method} is not allowed on ${path}; allowed: ${allowed.join(', ')}`, path),
    );
  });

  await fastify.register(autoload, { dir: join(root, 'plugins/external') });
  await fastify.register(autoload, { dir: join(root, 'plugins/app') });
  await fastify.register(autoload, { dir: join(root, 'routes'), dirNameRoutePrefix: false });
}
