import fp from 'fastify-plugin';
import { createArtifactsRepository, type ArtifactsRepository } from '../../src/repositories/artifacts.js';
import { createBuildsRepository, type BuildsRepository } from '../../src/repositories/builds.js';
import { createEventsRepository, type EventsRepository } from '../../src/repositories/events.js';
import { createHooksRepository, type HooksRepository } from '../../src/repositories/hooks.js';
import { createJobsRepository, type JobsRepository } from '../../src/repositories/jobs.js';
import { createPipelinesRepository, type PipelinesRepository } from '../../src/repositories/pipelines.js';
import { createProjectsRepository, type ProjectsRepository } from '../../src/repositories/projects.js';
import { createRefreshTokensRepository, type RefreshTokensRepository } from '../../src/repositories/refresh-tokens.js';
import { createUsersRepository, type UsersRepository } from '../../src/repositories/users.js';

declare module 'fastify' {
  interface FastifyInstance {
    usersRepository: UsersRepository;
    projectsRepository: ProjectsRepository;
    pipelinesRepository: PipelinesRepository;
    buildsRepository: BuildsRepository;
    jobsRepository: JobsRepository;
    artifactsRepository: ArtifactsRepository;
    refreshTokensRepository: RefreshTokensRepository;
    eventsRepository: EventsRepository;
    hooksRepository: HooksRepository;
  }
}

export default fp(
  async (fastify) => {
    // Changes that can take access away end authentication's cached answers at once in this process.
    const onAuthChange = () => fastify.callerCache.invalidate();
    fastify.decorate('usersRepository', createUsersRepository(fastify.database, { onAuthChange }));
    fastify.decorate('projectsRepository', createProjectsRepository(fastify.database));
    fastify.decorate('pipelinesRepository', createPipelinesRepository(fastify.database));
    fastify.decorate('buildsRepository', createBuildsRepository(fastify.database));
    fastify.decorate('jobsRepository', createJobsRepository(fastify.database));
    fastify.decorate('artifactsRepository', createArtifactsRepository(fastify.database));
    fastify.decorate('eventsRepository', createEventsRepository(fastify.database));
    fastify.decorate('hooksRepository', createHooksRepository(fastify.database));
    fastify.decorate('refreshTokensRepository', createRefreshTokensRepository(fastify.database, { onAuthChange }));
  },
  { name: 'repositories', dependencies: ['database', 'caller-cache'] },
);
