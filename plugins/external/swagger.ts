import swagger from '@fastify/swagger';
import fp from 'fastify-plugin';
import type { OpenAPIV3 } from 'openapi-types';
import { packageVersion } from '../../src/project-root.js';

type OpenApiDocument = Partial<OpenAPIV3.Document>;

/** A body schema that accepts null (the build trigger's) means the body may be left out entirely. */
function markNullableBodiesOptional(document: OpenApiDocument): OpenApiDocument {
  for (const pathItem of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(pathItem ?? {})) {
      const body = (operation as OpenAPIV3.OperationObject).requestBody as OpenAPIV3.RequestBodyObject | undefined;
      const schema = body?.content['application/json']?.schema as OpenAPIV3.SchemaObject | undefined;
      if (body && schema?.nullable) body.required = false;
    }
  }
  return document;
}

/** The OpenAPI 3 document, built from the routes' TypeBox schemas. Registered before any route. */
export default fp(
  async (fastify) => {
    await fastify.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'Usine API',
          version: packageVersion,
          description:
            'A software-factory (CI/CD) REST API: log in, register projects, trigger simulated builds and follow them, ' +
            'watch the service. Errors are RFC 9457 problem details (`application/problem+json`) with a stable `error` code.',
          license: { name: 'MIT' },
        },
        tags: [
          { name: 'auth', description: 'Log in, rotate refresh tokens, log out' },
          { name: 'users', description: 'Who am I, and user management (admin only): accounts, roles, passwords' },
          { name: 'projects', description: 'Projects: a named repository that Usine builds' },
          { name: 'builds', description: 'Simulated CI runs of a project' },
          { name: 'monitoring', description: 'Health and version of the service' },
        ],
        components: {
          securitySchemes: {
            bearerAuth: {
              type: 'http',
              scheme: 'bearer',
              bearerFormat: 'JWT',
              description: 'The `access_token` returned by `POST /login`',
            },
          },
        },
      },
      transformObject: (document) =>
        'openapiObject' in document ? markNullableBodiesOptional(document.openapiObject as OpenApiDocument) : document.swaggerObject,
      refResolver: {
        // Shared schemas keep their own names under components.schemas (not def-0, def-1…).
        buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
      },
    });
  },
  { name: 'swagger' },
);
