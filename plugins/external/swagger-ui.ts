import swaggerUi from '@fastify/swagger-ui';
import fp from 'fastify-plugin';

/** Swagger UI at /apidocs (the seed's path) and the document at /apidocs/json. */
export default fp(
  async (fastify) => {
    await fastify.register(swaggerUi, {
      routePrefix: '/apidocs',
      uiConfig: { persistAuthorization: true, displayRequestDuration: true, tryItOutEnabled: false },
    });
  },
  { name: 'swagger-ui', dependencies: ['swagger'] },
);
