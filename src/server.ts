import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import usineApp from './app.js';
import type { Config } from './config.js';
import { createValidatorCompiler } from './http/validators.js';

/** Headers and body fields that must never reach a log line. */
const REDACTED = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'password',
  '*.password',
  'access_token',
  '*.access_token',
];

const REQUEST_ID = /^[\w.:-]{1,128}$/;

export interface ServerOptions {
  /** Overrides the logger (tests pass false). */
  logger?: boolean;
}

/** Creates the Fastify instance with Usine registered on it; it does not listen. */
export async function createServer(config: Config, options: ServerOptions = {}): Promise<FastifyInstance> {
  const fastify = Fastify({
    logger:
      options.logger === false
        ? false
        : { level: config.LOG_LEVEL, redact: { paths: REDACTED, censor: '[redacted]' } },
    // The client's x-request-id is kept only when it looks like an id: it is echoed and logged.
    requestIdHeader: false,
    genReqId: (request) => {
      const given = request.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    bodyLimit: config.BODY_LIMIT,
    connectionTimeout: 60_000,
    requestTimeout: 30_000,
    keepAliveTimeout: 72_000,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 200 },
  }).withTypeProvider<TypeBoxTypeProvider>();

  fastify.setValidatorCompiler(createValidatorCompiler());
  fastify.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  await fastify.register(fp(usineApp), { config });
  return fastify;
}
