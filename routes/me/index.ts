import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ref } from '../../src/schemas/ref.js';
import { problemResponses } from '../../src/schemas/responses.js';
import { User } from '../../src/schemas/user.js';

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get(
    '/me',
    {
      onRequest: fastify.requireRole('viewer'),
      schema: {
        tags: ['users'],
        operationId: 'getMe',
        summary: 'Who am I',
        description:
          'The caller, as the database says now: a role changed since the token was issued shows here (and applies) at once. Any role.',
        security: [{ bearerAuth: [] }],
        response: { 200: { ...ref(User), description: 'The authenticated user' }, ...problemResponses(401) },
      },
    },
    async (request, reply) => {
      const user = await fastify.usersRepository.findPublicById(request.caller.id);
      // Deleted between authentication and this read: the token is no longer any good.
      if (!user) throw fastify.httpErrors.unauthorized('The user of this token no longer exists');
      reply.header('cache-control', 'no-store');
      return user;
    },
  );
};

export default routes;
