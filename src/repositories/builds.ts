import { and, count, desc, eq, sql } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { isForeignKeyViolation } from '../db/errors.js';
import { BUILD_STATUSES, type BuildStatusValue } from '../schemas/build.js';

export interface NewBuild {
  project_id: number;
  status: BuildStatusValue;
  branch: string;
  commit_sha: string;
  triggered_by: string | null;
  retry_of?: number | null;
  duration_s?: number | null;
  logs?: string;
  started_at?: Date | null;
  finished_at?: Date | null;
}

export interface BuildListQuery {
  projectId: number;
  page: number;
  perPage: number;
  status?: BuildStatusValue;
  branch?: string;
}

/** Concurrent triggers on PostgreSQL may pick the same number; each loser takes the next one. */
const MAX_NUMBERING_ATTEMPTS = 100;

export function createBuildsRepository({ db, tables }: Database) {
  const { builds } = tables;

  return {
    /**
     * Inserts a build numbered max+1 within its project. The unique (project_id, number) index settles
     * races: a conflicting insert writes nothing and is retried. Returns undefined if the project is gone.
     */
    async create(build: NewBuild) {
      const nextNumber = sql<number>`(select coalesce(max(${builds.number}), 0) + 1 from ${builds} where ${builds.project_id} = ${build.project_id})`;
      for (let attempt = 0; attempt < MAX_NUMBERING_ATTEMPTS; attempt++) {
        try {
          const rows = await db
            .insert(builds)
            .values({ ...build, number: nextNumber })
            .onConflictDoNothing({ target: [builds.project_id, builds.number] })
            .returning();
          if (rows[0]) return rows[0];
        } catch (error) {
          if (isForeignKeyViolation(error)) return undefined;
          throw error;
        }
      }
      throw new Error(`Could not number a build of project ${build.project_id} after ${MAX_NUMBERING_ATTEMPTS} attempts`);
    },

    async findById(id: number) {
      const rows = await db.select().from(builds).where(eq(builds.id, id));
      return rows[0];
    },

    /** Newest first. */
    async listForProject({ projectId, page, perPage, status, branch }: BuildListQuery) {
      const where = and(
        eq(builds.project_id, projectId),
        status ? eq(builds.status, status) : undefined,
        branch ? eq(builds.branch, branch) : undefined,
      );
      const [items, totals] = await Promise.all([
        db
          .select()
          .from(builds)
          .where(where)
          .orderBy(desc(builds.number))
          .limit(perPage)
          .offset((page - 1) * perPage),
        db.select({ total: count() }).from(builds).where(where),
      ]);
      return { items, total: totals[0]?.total ?? 0 };
    },

    /** How many builds are in each status, with every status present (zero included): one grouped query. */
    async countByStatus(): Promise<Record<BuildStatusValue, number>> {
      const rows = await db.select({ status: builds.status, total: count() }).from(builds).groupBy(builds.status);
      const counts = Object.fromEntries(BUILD_STATUSES.map((status) => [status, 0])) as Record<BuildStatusValue, number>;
      for (const row of rows) counts[row.status] = Number(row.total);
      return counts;
    },
  };
}

export type BuildsRepository = ReturnType<typeof createBuildsRepository>;
