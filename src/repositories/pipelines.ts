import { eq, sql } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import type { PipelineDefinition } from '../pipelines/definition.js';

/** Projects' pipeline definitions: the `pipeline` column of projects, null while a project uses the default pipeline. */
export function createPipelinesRepository({ db, tables }: Database) {
  const { projects } = tables;
  const byProject = db
    .select({ pipeline: projects.pipeline })
    .from(projects)
    .where(eq(projects.id, sql.placeholder('id')))
    .prepare('usine_project_pipeline');

  /** One UPDATE: whether the project exists is the statement's row count, not a read before the write. */
  async function write(projectId: number, pipeline: PipelineDefinition | null): Promise<boolean> {
    const rows = await db
      .update(projects)
      .set({ pipeline, updated_at: new Date() })
      .where(eq(projects.id, projectId))
      .returning({ id: projects.id });
    return rows.length > 0;
  }

  return {
    /** The project's own definition, null when it has none (it runs the default), undefined when there is no project. */
    async get(projectId: number): Promise<PipelineDefinition | null | undefined> {
      const rows = await byProject.execute({ id: projectId });
      return rows[0] === undefined ? undefined : rows[0].pipeline;
    },

    /** Stores a definition that validated. False when the project does not exist. */
    put: (projectId: number, definition: PipelineDefinition) => write(projectId, definition),

    /** Back to the default pipeline. False when the project does not exist. */
    clear: (projectId: number) => write(projectId, null),
  };
}

export type PipelinesRepository = ReturnType<typeof createPipelinesRepository>;
