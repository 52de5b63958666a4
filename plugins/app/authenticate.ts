import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

declare module 'fastify' {
  interface FastifyInstance {
    /** preHandler: a valid bearer access token, or 401. */
    authenticate(request: FastifyRequest, reply: FastifyReply): Promise<void>;
  }
}

export default fp(
  async (fastify) => {
    fastify.decorate('authenticate', async (request: FastifyRequest) => {
      try {
        await request.jwtVerify();
      } catch (error) {
        const reason = error instanceof Error ? error.message : 'invalid token';
        throw fastify.httpErrors.unauthorized(reason);
      }
    });
  },
  { name: 'authenticate', dependencies: ['jwt', 'sensible'] },
);
