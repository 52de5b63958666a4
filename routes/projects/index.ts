import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { paginationLinks } from '../../src/http/pagination.js';
import { IdParams, LocationHeader } from '../../src/schemas/common.js';
import { LinkHeader, PageFields, PageQuery, pageParams } from '../../src/schemas/pagination.js';
import { BranchName, Project, ProjectName, RepoUrl } from '../../src/schemas/project.js';
import { ref } from '../../src/schemas/ref.js';
import { BODY_ERRORS, problemResponses } from '../../src/schemas/responses.js';

const ProjectList = Type.Object(
  { items: Type.Array(ref(Project), { description: 'Projects on this page, oldest first' }), ...PageFields },
  { description: 'A page of projects' },
);

const ListQuery = Type.Composite([
  PageQuery,
  Type.Object({
    q: Type.Optional(Type.String({ maxLength: 100, description: 'Only projects whose name contains this text (case-insensitive)', examples: ['demo'] })),
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

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const canRead = { onRequest: fastify.requireRole('viewer') };
  const canWrite = { onRequest: fastify.requireRole('maintainer') };
  const security = [{ bearerAuth: [] }];

  fastify.get(
    '/projects',
    {
      ...canRead,
      schema: {
        tags: ['projects'],
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
      reply.header('link', paginationLinks(request.url, { page, perPage, total }));
      return { items, page, per_page: perPage, total };
    },
  );

  fastify.post(
    '/projects',
    {
      ...canWrite,
      schema: {
        tags: ['projects'],
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
        summary: 'Get a project',
        description: 'One project, with the status of its most recent build.',
        security,
        params: IdParams,
        response: { 200: ref(Project), ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const project = await fastify.projectsRepository.findById(request.params.id);
      if (!project) throw fastify.httpErrors.notFound(`Project ${request.params.id} does not exist`);
      return project;
    },
  );
};

export default routes;
