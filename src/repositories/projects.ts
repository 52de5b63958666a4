import { asc, count, eq, sql, type SQL } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { retryingDeadlocks } from '../db/deadlocks.js';
import { isUniqueViolation } from '../db/errors.js';

export interface ProjectListQuery {
  page: number;
  perPage: number;
  /** Substring of the name, case-insensitive (Unicode simple case mapping, the same on both databases). */
  nameContains?: string;
}

export interface NewProject {
  name: string;
  repo: string;
  default_branch?: string;
}

export type ProjectChanges = Partial<NewProject>;


/** `like` wildcards in user input are matched literally. */
const escapeLike = (text: string) => text.replace(/[\\%_]/g, (char) => `\\${char}`);

export function createProjectsRepository({ db, tables, lower }: Database) {
  const { projects } = tables;

  const projectFields = {
    id: projects.id,
    name: projects.name,
    repo: projects.repo,
    default_branch: projects.default_branch,
    // Stored, kept by triggers on builds (migration 0014): a page of projects reads no builds.
    last_build_status: projects.last_build_status,
    created_at: projects.created_at,
    updated_at: projects.updated_at,
  };

  // Both sides lowered by the same function (the database's, Unicode-aware on both: Database.lower), so that `école`,
  // `École` and `ÉCOLE` find the same projects on SQLite and PostgreSQL.
  const nameFilter = (text?: string): SQL | undefined =>
    text ? sql`${lower(projects.name)} like ${lower(sql`${`%${escapeLike(text)}%`}`)} escape '\\'` : undefined;

  // The hot reads, built and prepared once: Drizzle's query building cost more than the queries themselves.
  const byId = db.select(projectFields).from(projects).where(eq(projects.id, sql.placeholder('id'))).prepare('usine_project_by_id');
  /** Name, repository and default branch: what the build engine and triggers need. */
  const plainById = db
    .select({ id: projects.id, name: projects.name, repo: projects.repo, default_branch: projects.default_branch })
    .from(projects)
    .where(eq(projects.id, sql.placeholder('id')))
    .prepare('usine_project_plain_by_id');
  const firstPage = db
    .select(projectFields)
    .from(projects)
    .orderBy(asc(projects.id))
    .limit(sql.placeholder('limit'))
    .offset(sql.placeholder('offset'))
    .prepare('usine_projects_page');
  // The exact total, kept by triggers in project_count (migration 0005; not in the Drizzle schema, as auth_version is
  // not): PostgreSQL spreads it over up to 16 slots, SQLite keeps one row, and the sum reads both.
  const countAll = db
    .select({ total: sql<number>`cast(coalesce(sum(n), 0) as integer)`.mapWith(Number) })
    .from(sql`project_count`)
    .prepare('usine_projects_count');

  return {
    async list({ page, perPage, nameContains }: ProjectListQuery) {
      if (!nameContains) {
        const [items, totals] = await Promise.all([
          firstPage.execute({ limit: perPage, offset: (page - 1) * perPage }),
          countAll.execute(),
        ]);
        return { items, total: totals[0]?.total ?? 0 };
      }
      const where = nameFilter(nameContains);
      const [items, totals] = await Promise.all([
        db
          .select(projectFields)
          .from(projects)
          .where(where)
          .orderBy(asc(projects.id))
          .limit(perPage)
          .offset((page - 1) * perPage),
        db.select({ total: count() }).from(projects).where(where),
      ]);
      return { items, total: totals[0]?.total ?? 0 };
    },

    async findById(id: number) {
      const rows = await byId.execute({ id });
      return rows[0];
    },

    /** Name, repository and default branch only: for triggers and the build engine. */
    async findPlainById(id: number) {
      const rows = await plainById.execute({ id });
      return rows[0];
    },

    /** Inserts the project, or returns undefined when the name is taken (the unique index decides). */
    async create(project: NewProject) {
      const rows = await db.insert(projects).values(project).onConflictDoNothing({ target: projects.name }).returning(projectFields);
      return rows[0];
    },

    /**
     * Changes the given fields and bumps updated_at in one statement. Returns the project, undefined when it
     * does not exist, or 'name_taken' when the unique index refuses the new name.
     */
    async update(id: number, changes: ProjectChanges) {
      try {
        const rows = await db
          .update(projects)
          .set({ ...changes, updated_at: new Date() })
          .where(eq(projects.id, id))
          .returning(projectFields);
        return rows[0];
      } catch (error) {
        if (isUniqueViolation(error)) return 'name_taken' as const;
        throw error;
      }
    },

    /** Deletes the project; its builds go with it (on delete cascade). False when there was no such project. */
    async delete(id: number) {
      const rows = await retryingDeadlocks(() => db.delete(projects).where(eq(projects.id, id)).returning({ id: projects.id }));
      return rows.length > 0;
    },
  };
}

export type ProjectsRepository = ReturnType<typeof createProjectsRepository>;
