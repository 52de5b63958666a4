import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { DestinationStream } from 'pino';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import usineApp from './app.js';
import type { Config } from './config.js';
import { scrubLogObject, serializeError, serializeRequest } from './http/log-redaction.js';
import { createClientErrorHandler } from './http/client-errors.js';
import { sendProblem, toProblem } from './http/problem.js';
import { createValidatorCompiler } from './http/validators.js';

/** TRUST_PROXY as Fastify's `trustProxy`: false, true, a hop count or a list of addresses/CIDRs. */
export function trustProxyOption(value: string): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (value === '' || value === 'false') return false;
  if (value === 'true') return true;
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    return (_address, hop) => hop < hops;
  }
  return value.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;
/** How often Node looks for connections past the headers or request timeout. */
const HTTP_TIMEOUT_SWEEP_MS = 1000;

export interface ServerOptions {
  /** Overrides the logger (tests pass false). */
  logger?: boolean;
  /** Where log lines go instead of stdout (tests capture them); LOG_LEVEL still applies. */
  logStream?: DestinationStream;
}

/** Creates the Fastify instance with Usine registered on it; it does not listen. */
export async function createServer(config: Config, options: ServerOptions = {}): Promise<FastifyInstance> {
  const fastify = Fastify({
    logger:
      options.logger === false
        ? false
        : {
            level: config.LOG_LEVEL,
            // Passwords, tokens, the Authorization header… never reach a line (src/http/log-redaction.ts).
            formatters: { log: scrubLogObject },
            serializers: { req: serializeRequest, err: serializeError },
            ...(options.logStream ? { stream: options.logStream } : {}),
          },
    trustProxy: trustProxyOption(config.TRUST_PROXY),
    // The client's x-request-id is kept only when it looks like an id: it is echoed and logged.
    requestIdHeader: false,
    genReqId: (request) => {
      const given = request.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    bodyLimit: config.BODY_LIMIT,
    // Avvio's default (10 s per plugin) fails a start that is merely slow — on a loaded machine, or under tsx, the app
    // plugin's autoload compiles every route file and schema — with a process that exits instead of becoming ready.
    // Readiness (GET /health/ready) already tells an orchestrator when a process can take traffic.
    pluginTimeout: 60_000,
    connectionTimeout: config.HTTP_CONNECTION_TIMEOUT_S * 1000,
    requestTimeout: config.HTTP_REQUEST_TIMEOUT_S * 1000,
    keepAliveTimeout: config.HTTP_KEEP_ALIVE_TIMEOUT_S * 1000,
    http: {
      headersTimeout: config.HTTP_HEADERS_TIMEOUT_S * 1000,
      // Node enforces the two timeouts above only when it sweeps its connections, every 30 s by default.
      connectionsCheckingInterval: HTTP_TIMEOUT_SWEEP_MS,
    },
    // Node's own refusals (a request not received within those timeouts: 408; headers too large: 431) as problems.
    clientErrorHandler: createClientErrorHandler({
      requestTimeoutS: config.HTTP_REQUEST_TIMEOUT_S,
      headersTimeoutS: config.HTTP_HEADERS_TIMEOUT_S,
    }),
    return503OnClosing: true,
    routerOptions: { maxParamLength: 200 },
    // Malformed percent-encoding and over-long path segments are refused by the router itself: as problems too.
    frameworkErrors: (error, request, reply) => {
      reply.header('x-request-id', request.id);
      sendProblem(reply, toProblem(error, request));
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  fastify.setValidatorCompiler(createValidatorCompiler());
  fastify.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    done();
  });
  await fastify.register(fp(usineApp), { config });
  return fastify;
}
