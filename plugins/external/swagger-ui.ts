import swaggerUi from '@fastify/swagger-ui';
import fp from 'fastify-plugin';

/**
 * The Content-Security-Policy of the /apidocs pages (it replaces helmet's API policy there): the page runs
 * only the scripts and styles served from /apidocs/static and talks only to this origin. It is
 * @fastify/swagger-ui's `staticCSP: true` policy without `upgrade-insecure-requests` (which would break the
 * page on plain-http deployments such as http://localhost:5000) and without the online validator's images.
 */
const APIDOCS_CSP = {
  'default-src': ["'self'"],
  'base-uri': ["'self'"],
  'connect-src': ["'self'"],
  'font-src': ["'self'", 'data:'],
  'form-action': ["'self'"],
  'frame-ancestors': ["'self'"],
  'img-src': ["'self'", 'data:'],
  'object-src': ["'none'"],
  'script-src': ["'self'"],
  'script-src-attr': ["'none'"],
  // The hash allows the one inline <style> element the Swagger UI bundle inserts (swagger-ui 5.x); a new bundle
  // with a different element shows up as a console error in the browser test (test/e2e/apidocs.e2e.ts).
  'style-src': ["'self'", 'https:', "'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='"],
};

/** Swagger UI at /apidocs (the seed's path) and the document at /apidocs/json. */
export default fp(
  async (fastify) => {
    await fastify.register(async (docs) => {
      // The pages and the document need no database: they stay up during an outage (plugins/app/database-availability.ts).
      docs.addHook('onRoute', (route) => {
        route.config = { ...route.config, database: false };
      });
      await docs.register(swaggerUi, {
        routePrefix: '/apidocs',
        uiConfig: { persistAuthorization: true, displayRequestDuration: true, tryItOutEnabled: false },
        validatorUrl: false,
        staticCSP: APIDOCS_CSP,
      });
    });
  },
  { name: 'swagger-ui', dependencies: ['swagger'] },
);
