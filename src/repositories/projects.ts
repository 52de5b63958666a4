import { asc, count, eq, getTableName, sql, type Column, type SQL } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import type { BuildStatusValue } from '../schemas/build.js';

export interface ProjectListQuery {
  page: number;
  perPage: number;
  /** Case-insensitive substring of the name. */
  nameContains?: string;
}

export interface NewProject {
  name: string;
  repo: string;
  default_branch?: string;
}

/**
 * `table.column`, always qualified: in a single-table select Drizzle renders columns bare, which inside a
 * correlated subquery would bind to the subquery's own table (`builds.id` instead of `projects.id`).
 */
const qualified = (column: Column) => sql`${sql.identifier(getTableName(column.table))}.${sql.identifier(column.name)}`;

/** `like` wildcards in user input are matched literally. */
const escapeLike = (text: string) => text.replace(/[\\%_]/g, (char) => `\\${char}`);

export function createProjectsRepository({ db, tables }: Database) {
  const { projects, builds } = tables;

  // Derived on read rather than stored: it can never disagree with the builds table.
  const lastBuildStatus = sql<BuildStatusValue | null>`(select ${qualified(builds.status)} from ${builds} where ${qualified(builds.project_id)} = ${qualified(projects.id)} order by ${qualified(builds.number)} desc limit 1)`;
  const projectFields = {
    id: projects.id,
    name: projects.name,
    repo: projects.repo,
    default_branch: projects.default_branch,
    last_build_status: lastBuildStatus,
    created_at: projects.created_at,
    updated_at: projects.updated_at,
  };

  const nameFilter = (text?: string): SQL | undefined =>
    text ? sql`lower(${projects.name}) like ${`%${escapeLike(text.toLowerCase())}%`} escape '\\'` : undefined;

  return {
    async list({ page, perPage, nameContains }: ProjectListQuery) {
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
      const rows = await db.select(projectFields).from(projects).where(eq(projects.id, id));
      return rows[0];
    },

    /** Inserts the project, or returns undefined when the name is taken (the unique index decides). */
    async create(project: NewProject) {
      const rows = await db.insert(projects).values(project).onConflictDoNothing({ target: projects.name }).returning();
      const created = rows[0];
      return created && { ...created, last_build_status: null };
    },
  };
}

export type ProjectsRepository = ReturnType<typeof createProjectsRepository>;
