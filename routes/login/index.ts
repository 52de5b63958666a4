import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { TokenPair } from '../../src/schemas/auth.js';
import { NO_CONTROL_CHARACTERS } from '../../src/schemas/common.js';
import { ref } from '../../src/schemas/ref.js';
import { BODY_ERRORS, problemResponses } from '../../src/schemas/responses.js';

const LoginBody = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 64, pattern: NO_CONTROL_CHARACTERS, description: 'Login name', examples: ['admin'] }),
    password: Type.String({ minLength: 1, maxLength: 1024, description: 'The password (never stored: only its argon2id hash is)', examples: ['admin123'] }),
  },
  { additionalProperties: false, description: 'Credentials', examples: [{ username: 'admin', password: 'admin123' }] },
);

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post(
    '/login',
    {
      onRequest: fastify.loginThrottle.perIp, preHandler: fastify.loginThrottle.perUsername, // brute force → 429 (plugins/app/login-throttle.ts)
      schema: {
        tags: ['auth'],
        operationId: 'login',
        summary: 'Log in',
        description:
          'Exchanges a username and password for a bearer access token valid `expires_in` seconds (30 minutes by default) ' +
          'and an opaque refresh token valid `refresh_expires_in` seconds (7 days by default) that `POST /token/refresh` ' +
          'exchanges for new ones. Each login starts its own session, which `POST /logout` ends. ' +
          'Wrong username and wrong password are indistinguishable, in body and in timing.',
        body: LoginBody,
        response: { 200: { ...ref(TokenPair), description: 'Logged in: the tokens of a new session' }, ...problemResponses(401, 429, 503, ...BODY_ERRORS) },
      },
    },
    async (request) => {
      const { username, password } = request.body;
      const user = await fastify.usersRepository.findByUsername(username);
      if (!(await fastify.passwords.verify(user?.password_hash, password)) || !user) {
        throw fastify.httpErrors.unauthorized('Invalid username or password');
      }
      const tokens = await fastify.tokens.issue(user);
      if (!tokens) throw fastify.httpErrors.unauthorized('Invalid username or password');
      return tokens;
    },
  );
};

export default routes;
