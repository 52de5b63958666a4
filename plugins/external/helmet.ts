import helmet from '@fastify/helmet';
import fp from 'fastify-plugin';

/**
 * Security headers on every response (helmet's defaults: nosniff, frame and referrer policies, HSTS,
 * cross-origin opener/resource policies…) with a Content-Security-Policy fit for a JSON API: nothing may be
 * loaded, framed or submitted from a response. Swagger UI's pages at /apidocs replace it with their own policy
 * (plugins/external/swagger-ui.ts), which lets them load their scripts and styles from /apidocs/static.
 */
export default fp(
  async (fastify) => {
    await fastify.register(helmet, {
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          'default-src': ["'none'"],
          'base-uri': ["'none'"],
          'form-action': ["'none'"],
          'frame-ancestors': ["'none'"],
        },
      },
    });
  },
  { name: 'helmet' },
);
