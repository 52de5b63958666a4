import { and, count, desc, eq, lt, sql } from 'drizzle-orm';
import type { AppDb, Database } from '../db/client.js';
import { isForeignKeyViolation, isNotNullViolation } from '../db/errors.js';
import { qualified } from '../db/qualified.js';
import { step, type Query } from '../db/transaction.js';
import { BUILD_STATUSES, type BuildStatusValue } from '../schemas/build.js';

export interface NewBuild {
  project_id: number;
  branch: string;
  commit_sha: string;
  triggered_by: string | null;
  retry_of?: number | null;
}

export interface CreateOptions {
  /** Queued builds the project may hold; the insert is refused at this many. */
  queueLimit: number;
  /**
   * An Idempotency-Key and the user who sent it: a key is remembered per (project, user), so that another user's
   * same key neither answers this build nor stops theirs.
   */
  idempotency?: { key: string; userId: number };
  /** How long an idempotency key is remembered. */
  idempotencyTtlS: number;
}

export type CreateResult<Build> =
  | { outcome: 'created'; build: Build }
  | { outcome: 'replayed'; build: Build }
  | { outcome: 'project_missing' }
  | { outcome: 'queue_full'; queued: number };

export interface BuildListQuery {
  projectId: number;
  page: number;
  perPage: number;
  status?: BuildStatusValue;
  branch?: string;
  /** Keyset pagination: only builds numbered below this (the last number of the previous page); wins over `page`. */
  before?: number;
}

export interface BuildPage<Build> {
  items: Build[];
  /** The page these items are on (computed from the cursor when one was given). */
  page: number;
  total: number;
  /** The `before` of the next page, or null on the last one. */
  nextBefore: number | null;
}

/** Concurrent triggers on PostgreSQL may pick the same number; each loser takes the next one. */
const MAX_NUMBERING_ATTEMPTS = 100;

const TERMINAL: BuildStatusValue[] = ['success', 'fail', 'canceled'];
export const isTerminal = (status: BuildStatusValue) => TERMINAL.includes(status);

