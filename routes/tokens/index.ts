import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { TokenPair } from '../../src/schemas/auth.js';
import { ref } from '../../src/schemas/ref.js';
import { BODY_ERRORS, Empty, problemResponses } from '../../src/schemas/responses.js';

const RefreshBody = Type.Object(
  {
    refresh_token: Type.String({
      minLength: 1,
      // Loose on purpose: anything that is not a live refresh token (an access token included) is a 401, not a 400.
      maxLength: 4096,
      description: 'The `refresh_token` of the latest `POST /login` or `POST /token/refresh` answer',
      examples: ['q3Vh0Zb7m2cY1kq1p2O8dC5nJ0wX4eT9rS6uI3oA7lE'],
    }),
  },
  { additionalProperties: false, description: 'The refresh token to exchange', examples: [{ refresh_token: 'q3Vh0Zb7m2cY1kq1p2O8dC5nJ0wX4eT9rS6uI3oA7lE' }] },
);

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const repository = fastify.refreshTokensRepository;

  fastify.post(
    '/token/refresh',
    {
      schema: {
        tags: ['auth'],
        operationId: 'refreshTokens',
        summary: 'Refresh the tokens',
        description:
          'Exchanges a refresh token for a new access token (with the user’s current role) and a new refresh token of the ' +
          'same session. Each refresh token works once: presenting one that was already exchanged is taken as theft ' +
          '(RFC 9700 §4.14.2) and revokes the whole session, its access tokens included. An unknown, expired or revoked ' +
          'refresh token, or an access token, answers 401.',
        body: RefreshBody,
        response: { 200: { ...ref(TokenPair), description: 'The new tokens: the one presented is now spent' }, ...problemResponses(401, ...BODY_ERRORS) },
      },
    },
    async (request) => {
      const now = new Date();
      const hash = fastify.tokens.hashRefreshToken(request.body.refresh_token);
      const used = await repository.use(hash, now);
      if (!used) {
        const revoked = await repository.revokeFamilyIfReused(hash, now);
        if (revoked > 0) request.log.warn({ revoked }, 'refresh token reused: its family is revoked');
        throw fastify.httpErrors.unauthorized(
          revoked > 0
            ? 'This refresh token was already used: every token of its session is now revoked; log in again'
            : 'Unknown, expired or revoked refresh token',
        );
      }
      const { user_id: id, username, role, family_id } = used;
      // The foreign key makes a missing user impossible here; `issue` also answers undefined if it was just deleted.
      const tokens = username !== null && role !== null ? await fastify.tokens.issue({ id, username, role }, family_id) : undefined;
      if (!tokens) throw fastify.httpErrors.unauthorized('Unknown, expired or revoked refresh token');
      return tokens;
    },
  );

  fastify.post(
    '/logout',
    {
      onRequest: fastify.authenticate,
      schema: {
        tags: ['auth'],
        operationId: 'logout',
        summary: 'Log out',
        description:
          'Ends the caller’s session: the refresh tokens and access tokens of the login that issued the bearer token ' +
          'stop working at once. Other sessions of the same user (other logins) are untouched.',
        security: [{ bearerAuth: [] }],
        response: { 204: { ...Empty, description: 'Logged out: the session is revoked' }, ...problemResponses(401) },
      },
    },
    async (request, reply) => {
      await repository.revokeFamily(request.caller.familyId, request.caller.id, new Date());
      return reply.code(204).send(null);
    },
  );
};

export default routes;
