import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { BODY_ERRORS, problemResponses } from '../../src/schemas/responses.js';

const LoginBody = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 64, description: 'Username', examples: ['admin'] }),
    password: Type.String({ minLength: 1, maxLength: 1024, description: 'Password', examples: ['admin123'] }),
  },
  { additionalProperties: false, examples: [{ username: 'admin', password: 'admin123' }] },
);

const TokenBody = Type.Object({
  access_token: Type.String({
    description: 'JWT (HS256) to send as `Authorization: Bearer <token>`',
    examples: ['eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.signature'],
  }),
  token_type: Type.Literal('bearer', { description: 'Always `bearer`' }),
  expires_in: Type.Integer({ description: 'Seconds until the access token expires', examples: [1800] }),
});

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post(
    '/login',
    {
      schema: {
        tags: ['auth'],
        summary: 'Log in',
        description:
          'Exchanges a username and password for a bearer access token valid `expires_in` seconds (30 minutes by default). ' +
          'Wrong username and wrong password are indistinguishable, in body and in timing.',
        body: LoginBody,
        response: { 200: TokenBody, ...problemResponses(401, ...BODY_ERRORS) },
      },
    },
    async (request) => {
      const { username, password } = request.body;
      const user = await fastify.usersRepository.findByUsername(username);
      if (!(await fastify.passwords.verify(user?.password_hash, password)) || !user) {
        throw fastify.httpErrors.unauthorized('Invalid username or password');
      }
      const access_token = await fastify.jwt.sign({ sub: String(user.id), username: user.username, role: user.role, typ: 'access' });
      return { access_token, token_type: 'bearer' as const, expires_in: fastify.config.ACCESS_TOKEN_TTL };
    },
  );
};

export default routes;
