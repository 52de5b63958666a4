import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { paginationLinks } from '../../src/http/pagination.js';
import { idParams, LocationHeader, NO_CONTROL_CHARACTERS } from '../../src/schemas/common.js';
import { LinkHeader, PageFields, PageQuery, pageParams } from '../../src/schemas/pagination.js';
import { BranchName, Project, ProjectName, RepoUrl } from '../../src/schemas/project.js';
import { ref } from '../../src/schemas/ref.js';
import { BODY_ERRORS, Empty, problemResponses } from '../../src/schemas/responses.js';

const ProjectIdParams = idParams('Project identifier');

const ProjectList = Type.Object(
  { items: Type.Array(ref(Project), { description: 'Projects on this page, oldest first' }), ...PageFields },
  { description: 'A page of projects' },
);

const ListQuery = Type.Composite([
  PageQuery,
  Type.Object({
    q: Type.Optional(Type.String({ maxLength: 100, pattern: NO_CONTROL_CHARACTERS, description: 'Only projects whose name contains this text (case-insensitive)', examples: ['demo'] })),
  }),
]);

const CreateProjectBody = Type.Object(
  {
    name: ProjectName,
    repo: RepoUrl,
    default_branch: Type.Optional({ ...BranchName, description: 'Branch built when a trigger names none (default `main`)' }),
  },
  { additionalProperties: false, examples: [{ name: 'DemoProj', repo: 'https://github.com/demo/repo' }] },
);

const UpdateProjectBody = Type.Object(
  {
    name: Type.Optional({ ...ProjectName, description: 'New unique name; one already taken answers 409 `conflict`' }),
    repo: Type.Optional({ ...RepoUrl, description: 'New repository URL' }),
    default_branch: Type.Optional({ ...BranchName, description: 'New branch built when a trigger names none' }),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    description: 'At least one of `name`, `repo` and `default_branch`; fields left out keep their value',
    examples: [{ default_branch: 'develop' }],
  },
);

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const canRead = { onRequest: fastify.requireRole('viewer') };
  const canWrite = { onRequest: fastify.requireRole('maintainer') };
  const adminOnly = { onRequest: fastify.requireRole('admin') };
  const security = [{ bearerAuth: [] }];

  fastify.get(
    '/projects',
    {
      ...canRead,
      schema: {
        tags: ['projects'],
        operationId: 'listProjects',
        summary: 'List projects',
        description: 'A page of projects, oldest first, with the total and a `Link` header to the other pages.',
        security,
        querystring: ListQuery,
        response: { 200: { ...ProjectList, headers: LinkHeader }, ...problemResponses(400, 401, 403) },
      },
    },
    async (request, reply) => {
      const { page, perPage } = pageParams(request.query);
      const { items, total } = await fastify.projectsRepository.list({ page, perPage, nameContains: request.query.q });
      reply.header('link', paginationLinks(request, { page, perPage, total }));
      return { items, page, per_page: perPage, total };
    },
  );

  fastify.post(
    '/projects',
    {
      ...canWrite,
      schema: {
        tags: ['projects'],
        operationId: 'createProject',
        summary: 'Create a project',
        description: 'Registers a repository under a unique name. A name already taken answers 409 `conflict`.',
        security,
        body: CreateProjectBody,
        response: {
          201: { ...ref(Project), description: 'The created project', headers: LocationHeader },
          ...problemResponses(401, 403, 409, ...BODY_ERRORS),
        },
      },
    },
    async (request, reply) => {
      const project = await fastify.projectsRepository.create(request.body);
      if (!project) throw fastify.httpErrors.conflict(`A project named "${request.body.name}" already exists`);
      reply.code(201).header('location', `/projects/${project.id}`);
      return project;
    },
  );

  fastify.get(
    '/projects/:id',
    {
      ...canRead,
      schema: {
        tags: ['projects'],
        operationId: 'getProject',
        summary: 'Get a project',
        description: 'One project, with the status of its most recent build.',
        security,
        params: ProjectIdParams,
        response: { 200: ref(Project), ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const project = await fastify.projectsRepository.findById(request.params.id);
      if (!project) throw fastify.httpErrors.notFound(`Project ${request.params.id} does not exist`);
      return project;
    },
  );

  fastify.patch(
    '/projects/:id',
    {
      ...canWrite,
      schema: {
        tags: ['projects'],
        operationId: 'updateProject',
        summary: 'Change a project',
        description:
          'Changes the name, repository and/or default branch; `updated_at` moves to now. A name taken by another project ' +
          'answers 409 `conflict`. Needs the maintainer role.',
        security,
        params: ProjectIdParams,
        body: UpdateProjectBody,
        response: {
          200: { ...ref(Project), description: 'The project as changed' },
          ...problemResponses(401, 403, 404, 409, ...BODY_ERRORS),
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      const project = await fastify.projectsRepository.update(id, request.body);
      if (project === 'name_taken') throw fastify.httpErrors.conflict(`A project named "${request.body.name}" already exists`);
      if (!project) throw fastify.httpErrors.notFound(`Project ${id} does not exist`);
      return project;
    },
  );

  fastify.delete(
    '/projects/:id',
    {
      ...adminOnly,
      schema: {
        tags: ['projects'],
        operationId: 'deleteProject',
        summary: 'Delete a project',
        description: 'Deletes the project together with all its builds (and their logs). Admin only.',
        security,
        params: ProjectIdParams,
        response: { 204: { ...Empty, description: 'Deleted, with its builds and artifacts' }, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      if (!(await fastify.projectsRepository.delete(id))) throw fastify.httpErrors.notFound(`Project ${id} does not exist`);
      return reply.code(204).send(null);
    },
  );
};

export default routes;
