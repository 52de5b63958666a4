import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { paginationLinks } from '../../src/http/pagination.js';
import { idParams, locationHeader } from '../../src/schemas/common.js';
import { LinkHeader, PageFields, PageQuery, pageParams } from '../../src/schemas/pagination.js';
import { ref } from '../../src/schemas/ref.js';
import { BODY_ERRORS, Empty, problemResponses } from '../../src/schemas/responses.js';
import { Password, passwordPolicyViolation, RoleName, User, Username } from '../../src/schemas/user.js';

const UserList = Type.Object(
  { items: Type.Array(ref(User), { description: 'Users on this page, oldest first' }), ...PageFields },
  { description: 'A page of users' },
);

const CreateUserBody = Type.Object(
  {
    username: Username,
    password: Password,
    role: Type.Optional({ ...RoleName, description: 'Role of the new user (default `viewer`)' }),
  },
  { additionalProperties: false, description: 'The new account', examples: [{ username: 'alice', password: 'correct-horse-battery', role: 'maintainer' }] },
);

const UpdateUserBody = Type.Object(
  {
    password: Type.Optional({ ...Password, description: 'New password: 8–1024 characters, not the username (in any case)' }),
    role: Type.Optional({ ...RoleName, description: 'New role. Demoting the last admin answers 409 `conflict`.' }),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    description: 'At least one of `password` and `role`; the username cannot change',
    examples: [{ role: 'viewer' }],
  },
);

/** User 2 is the first user an admin creates (user 1 is the seeded admin, who cannot be demoted or deleted). */
const UserIdParams = idParams('User identifier', 2);

const LAST_ADMIN = 'The last admin cannot be deleted or demoted; make another user admin first';

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const adminOnly = { onRequest: fastify.requireRole('admin') };
  const security = [{ bearerAuth: [] }];
  const tags = ['users'];

  /** A 400 shaped like the validator's own, so clients see one format for every refused field. */
  const passwordRefused = (message: string) =>
    Object.assign(fastify.httpErrors.badRequest(`password ${message}`), {
      validation: [{ instancePath: '/password', message }],
      validationContext: 'body',
    });

  const notFound = (id: number) => fastify.httpErrors.notFound(`User ${id} does not exist`);

  fastify.get(
    '/users',
    {
      ...adminOnly,
      schema: {
        tags,
        operationId: 'listUsers',
        summary: 'List users',
        description: 'A page of users, oldest first, with the total and a `Link` header to the other pages. Admin only.',
        security,
        querystring: PageQuery,
        response: { 200: { ...UserList, headers: LinkHeader }, ...problemResponses(400, 401, 403) },
      },
    },
    async (request, reply) => {
      const { page, perPage } = pageParams(request.query);
      const { items, total } = await fastify.usersRepository.list({ page, perPage });
      reply.header('link', paginationLinks(request, { page, perPage, total }));
      return { items, page, per_page: perPage, total };
    },
  );

  fastify.post(
    '/users',
    {
      ...adminOnly,
      schema: {
        tags,
        operationId: 'createUser',
        summary: 'Create a user',
        description:
          'Creates an account with a unique username and a role (default `viewer`). The password must have 8–1024 characters ' +
          'and differ from the username; it is stored only as an argon2id hash. A username already taken answers 409 `conflict`. Admin only.',
        security,
        body: CreateUserBody,
        response: {
          201: { ...ref(User), description: 'The created user', headers: locationHeader('/users/2') },
          ...problemResponses(401, 403, 409, ...BODY_ERRORS),
        },
      },
    },
    async (request, reply) => {
      const { username, password, role = 'viewer' } = request.body;
      const violation = passwordPolicyViolation(username, password);
      if (violation) throw passwordRefused(violation);
      const user = await fastify.usersRepository.create({ username, password_hash: await fastify.passwords.hash(password), role });
      if (!user) throw fastify.httpErrors.conflict(`A user named "${username}" already exists`);
      reply.code(201).header('location', `/users/${user.id}`);
      return user;
    },
  );

  fastify.get(
    '/users/:id',
    {
      ...adminOnly,
      schema: {
        tags,
        operationId: 'getUser',
        summary: 'Get a user',
        description: 'One user, without any password material. Admin only.',
        security,
        params: UserIdParams,
        response: { 200: ref(User), ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const user = await fastify.usersRepository.findPublicById(request.params.id);
      if (!user) throw notFound(request.params.id);
      return user;
    },
  );

  fastify.patch(
    '/users/:id',
    {
      ...adminOnly,
      schema: {
        tags,
        operationId: 'updateUser',
        summary: 'Change a user',
        description:
          "Sets a new password and/or role; the change applies to the user's next request, tokens already issued included. " +
          'A new password also ends all of the user\'s sessions (refresh and access tokens). ' +
          'Demoting the last admin answers 409 `conflict`. Admin only.',
        security,
        params: UserIdParams,
        body: UpdateUserBody,
        response: { 200: { ...ref(User), description: 'The user as changed' }, ...problemResponses(401, 403, 404, 409, ...BODY_ERRORS) },
      },
    },
    async (request) => {
      const { id } = request.params;
      const { password, role } = request.body;
      let password_hash: string | undefined;
      if (password !== undefined) {
        // The policy needs the username, which never changes: a read before the write is enough.
        const current = await fastify.usersRepository.findPublicById(id);
        if (!current) throw notFound(id);
        const violation = passwordPolicyViolation(current.username, password);
        if (violation) throw passwordRefused(violation);
        password_hash = await fastify.passwords.hash(password);
      }
      const outcome = await fastify.usersRepository.update(id, { password_hash, role });
      if (outcome.ok) {
        // A stolen session must not survive a password change: every refresh and access token of the user dies.
        if (password_hash) await fastify.refreshTokensRepository.revokeAllForUser(id, new Date());
        return outcome.value;
      }
      throw outcome.reason === 'not_found' ? notFound(id) : fastify.httpErrors.conflict(LAST_ADMIN);
    },
  );

  fastify.delete(
    '/users/:id',
    {
      ...adminOnly,
      schema: {
        tags,
        operationId: 'deleteUser',
        summary: 'Delete a user',
        description:
          "Deletes the account and its refresh tokens; its access tokens stop working at once. Builds keep the username in `triggered_by`. " +
          'Deleting the last admin answers 409 `conflict`. Admin only.',
        security,
        params: UserIdParams,
        response: { 204: { ...Empty, description: 'Deleted' }, ...problemResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const outcome = await fastify.usersRepository.delete(id);
      if (!outcome.ok) throw outcome.reason === 'not_found' ? notFound(id) : fastify.httpErrors.conflict(LAST_ADMIN);
      return reply.code(204).send(null);
    },
  );
};

export default routes;