export function createBuildsRepository(database: Database) {
  const { db, tables } = database;
  const { builds, jobs, projects } = tables;

  /** The caller's key on the project (served by builds_idempotency_caller_uq). */
  const sameKey = (projectId: number, { key, userId }: { key: string; userId: number }) =>
    and(eq(builds.project_id, projectId), eq(builds.idempotency_user_id, userId), eq(builds.idempotency_key, key));
  const findByIdempotencyKey = async (projectId: number, idempotency: { key: string; userId: number }) => {
    const rows = await db.select().from(builds).where(sameKey(projectId, idempotency));
    return rows[0];
  };

  /** 1 when the project exists, else null: asked in the statement that reads its builds (no round trip of its own). */
  const projectFound = (projectId: unknown) =>
    sql<number | null>`(select 1 from ${projects} where ${qualified(projects.id)} = ${projectId})`;
  /** The FROM of a statement made of scalar subqueries only. */
  const noTable = sql`(select 1) as one`;

  // What a client is sent of a build (the engine's bookkeeping stays in the database): fewer columns to read and map.
  const apiColumns = {
    id: builds.id,
    project_id: builds.project_id,
    number: builds.number,
    status: builds.status,
    branch: builds.branch,
    commit_sha: builds.commit_sha,
    triggered_by: builds.triggered_by,
    retry_of: builds.retry_of,
    duration_s: builds.duration_s,
    logs: builds.logs,
    created_at: builds.created_at,
    started_at: builds.started_at,
    finished_at: builds.finished_at,
  };

  // Hot reads, built and prepared once (Drizzle's query building otherwise costs more than the query on SQLite).
  const byId = db.select().from(builds).where(eq(builds.id, sql.placeholder('id'))).prepare('usine_build_by_id');
  /**
   * Whether the project exists, and its newest build number, in one statement (one round trip): builds are numbered
   * 1..n per project without gaps (never deleted one by one), so n is the project's build count.
   */
  const projectHead = db
    .select({
      found: projectFound(sql.placeholder('projectId')),
      newest: sql<number | null>`(select max(${qualified(builds.number)}) from ${builds} where ${qualified(builds.project_id)} = ${sql.placeholder('projectId')})`,
    })
    .from(noTable)
    .prepare('usine_build_project_head');
  /** A page below a number, newest first: a range scan of the unique (project_id, number) index, however deep. */
  const pageBelow = db
    .select(apiColumns)
    .from(builds)
    .where(and(eq(builds.project_id, sql.placeholder('projectId')), lt(builds.number, sql.placeholder('before'))))
    .orderBy(desc(builds.number))
    .limit(sql.placeholder('limit'))
    .prepare('usine_builds_page_below');

  // Not in the Drizzle schema (as project_count is not): one row per slot on PostgreSQL, one row on SQLite.
  const statusTotal = (status: BuildStatusValue) => sql<number>`cast(coalesce(sum(${sql.identifier(status)}), 0) as integer)`.mapWith(Number);
  const statusCounts = db
    .select({
      queued: statusTotal('queued'),
      running: statusTotal('running'),
      success: statusTotal('success'),
      fail: statusTotal('fail'),
      canceled: statusTotal('canceled'),
    })
    .from(sql`build_status_count`)
    .prepare('usine_build_status_counts');

  const countIn = (table: typeof builds | typeof jobs, status: 'queued' | 'running') =>
    sql<number>`(select count(*) from ${table} where ${qualified(table.status)} = ${sql.raw(`'${status}'`)})`.mapWith(Number);
  const activeCounts = db
    .select({
      builds_queued: countIn(builds, 'queued'),
      builds_running: countIn(builds, 'running'),
      jobs_queued: countIn(jobs, 'queued'),
      jobs_running: countIn(jobs, 'running'),
    })
    .from(noTable)
    .prepare('usine_active_counts');

  const countQueued = async (projectId: number) => {
    const rows = await db
      .select({ total: count() })
      .from(builds)
      .where(and(eq(builds.project_id, projectId), eq(builds.status, 'queued')));
    return Number(rows[0]?.total ?? 0);
  };

  return {
    /**
     * Inserts a queued build numbered max+1 within its project, in one statement that also enforces the queue cap:
     * the row's project id is a subquery that yields the project only while fewer than `queueLimit` of its builds
     * are queued, so a full queue (or a missing project) makes the insert fail its NOT NULL check. The unique
     * (project_id, number) index settles concurrent triggers: a conflicting insert writes nothing and is retried
     * with a fresh view, which also re-counts the queue. The partial unique (project_id, idempotency_user_id,
     * idempotency_key) index makes a replayed key return the build its sender's first request created.
     */
    async create(
      build: NewBuild,
      options: CreateOptions,
      /** Steps that write the build's jobs, run in the same transaction as the insert. */
      planJobs: (tx: AppDb, buildId: number) => Generator<Query<unknown>, unknown, unknown>,
    ): Promise<CreateResult<typeof builds.$inferSelect>> {
      const { idempotency } = options;
      if (idempotency) {
        // A key older than its time to live is forgotten, so that it can name a new build.
        await db
          .update(builds)
          .set({ idempotency_key: null, idempotency_user_id: null })
          .where(and(sameKey(build.project_id, idempotency), lt(builds.created_at, database.nowPlus(-options.idempotencyTtlS * 1000))));
        const first = await findByIdempotencyKey(build.project_id, idempotency);
        if (first) return { outcome: 'replayed', build: first };
      }
      const projectWithRoom = sql<number>`(select ${qualified(projects.id)} from ${projects} where ${qualified(projects.id)} = ${build.project_id} and (select count(*) from ${builds} where ${qualified(builds.project_id)} = ${build.project_id} and ${qualified(builds.status)} = 'queued') < ${options.queueLimit})`;
      const nextNumber = sql<number>`(select coalesce(max(${qualified(builds.number)}), 0) + 1 from ${builds} where ${qualified(builds.project_id)} = ${build.project_id})`;
      const insert = (tx: AppDb) =>
        tx
          .insert(builds)
          .values({
            ...build,
            project_id: projectWithRoom,
            number: nextNumber,
            status: 'queued',
            idempotency_key: idempotency?.key ?? null,
            idempotency_user_id: idempotency?.userId ?? null,
          })
          .onConflictDoNothing()
          .returning();
      for (let attempt = 0; attempt < MAX_NUMBERING_ATTEMPTS; attempt++) {
        try {
          // The build and its jobs are one transaction: a build never exists without them.
          const rows = await database.transaction(function* (tx) {
            const inserted = yield* step(insert(tx));
            if (inserted[0]) yield* planJobs(tx, inserted[0].id);
            return inserted;
          });
          if (rows[0]) return { outcome: 'created', build: rows[0] };
          if (idempotency) {
            const first = await findByIdempotencyKey(build.project_id, idempotency);
            if (first) return { outcome: 'replayed', build: first };
          }
        } catch (error) {
          if (isForeignKeyViolation(error)) return { outcome: 'project_missing' };
          if (!isNotNullViolation(error)) throw error;
          const exists = await db.select({ id: projects.id }).from(projects).where(eq(projects.id, build.project_id));
          if (exists.length === 0) return { outcome: 'project_missing' };
          return { outcome: 'queue_full', queued: await countQueued(build.project_id) };
        }
      }
      throw new Error(`Could not number a build of project ${build.project_id} after ${MAX_NUMBERING_ATTEMPTS} attempts`);
    },

    async findById(id: number) {
      const rows = await byId.execute({ id });
      return rows[0];
    },

    /**
     * Newest first, by page or by keyset (`before`), with the exact total. Never an OFFSET over the whole list nor a
     * count of the whole table: unfiltered, the total is max(number) (numbers are gap-free) and page p is the range of
     * numbers below n-(p-1)*per_page; filtered, the (project_id, status|branch, number) indexes serve the count and the
     * keyset page (only `?page=` on a filtered list skips index entries).
     */
    async listForProject({ projectId, page, perPage, status, branch, before }: BuildListQuery): Promise<BuildPage<Awaited<ReturnType<typeof pageBelow.execute>>[number]> | undefined> {
      if (status === undefined && branch === undefined) {
        const head = (await projectHead.execute({ projectId }))[0];
        if (!head || head.found === null) return undefined;
        const total = Number(head.newest ?? 0);
        const below = before ?? total - (page - 1) * perPage + 1;
        const items = below > 1 ? await pageBelow.execute({ projectId, before: below, limit: perPage }) : [];
        // Builds shown before this page: numbers from `below` up to the newest.
        const shownBefore = Math.max(0, total - below + 1);
        const last = items.at(-1);
        return {
          items,
          page: before === undefined ? page : Math.floor(shownBefore / perPage) + 1,
          total,
          nextBefore: last && last.number > 1 ? last.number : null,
        };
      }
      const where = and(
        eq(builds.project_id, projectId),
        status ? eq(builds.status, status) : undefined,
        branch ? eq(builds.branch, branch) : undefined,
      );
      const pageQuery = db.select(apiColumns).from(builds).orderBy(desc(builds.number)).limit(perPage);
      const [items, counts] = await Promise.all([
        before === undefined ? pageQuery.where(where).offset((page - 1) * perPage) : pageQuery.where(and(where, lt(builds.number, before))),
        db
          .select({
            found: projectFound(projectId),
            total: count(),
            // With a cursor: how many matching builds come before it, to say which page this is.
            shownBefore: before === undefined ? sql<number>`0` : sql<number>`coalesce(sum(case when ${builds.number} >= ${before} then 1 else 0 end), 0)`.mapWith(Number),
          })
          .from(builds)
          .where(where),
      ]);
      if (counts[0]?.found === null || counts[0]?.found === undefined) return undefined;
      const total = Number(counts[0].total);
      const shownBefore = before === undefined ? (page - 1) * perPage : Number(counts[0]?.shownBefore ?? 0);
      const last = items.at(-1);
      return {
        items,
        page: before === undefined ? page : Math.floor(shownBefore / perPage) + 1,
        total,
        nextBefore: last && shownBefore + items.length < total ? last.number : null,
      };
    },

    /**
     * How many builds are in each status, with every status present (zero included), read from build_status_count
     * (kept by triggers, migration 0008): a few rows whatever the number of builds, never a count over builds.
     */
    async countByStatus(): Promise<Record<BuildStatusValue, number>> {
      const row = (await statusCounts.execute())[0];
      return Object.fromEntries(BUILD_STATUSES.map((status) => [status, row?.[status] ?? 0])) as Record<BuildStatusValue, number>;
    },

    /**
     * Builds and jobs waiting and running, across projects: four counts in one statement (GET /status), each served by
     * a partial index on status (the statuses are written in the query: a bound parameter would not match the
     * indexes' `WHERE status = 'queued'`, and SQLite would count the whole table).
     */
    async countActive(): Promise<{ queue: { queued: number; running: number }; jobs: { queued: number; running: number } }> {
      const row = (await activeCounts.execute())[0];
      return {
        queue: { queued: row?.builds_queued ?? 0, running: row?.builds_running ?? 0 },
        jobs: { queued: row?.jobs_queued ?? 0, running: row?.jobs_running ?? 0 },
      };
    },
  };
}

export type BuildsRepository = ReturnType<typeof createBuildsRepository>;
export type BuildRow = NonNullable<Awaited<ReturnType<BuildsRepository['findById']>>>;
