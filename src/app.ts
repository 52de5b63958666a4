import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autoload from '@fastify/autoload';
import type { FastifyError, FastifyInstance } from 'fastify';
import type { Config } from './config.js';
import { pathOf, problem, sendProblem, toProblem } from './http/problem.js';
import { Artifact } from './schemas/artifact.js';
import { TokenPair } from './schemas/auth.js';
import { Build } from './schemas/build.js';
import { Problem } from './schemas/problem.js';
import { Project } from './schemas/project.js';
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
  for (const schema of [Problem, Build, Project, User, TokenPair, Artifact, ServiceStatus]) fastify.addSchema(schema);

  // JSON is the only body format: anything else (text/plain included) is a 415, not a validation error.
  fastify.removeContentTypeParser('text/plain');

  fastify.setErrorHandler((error: FastifyError, request, reply) => {
    const body = toProblem(error, request);
    if (body.status >= 500) request.log.error({ err: error }, 'request failed');
    else request.log.info({ err: { message: error.message, code: error.code } }, 'request refused');
    return sendProblem(reply, body);
  });

  fastify.setNotFoundHandler((request, reply) => {
    const path = pathOf(request);
    return sendProblem(reply, problem(404, 'not_found', `No route for ${request.method} ${path}`, path));
  });

  await fastify.register(autoload, { dir: join(root, 'plugins/external') });
  await fastify.register(autoload, { dir: join(root, 'plugins/app') });
  await fastify.register(autoload, { dir: join(root, 'routes'), dirNameRoutePrefix: false });
}
