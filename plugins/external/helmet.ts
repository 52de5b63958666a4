import helmet from '@fastify/helmet';
import Fastify from 'fastify';
import fp from 'fastify-plugin';

/**
 * Helmet's options: its defaults (nosniff, frame and referrer policies, HSTS, cross-origin opener/resource
 * policies…) with a Content-Security-Policy fit for a JSON API: nothing may be loaded, framed or submitted from a
 * response. Four defaults are left out, as the OWASP REST Security Cheat Sheet does: they only concern how a browser
 * treats a document, in features browsers have dropped (X-XSS-Protection: the XSS auditor; X-Download-Options:
 * Internet Explorer 8; X-Permitted-Cross-Domain-Policies: Flash and Acrobat) or for documents only
 * (Origin-Agent-Cluster). Every response sends fewer header lines for it.
 */
const HELMET_OPTIONS = {
  xXssProtection: false,
  xDownloadOptions: false,
  xPermittedCrossDomainPolicies: false,
  originAgentCluster: false,
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      'default-src': ["'none'"],
      'base-uri': ["'none'"],
      'form-action': ["'none'"],
      'frame-ancestors': ["'none'"],
    },
  },
};

/**
 * The headers @fastify/helmet puts on a response with these options, read once from a throwaway instance.
 * @fastify/helmet builds helmet's middleware anew on every request (options merged, CSP directives parsed and
 * validated, two hooks): with options that never vary per request the outcome is always these same headers.
 */
async function helmetHeaders(): Promise<Record<string, string>> {
  const probe = Fastify({ logger: false });
  try {
    await probe.register(helmet, HELMET_OPTIONS);
    probe.get('/', async () => '');
    const response = await probe.inject({ url: '/' });
    const set = new Set(['content-type', 'content-length', 'date', 'connection', 'keep-alive']);
    return Object.fromEntries(
      Object.entries(response.headers).flatMap(([name, value]) => (set.has(name) || value === undefined ? [] : [[name, String(value)]])),
    );
  } finally {
    await probe.close();
  }
}

/**
 * Security headers on every response, errors and 404s included. Swagger UI's pages at /apidocs replace the
 * Content-Security-Policy with their own (plugins/external/swagger-ui.ts), which lets them load their scripts and
 * styles from /apidocs/static.
 */
export default fp(
  async (fastify) => {
    const headers = await helmetHeaders();
    if (!headers['content-security-policy']) throw new Error('helmet: no Content-Security-Policy computed');
    fastify.addHook('onRequest', (_request, reply, done) => {
      reply.headers(headers);
      done();
    });
  },
  { name: 'helmet' },
);
