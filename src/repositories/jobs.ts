import { and, asc, eq, getTableColumns, inArray, lt, sql, type SQL } from 'drizzle-orm';
import { alias } from 'drizzle-orm/pg-core';
import type { AppDb, Database } from '../db/client.js';
import { retryingDeadlocks } from '../db/deadlocks.js';
import { isDeadlock } from '../db/errors.js';
import { qualified } from '../db/qualified.js';
import { step, steps, type Query, type Step } from '../db/transaction.js';
import { criticalPathSeconds } from '../pipelines/critical-path.js';
import {
  advance,
  buildStatusOf,
  cancelBuild as cancelBuildChanges,
  cancelJob as cancelJobChanges,
  initialStatuses,
  play as playChanges,
  replanAfterRetry,
  type BuildState,
  type JobChange,
  type JobState,
  type JobStatus,
} from '../pipelines/progress.js';
import type { JobSpec, ResolvedJob } from '../pipelines/resolve.js';
import type { BuildStatusValue } from '../schemas/build.js';
import { artifactUpsert, type NewArtifact } from './artifacts.js';

type Script<R> = Generator<Step, R, unknown>;

/** Thrown inside a transaction script to roll back what it wrote: the job was no longer held by the worker. */
class NotHeld extends Error {}

/** Where a build stands after a change of its jobs: what src/pipelines/progress.ts derived, and what changed. */
export interface Settled {
  build_id: number;
  /** The build's status now. */
  status: BuildStatusValue;
  /** True when the build's status changed with this write. */
  build_changed: boolean;
  /** Some job failed with `allow_failure`: the build succeeded with a warning. */
  warning: boolean;
  /** Jobs whose status changed, by name, in pipeline order. */
  changes: JobChange[];
  /** Ids of the running jobs this write canceled: their workers, wherever they are, must stop them. */
  stopped: number[];
}

/** The outcome of an action on one job (retry, cancel, play): done, or why not. */
export type JobActionResult = { outcome: 'done'; job_id: number; settled: Settled } | { outcome: 'not_found' } | { outcome: 'conflict'; status: JobStatus };

/** How a run ended: its status, simulated seconds, last log lines, and the artifact it made (stored with the finish). */
export interface JobOutcome {
  status: 'success' | 'fail';
  duration_s: number;
  text: string;
  artifact?: NewArtifact;
}

/** A job of a build as a claim read it: `[name, needs, when, allow_failure, status, duration_s]`. */
type SnapshotJob = [string, string[], JobState['when'], boolean, JobStatus, number | null];

/** What settlement() needs of a job: its place in the graph, its status, and what it ran. */
type SettlingJob = JobState & { duration_s: number | null };

/** The build's jobs and their version as the claim's snapshot showed them: what finishAtOnce starts from. */
export interface JobsSnapshot {
  version: number;
  jobs: SettlingJob[];
}

const snapshotJob = ([name, needs, when, allow_failure, status, duration_s]: SnapshotJob): SettlingJob => ({ name, needs, when, allow_failure, status, duration_s });

/** One job to plan into a build: its place in the graph and how its run behaves (a ResolvedJob is one). */
export type JobPlan = Pick<ResolvedJob, 'name' | 'stage' | 'needs' | 'when' | 'allow_failure'> & JobSpec;

/** A line of a job's log as the build's log shows it: prefixed with the job's name. */
export const prefixLines = (name: string, text: string): string => text.replace(/^(?=.)/gm, `[${name}] `);

/**
 * A build's jobs, and every change of their status. Lock order, the same in every transaction so that two of them
 * never wait on each other: the build's row first (`SELECT … FOR UPDATE` on PostgreSQL; SQLite's BEGIN IMMEDIATE
 * serialises writers anyway), then its jobs' rows. The claim alone takes a job's row without its build's: it is one
 * statement, which skips locked rows and waits on nothing, and it writes the build only after it has committed.
 *
 * Which status follows which is src/pipelines/progress.ts's to decide, from the rows read under the build's lock: two
 * needs of one job finishing at the same instant on two replicas are serialised by that lock, so the second one sees
 * the first one's result and the job is released exactly once.
 */
export function createJobsRepository(database: Database) {
  const { db, tables, dialect } = database;
  const { jobs, builds, projects } = tables;
  const { logs: _logs, lease_owner: _owner, lease_expires_at: _expires, claims: _claims, ...jobColumns } = getTableColumns(jobs);
  const stateColumns = {
    id: jobs.id,
    name: jobs.name,
    needs: jobs.needs,
    when: jobs.when,
    allow_failure: jobs.allow_failure,
    status: jobs.status,
    duration_s: jobs.duration_s,
    started_at: jobs.started_at,
  };
  const current = (buildId: number) => and(eq(jobs.build_id, buildId), eq(jobs.retried, false));
  const releaseLease = { lease_owner: null, lease_expires_at: null };
  const now = () => sql`${database.now()}`;

  /** The build's row, locked until the transaction ends; undefined when there is no such build. */
  function* lockBuild(tx: AppDb, buildId: number): Script<{ status: BuildStatusValue; started_at: Date | null } | undefined> {
    const query = tx.select({ status: builds.status, started_at: builds.started_at }).from(builds).where(eq(builds.id, buildId));
    const rows = yield* step(dialect === 'pg' ? query.for('update') : query);
    return rows[0];
  }

  /** Appends a job's lines to its build's log, prefixed with the job's name (the build's log holds every job's). */
  function* appendToBuildLog(tx: AppDb, buildId: number, name: string, text: string): Script<void> {
    yield* step(tx.update(builds).set({ logs: sql`${builds.logs} || ${prefixLines(name, text)}` }).where(eq(builds.id, buildId)).returning({ id: builds.id }));
  }

  const currentJobsQuery = (tx: AppDb, buildId: number) => tx.select(stateColumns).from(jobs).where(current(buildId)).orderBy(asc(jobs.position));
  type JobRows = Awaited<ReturnType<typeof currentJobsQuery>>;

  /**
   * A statement of a transaction script written with placeholders (`sql.placeholder(name)`, filled from `values`) and
   * built by `make` on the connection given. SQLite: built and compiled once (`key` names it), on the one connection
   * that also runs the transactions: building each statement with Drizzle and compiling it in SQLite (which compiles
   * the triggers a write fires into it) was ~40 % of a worker process's CPU in the drain. PostgreSQL: built on the
   * transaction's connection each time (postgres.js then reuses the server's prepared statement, found by its text).
   */
  const compiled = new Map<string, { all(values: Record<string, unknown>): unknown }>();
  function cached<T>(
    tx: AppDb,
    key: string,
    make: (on: AppDb) => { prepare(name: string): { execute(values?: Record<string, unknown>): Promise<T> } },
    values: Record<string, unknown>,
  ): Query<T> {
    if (dialect === 'pg') return make(tx).prepare(key).execute(values);
    let statement = compiled.get(key);
    if (!statement) compiled.set(key, (statement = make(db).prepare(key) as unknown as SqlitePrepared));
    return sqliteStep<T>(statement, values);
  }
  type SqlitePrepared = { all(values: Record<string, unknown>): unknown };
  /** A SQLite prepared query as a step of a script: the runner calls all() (synchronous), with `values`. */
  function sqliteStep<T>(prepared: SqlitePrepared, values: Record<string, unknown>): Query<T> & { all(): unknown } {
    return {
      all: () => prepared.all(values),
      then: <A = T, B = never>(resolve?: ((rows: T) => A | PromiseLike<A>) | null, reject?: ((error: unknown) => B | PromiseLike<B>) | null) =>
        Promise.resolve()
          .then(() => prepared.all(values) as T)
          .then(resolve, reject),
    };
  }
  const idParam = sql.placeholder('id');
  const textParam = sql.placeholder('text');
  const ownerParam = sql.placeholder('owner');

  function* currentJobs(tx: AppDb, buildId: number) {
    return yield* step(currentJobsQuery(tx, buildId));
  }

  /**
   * The build's current jobs, their rows locked (PostgreSQL: `FOR UPDATE`, after the build's row, in the lock order
   * above), for the writes that may move a queued job: a cancel. A claim takes a queued job without its build's lock;
   * read without a lock, a job claimed meanwhile would still look queued, the cancel's `where status = 'queued'` would
   * then change nothing, and the job would run on under a canceled build. Locked, the read waits for the claim (one
   * short statement) and sees the job running, which the cancel then stops.
   */
  function* lockedCurrentJobs(tx: AppDb, buildId: number) {
    const query = currentJobsQuery(tx, buildId);
    return yield* step(dialect === 'pg' ? query.for('update') : query);
  }

  /**
   * The build's row, locked until the transaction ends, by the write that appends `text` to its log (an UPDATE takes
   * the row's lock as `SELECT … FOR UPDATE` does: same lock, same order, one statement fewer); no row when there is no
   * such build. Only for a script that then rolls back (NotHeld) when it must write nothing.
   */
  const lockBuildAppending = (tx: AppDb, buildId: number, line: string) =>
    cached(
      tx,
      'usine_job_lock_build_appending',
      (on) =>
        on
          .update(builds)
          .set({ logs: sql`${builds.logs} || ${textParam}` })
          .where(eq(builds.id, idParam))
          .returning({ status: builds.status, started_at: builds.started_at }),
      { id: buildId, text: line },
    );

  /** Writes planned status changes, one statement per kind of change; each only where the job still has its old status. */
  function* applyChanges(tx: AppDb, buildId: number, changes: readonly JobChange[]): Script<void> {
    yield* steps(...changeQueries(tx, buildId, changes));
  }

  function changeQueries(tx: AppDb, buildId: number, changes: readonly JobChange[]) {
    const groups = new Map<string, { from: JobStatus; to: JobStatus; names: string[] }>();
    for (const change of changes) {
      const key = `${change.from}>${change.to}`;
      const group = groups.get(key) ?? { from: change.from, to: change.to, names: [] };
      group.names.push(change.name);
      groups.set(key, group);
    }
    return [...groups.values()].map(({ from, to, names }) => {
      const ends = to === 'skipped' || to === 'canceled';
      const namePlaceholders = names.map((_, index) => sql.placeholder(`n${index}`));
      return cached(
        tx,
        `usine_job_change_${from}_${to}_${names.length}`,
        (on) =>
          on
            .update(jobs)
            .set({ status: to, ...(ends ? { finished_at: now(), ...releaseLease } : {}), ...(to === 'created' ? { finished_at: null } : {}) })
            .where(and(eq(jobs.build_id, idParam), eq(jobs.retried, false), eq(jobs.status, from), inArray(jobs.name, namePlaceholders)))
            .returning({ id: jobs.id }),
        Object.fromEntries([['id', buildId], ...names.map((name, index) => [`n${index}`, name])]),
      );
    });
  }

  /**
   * After a change of its jobs, under the build's lock: releases (or skips) the jobs whose needs are now over, then
   * writes the build's status as its jobs make it. Over: `finished_at`, `duration_s` (the longest chain of jobs, in
   * simulated seconds) and a last log line; not over: back to running (a retry, a play) or still queued. `read`: the
   * build's current jobs, when the caller read them under the lock already. The writes go together (`steps`).
   */
  function* settle(
    tx: AppDb,
    buildId: number,
    build: { status: BuildStatusValue; started_at: Date | null },
    earlier: JobChange[] = [],
    read?: JobRows,
  ): Script<Settled> {
    const rows = read ?? (yield* currentJobs(tx, buildId));
    const started = build.started_at !== null || rows.some((row) => row.started_at !== null);
    const { changes, derived, over } = settlement(rows, started);
    const writes = changeQueries(tx, buildId, changes);
    const settled: Settled = {
      build_id: buildId,
      status: derived.status,
      build_changed: derived.status !== build.status,
      warning: derived.warning,
      changes: mergeChanges(earlier, changes),
      stopped: [],
    };
    if (!settled.build_changed) {
      yield* steps(...writes);
    } else if (over) {
      yield* steps(
        ...writes,
        cached(
          tx,
          `usine_job_build_over_${derived.status}`,
          (on) =>
            on
              .update(builds)
              .set({
                status: derived.status,
                finished_at: now(),
                duration_s: sql`${sql.placeholder('duration')}`,
                logs: sql`${builds.logs} || ${textParam}`,
                ...releaseLease,
              })
              .where(eq(builds.id, idParam))
              .returning({ id: builds.id }),
          { id: buildId, duration: over.duration_s, text: over.line },
        ),
      );
    } else {
      yield* steps(
        ...writes,
        tx
          .update(builds)
          .set({ status: derived.status, finished_at: null, duration_s: null })
          .where(eq(builds.id, buildId))
          .returning({ id: builds.id }),
      );
    }
    return settled;
  }

  /**
   * `status = 'queued'` (or `'running'`) written into the SQL as a literal, not sent as a parameter, wherever a query
   * should use the partial index on that status (jobs_queued_idx, jobs_running_lease_idx). Statements are prepared
   * (postgres.js names and reuses them), and after five runs PostgreSQL may keep a generic plan, made without the
   * parameter's value: it cannot tell that `status = $1` implies the index's `status = 'queued'`, and the claim then
   * walked the primary key from the oldest job, filtering out every finished one (0.6 ms with 7,000 finished jobs
   * before the first queued one, growing with the table; the drain's claims spent most of PostgreSQL's CPU there).
   */
  const statusIs = (status: 'queued' | 'running') => sql`${jobs.status} = ${sql.raw(`'${status}'`)}`;
  const claimStatements = new Map<number, ReturnType<typeof prepareClaim>>();
  function prepareClaim(leaseMs: number) {
    return claimUpdate(leaseMs)
      .returning({ ...jobColumns, claims: jobs.claims })
      .prepare(`usine_job_claim_${leaseMs}`);
  }
  function claimUpdate(leaseMs: number) {
    const owner = sql.placeholder('owner');
    const oldestQueued = db.select({ id: jobs.id }).from(jobs).where(statusIs('queued')).orderBy(asc(jobs.id)).limit(1);
    const candidate = dialect === 'pg' ? oldestQueued.for('update', { skipLocked: true }) : oldestQueued;
    return db
      .update(jobs)
      .set({
        status: 'running',
        started_at: now(),
        finished_at: null,
        worker: sql`${owner}`,
        lease_owner: sql`${owner}`,
        lease_expires_at: sql`${database.nowPlus(leaseMs)}`,
        claims: sql`${jobs.claims} + 1`,
        logs: sql`${jobs.logs} || '[usine] Job ' || ${jobs.name} || ' (attempt ' || ${jobs.attempt} || ') picked up by ' || ${owner} || ', claim ' || (${jobs.claims} + 1) || ${'\n'}`,
      })
      // `id = (scalar subquery)`, not `id IN (…)`: PostgreSQL may re-run an IN subquery per row and claim several.
      .where(and(eq(jobs.id, sql`(${candidate})`), eq(jobs.status, 'queued')));
  }
  /**
   * The claimed job's build starts (if it had not), and its log gets the claim line as the job's did. What the run needs
   * of its build and project comes back with that write: no query of its own. Prepared once: building it with Drizzle
   * on every claim was a large part of a worker's CPU at BUILD_TIME_SCALE=0.
   */
  let startBuild: ReturnType<typeof prepareStartBuild> | undefined;
  const projectName = sql`(select ${qualified(projects.name)} from ${projects} where ${qualified(projects.id)} = ${qualified(builds.project_id)})`;
  // A build's first claim starts it: its log says which build of which project, branch and commit it is.
  const startLine = sql`case when ${builds.status} = 'queued' then '[usine] Build #' || ${builds.number} || ' of ' || ${projectName} || ' (' || ${builds.branch} || ' @ ' || substr(${builds.commit_sha}, 1, 7) || ${') started\n'} else '' end`;
  const startedBuildColumns = {
    number: builds.number,
    branch: builds.branch,
    commit_sha: builds.commit_sha,
    triggered_by: builds.triggered_by,
    retry_of: builds.retry_of,
    created_at: builds.created_at,
    started_at: builds.started_at,
    project_id: builds.project_id,
    project_name: sql<string>`(select ${qualified(projects.name)} from ${projects} where ${qualified(projects.id)} = ${qualified(builds.project_id)})`.as('project_name'),
    project_repo: sql<string>`(select ${qualified(projects.repo)} from ${projects} where ${qualified(projects.id)} = ${qualified(builds.project_id)})`.as('project_repo'),
  };
  function prepareStartBuild() {
    return db
      .update(builds)
      .set({
        status: 'running',
        // The build starts when its first job does: the same instant, not this statement's.
        started_at: sql`coalesce(${builds.started_at}, (select ${qualified(jobs.started_at)} from ${jobs} where ${qualified(jobs.id)} = ${sql.placeholder('job')}))`,
        logs: sql`${builds.logs} || ${startLine} || ${sql.placeholder('line')}`,
      })
      .where(and(eq(builds.id, sql.placeholder('build')), inArray(builds.status, ['queued', 'running'])))
      .returning(startedBuildColumns)
      .prepare('usine_job_start_build');
  }

  /**
   * PostgreSQL: the claim and its build's start in ONE statement (one round trip instead of two), when the build's
   * row can be locked at once: the build's part locks it with `FOR UPDATE SKIP LOCKED`, so the statement still waits
   * on nothing (no lock-order cycle with the transactions that lock a build and then its jobs); when another
   * transaction holds the build (a sibling job finishing, a cancel), it is skipped, its columns come back null, and
   * claimNext starts the build with the separate statement, after the claim committed, as before. The claim line is
   * written as prefixLines writes it: one line (job names and owners have no control characters), `[name] ` before
   * it. The build's `started_at` is the job's (the claim's RETURNING: the other statement's subquery would read the
   * job as it was before this statement).
   */
  const claimAndStartStatements = new Map<number, ReturnType<typeof prepareClaimAndStart>>();
  function prepareClaimAndStart(leaseMs: number) {
    const owner = sql.placeholder('owner');
    const claimed = db.$with('claimed').as(claimUpdate(leaseMs).returning({ ...jobColumns, claims: jobs.claims }));
    // The claimed job's values as scalar subqueries of the (one-row) CTE, not a join with it: the build's row is then
    // found by `id = (uncorrelated subquery)`, an index lookup whatever the planner thinks of the table. (Joined,
    // with statistics still from an almost empty table, PostgreSQL hashed a sequential scan of builds on every claim.)
    const ofClaimed = (column: SQL.Aliased | typeof claimed.name | typeof claimed.build_id | typeof claimed.attempt | typeof claimed.claims | typeof claimed.started_at) =>
      sql`(select ${column} from ${claimed})`;
    const lockable = alias(builds, 'lockable');
    const lockedBuild = db
      .select({ id: lockable.id })
      .from(lockable)
      .where(and(eq(lockable.id, ofClaimed(claimed.build_id)), inArray(lockable.status, ['queued', 'running'])))
      .for('update', { skipLocked: true });
    const name = ofClaimed(claimed.name);
    const claimLine: SQL = sql`'[' || ${name} || '] [usine] Job ' || ${name} || ' (attempt ' || ${ofClaimed(claimed.attempt)} || ') picked up by ' || ${owner} || ', claim ' || ${ofClaimed(claimed.claims)} || ${'\n'}`;
    const started = db.$with('started').as(
      db
        .update(builds)
        .set({
          status: 'running',
          started_at: sql`coalesce(${builds.started_at}, ${ofClaimed(claimed.started_at)})`,
          logs: sql`${builds.logs} || ${startLine} || ${claimLine}`,
        })
        .where(eq(builds.id, sql`(${lockedBuild})`))
        .returning(startedBuildColumns),
    );
    return db
      .with(claimed, started)
      .select({
        job: {
          id: claimed.id,
          build_id: claimed.build_id,
          position: claimed.position,
          name: claimed.name,
          stage: claimed.stage,
          needs: claimed.needs,
          when: claimed.when,
          allow_failure: claimed.allow_failure,
          spec: claimed.spec,
          status: claimed.status,
          attempt: claimed.attempt,
          retry_of: claimed.retry_of,
          retried: claimed.retried,
          worker: claimed.worker,
          duration_s: claimed.duration_s,
          created_at: claimed.created_at,
          started_at: claimed.started_at,
          finished_at: claimed.finished_at,
          claims: claimed.claims,
        },
        build: {
          number: started.number,
          branch: started.branch,
          commit_sha: started.commit_sha,
          triggered_by: started.triggered_by,
          retry_of: started.retry_of,
          created_at: started.created_at,
          started_at: started.started_at,
          project_id: started.project_id,
          project_name: started.project_name,
          project_repo: started.project_repo,
        },
        // What the one-statement finish starts from (finishAtOnce): the build's jobs and their version, as this
        // statement's snapshot shows them (the claimed job still queued: the finish puts in its own status).
        version: sql<number | null>`(select ${qualified(builds.jobs_version)} from ${builds} where ${qualified(builds.id)} = ${ofClaimed(claimed.build_id)})`,
        states: sql<SnapshotJob[] | null>`(select json_agg(json_build_array(${qualified(jobs.name)}, ${qualified(jobs.needs)}, ${qualified(jobs.when)}, ${qualified(jobs.allow_failure)}, ${qualified(jobs.status)}, ${qualified(jobs.duration_s)}) order by ${qualified(jobs.position)}) from ${jobs} where ${qualified(jobs.build_id)} = ${ofClaimed(claimed.build_id)} and not ${qualified(jobs.retried)})`,
      })
      .from(claimed)
      .leftJoin(started, sql`true`)
      .prepare(`usine_job_claim_start_${leaseMs}`);
  }
  const heldBy = (id: number, owner: string) => and(eq(jobs.id, id), eq(jobs.lease_owner, owner), eq(jobs.status, 'running'));

  return {
    /**
     * Writes a build's jobs from its resolved pipeline, in pipeline order, each in its first status (jobs without
     * needs are queued at once): one INSERT, as a step of a larger transaction (the build's creation).
     */
    *planSteps(tx: AppDb, buildId: number, resolved: readonly JobPlan[]): Generator<Query<unknown>, number, unknown> {
      const first = new Map(initialStatuses(resolved).map((change) => [change.name, change.to]));
      const rows = yield* step(
        tx
          .insert(jobs)
          .values(
            resolved.map((job, position) => ({
              build_id: buildId,
              position,
              name: job.name,
              stage: job.stage,
              needs: job.needs,
              when: job.when,
              allow_failure: job.allow_failure,
              spec: { job: job.job, script: job.script, duration_s: job.duration_s, fail_rate: job.fail_rate, artifacts: job.artifacts, parallel: job.parallel },
              status: first.get(job.name) ?? ('created' as const),
            })),
          )
          .returning({ id: jobs.id }),
      );
      return rows.length;
    },

    /** planSteps in a transaction of its own. */
    plan(buildId: number, resolved: readonly JobPlan[]): Promise<number> {
      return database.transaction((tx) => this.planSteps(tx, buildId, resolved));
    },

    /** The build's jobs as they were planned (current attempts, pipeline order): what a retry of the build runs again. */
    async plansOf(buildId: number): Promise<JobPlan[]> {
      const rows = await db
        .select({ name: jobs.name, stage: jobs.stage, needs: jobs.needs, when: jobs.when, allow_failure: jobs.allow_failure, spec: jobs.spec })
        .from(jobs)
        .where(current(buildId))
        .orderBy(asc(jobs.position));
      return rows.map(({ spec, ...job }) => ({ ...job, ...spec }));
    },

    /** Every attempt of every job of the build, in pipeline order (older attempts first), without their logs. */
    async listForBuild(buildId: number) {
      return db.select(jobColumns).from(jobs).where(eq(jobs.build_id, buildId)).orderBy(asc(jobs.position), asc(jobs.attempt));
    },

    async findById(id: number) {
      const rows = await db.select().from(jobs).where(eq(jobs.id, id));
      return rows[0];
    },

    /**
     * Takes the oldest queued job for `owner`, in one statement (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent
     * workers each get a different job, parallel jobs of one build included), then marks its build running and logs
     * the claim in the build's log too (a separate statement: a crash in between leaves a queued build with a running
     * job, which the next change of that build's jobs puts right).
     */
    async claimNext(owner: string, leaseMs: number) {
      let statement = claimStatements.get(leaseMs);
      if (!statement) claimStatements.set(leaseMs, (statement = prepareClaim(leaseMs)));
      const start = (startBuild ??= prepareStartBuild());
      const startValues = (job: { id: number; build_id: number; name: string; attempt: number; claims: number }) => ({
        build: job.build_id,
        job: job.id,
        line: prefixLines(job.name, `[usine] Job ${job.name} (attempt ${job.attempt}) picked up by ${owner}, claim ${job.claims}\n`),
      });
      if (dialect === 'sqlite') {
        // On SQLite both statements run in one transaction: one commit (a write to the WAL) instead of two, and no
        // crash in between. Nothing else runs meanwhile anyway (one connection, synchronous).
        const claim = statement;
        return database.transaction(function* () {
          const [job] = yield* step(sqliteStep<Awaited<ReturnType<typeof claim.execute>>>(claim as unknown as SqlitePrepared, { owner }));
          if (!job) return undefined;
          const [build] = yield* step(sqliteStep<Awaited<ReturnType<typeof start.execute>>>(start as unknown as SqlitePrepared, startValues(job)));
          return build ? { job, build } : undefined;
        });
      }
      let claimAndStart = claimAndStartStatements.get(leaseMs);
      if (!claimAndStart) claimAndStartStatements.set(leaseMs, (claimAndStart = prepareClaimAndStart(leaseMs)));
      // One statement: one that PostgreSQL failed to break a deadlock wrote nothing, and runs again.
      const claimStart = claimAndStart;
      const claimed = (await retryingDeadlocks(() => claimStart.execute({ owner })))[0];
      if (!claimed) return undefined;
      const snapshot: JobsSnapshot | undefined =
        claimed.version === null || claimed.states === null ? undefined : { version: claimed.version, jobs: claimed.states.map(snapshotJob) };
      const job = { ...claimed.job, snapshot };
      if (claimed.build !== null && claimed.build.number !== null) return { job, build: claimed.build };
      const [build] = await start.execute(startValues(job));
      // No build to run it for (canceled in between, whose transaction cancels this job too): nothing to play.
      return build ? { job, build } : undefined;
    },

    /** Extends `owner`'s lease; false when the job is no longer running under it (canceled, taken over). */
    async renewLease(id: number, owner: string, leaseMs: number): Promise<boolean> {
      const rows = await db
        .update(jobs)
        .set({ lease_expires_at: sql`${database.nowPlus(leaseMs)}` })
        .where(heldBy(id, owner))
        .returning({ id: jobs.id });
      return rows.length > 0;
    },

    /**
     * Appends whole lines to a job's log and, prefixed with its name, to its build's: both or neither, and only while
     * `owner` holds the job. False when it does not (nothing written).
     */
    async appendLog(job: { id: number; build_id: number; name: string }, owner: string, text: string): Promise<boolean> {
      return appendJobLog(job, owner, text);
    },

    /** The build's log as written so far (what a job's artifact holds as `build.log`, with the job's last lines). */
    async buildLog(buildId: number): Promise<string> {
      const rows = await db.select({ logs: builds.logs }).from(builds).where(eq(builds.id, buildId));
      return rows[0]?.logs ?? '';
    },

    /**
     * running → success | fail, with the last log lines, if `owner` still holds the job; then, in the same
     * transaction, the jobs it unblocks are released (or skipped) and the build's status follows. Undefined when the
     * job was no longer held (canceled, taken over): nothing written. The job's artifact, if it made one, is stored in
     * the same write. On PostgreSQL a job claimed with its build's snapshot is finished in one statement when nothing
     * changed since (finishAtOnce), else in a transaction.
     */
    async finish(
      job: { id: number; build_id: number; name: string; snapshot?: JobsSnapshot },
      owner: string,
      outcome: JobOutcome,
    ): Promise<Settled | undefined> {
      if (job.snapshot) {
        // A deadlock failed the statement, which wrote nothing: the locking transaction (retried on deadlocks) takes over.
        const settled = await finishAtOnce({ ...job, snapshot: job.snapshot }, owner, outcome).catch((error: unknown) => {
          if (isDeadlock(error)) return undefined;
          throw error;
        });
        if (settled) return settled;
      }
      return finishLocking(job, owner, outcome);
    },

    /**
     * Cancels a build and its jobs: queued and running jobs are canceled (a running one's `duration_s` is what it ran,
     * as for builds), waiting ones skipped; the build is canceled whatever its jobs' statuses make of it. Undefined
     * when the build is missing or already over.
     */
    cancelBuild(buildId: number, text: string, timeScale: number): Promise<Settled | undefined> {
      return database.transaction(function* (tx) {
        const build = yield* lockBuild(tx, buildId);
        if (!build || (build.status !== 'queued' && build.status !== 'running')) return undefined;
        const rows = yield* lockedCurrentJobs(tx, buildId);
        const changes = cancelBuildChanges(rows);
        const stopped = yield* cancelRunning(tx, buildId, changes, timeScale);
        yield* applyChanges(tx, buildId, changes.filter((change) => change.from !== 'running'));
        const after = new Map(changes.map((change) => [change.name, change.to]));
        // The jobs it stopped count with what they ran.
        const ran = new Map(stopped.map((job) => [job.name, job.duration_s]));
        const duration = criticalPathSeconds(
          rows.map((row) => ({ ...row, status: after.get(row.name) ?? row.status, duration_s: ran.has(row.name) ? (ran.get(row.name) ?? null) : row.duration_s })).filter((job) => job.status !== 'skipped'),
        );
        yield* step(
          tx
            .update(builds)
            .set({ status: 'canceled', logs: sql`${builds.logs} || ${text}`, finished_at: now(), duration_s: build.status === 'running' ? duration : null, ...releaseLease })
            .where(eq(builds.id, buildId))
            .returning({ id: builds.id }),
        );
        return { build_id: buildId, status: 'canceled' as const, build_changed: true, warning: false, changes, stopped: stopped.map((job) => job.id) };
      });
    },

    /** Cancels one job (created, queued, running or manual); its dependents follow (`always` ones still run). */
    cancelJob(jobId: number, text: string, timeScale: number): Promise<JobActionResult> {
      return jobAction(jobId, function* (tx, job, rows, build) {
        const changes = cancelJobChanges(rows, job.name);
        if (!changes) return { outcome: 'conflict', status: job.status };
        const stopped = yield* cancelRunning(tx, job.build_id, changes, timeScale, text);
        // Who canceled it goes to its log (cancelRunning wrote it already if it was running) and to the build's.
        if (!stopped.some((row) => row.id === job.id)) {
          yield* step(tx.update(jobs).set({ logs: sql`${jobs.logs} || ${text}` }).where(eq(jobs.id, job.id)).returning({ id: jobs.id }));
        }
        yield* appendToBuildLog(tx, job.build_id, job.name, text);
        yield* applyChanges(tx, job.build_id, changes.filter((change) => change.from !== 'running'));
        const settled = yield* settle(tx, job.build_id, build, changes);
        return { outcome: 'done', job_id: job.id, settled: { ...settled, stopped: stopped.map((row) => row.id) } };
      });
    },

    /** Plays a manual job: it is queued, and the build runs again if it was over. */
    playJob(jobId: number): Promise<JobActionResult> {
      return jobAction(jobId, function* (tx, job, rows, build) {
        const changes = playChanges(rows, job.name);
        if (!changes) return { outcome: 'conflict', status: job.status };
        yield* applyChanges(tx, job.build_id, changes);
        return { outcome: 'done', job_id: job.id, settled: yield* settle(tx, job.build_id, build, changes) };
      });
    },

    /**
     * Runs a finished job again as a new attempt (a new row, `retry_of` the old one, which steps aside); the jobs
     * skipped because of it wait for it again, and the build runs again.
     */
    retryJob(jobId: number): Promise<JobActionResult> {
      return jobAction(jobId, function* (tx, job, rows, build) {
        const changes = replanAfterRetry(rows, job.name);
        if (!changes) return { outcome: 'conflict', status: job.status };
        const old = (yield* step(tx.select().from(jobs).where(eq(jobs.id, job.id))))[0];
        if (!old) return { outcome: 'not_found' };
        yield* step(tx.update(jobs).set({ retried: true }).where(eq(jobs.id, job.id)).returning({ id: jobs.id }));
        const created = yield* step(
          tx
            .insert(jobs)
            .values({
              build_id: old.build_id,
              position: old.position,
              name: old.name,
              stage: old.stage,
              needs: old.needs,
              when: old.when,
              allow_failure: old.allow_failure,
              spec: old.spec,
              status: 'queued',
              attempt: old.attempt + 1,
              retry_of: old.id,
            })
            .returning({ id: jobs.id }),
        );
        yield* applyChanges(tx, job.build_id, changes.filter((change) => change.name !== job.name));
        const newId = created[0]?.id ?? job.id;
        return { outcome: 'done', job_id: newId, settled: yield* settle(tx, job.build_id, build, changes) };
      });
    },

    /**
     * Hands a running job back to the queue (shutdown): its claim does not count. False when `owner` no longer held it.
     */
    release(job: { id: number; build_id: number; name: string }, owner: string, text: string): Promise<boolean> {
      return database.transaction(function* (tx) {
        yield* lockBuild(tx, job.build_id);
        const rows = yield* step(
          tx
            .update(jobs)
            .set({ status: 'queued', logs: sql`${jobs.logs} || ${text}`, claims: sql`${jobs.claims} - 1`, ...releaseLease })
            .where(heldBy(job.id, owner))
            .returning({ id: jobs.id }),
        );
        if (rows.length === 0) return false;
        yield* appendToBuildLog(tx, job.build_id, job.name, text);
        return true;
      });
    },

    /**
     * Running jobs whose lease expired (their process died or hung): those claimed `maxAttempts` times fail (and
     * their build moves on), the others go back to the queue for any worker to take over. Each gets a log line.
     */
    async recoverExpired(maxAttempts: number, limit = 100): Promise<{ requeued: number[]; failed: Settled[] }> {
      const expired = await db
        .select({ id: jobs.id, build_id: jobs.build_id, name: jobs.name, owner: jobs.lease_owner, claims: jobs.claims })
        .from(jobs)
        .where(and(statusIs('running'), lt(jobs.lease_expires_at, sql`${database.now()}`)))
        .orderBy(asc(jobs.lease_expires_at))
        .limit(limit);
      const requeued: number[] = [];
      const failed: Settled[] = [];
      for (const { id, build_id, name, owner, claims } of expired) {
        const result = await database.transaction(function* (tx) {
          const build = yield* lockBuild(tx, build_id);
          if (!build) return undefined;
          // Still running under the lease read above, and still expired: nobody renewed, finished or took it over.
          const stillExpired = and(
            eq(jobs.id, id),
            eq(jobs.status, 'running'),
            owner === null ? sql`${jobs.lease_owner} is null` : eq(jobs.lease_owner, owner),
            lt(jobs.lease_expires_at, sql`${database.now()}`),
          );
          const worker = `[usine] Worker ${owner ?? 'unknown'} stopped renewing its lease`;
          if (claims >= maxAttempts) {
            const text = `${worker}, and this job has been claimed ${claims} times: giving up, the job fails.\n`;
            const gaveUp = yield* step(
              tx.update(jobs).set({ status: 'fail', finished_at: now(), logs: sql`${jobs.logs} || ${text}`, ...releaseLease }).where(stillExpired).returning({ id: jobs.id }),
            );
            if (gaveUp.length === 0) return undefined;
            yield* appendToBuildLog(tx, build_id, name, text);
            return { failed: yield* settle(tx, build_id, build, [{ name, from: 'running', to: 'fail' }]) };
          }
          const text = `${worker}: the job is queued again for another worker to take over.\n`;
          const back = yield* step(
            tx.update(jobs).set({ status: 'queued', logs: sql`${jobs.logs} || ${text}`, ...releaseLease }).where(stillExpired).returning({ id: jobs.id }),
          );
          if (back.length === 0) return undefined;
          yield* appendToBuildLog(tx, build_id, name, text);
          return { requeued: id };
        });
        if (result?.failed) failed.push(result.failed);
        if (result?.requeued !== undefined) requeued.push(result.requeued);
      }
      return { requeued, failed };
    },

    /**
     * Plans `plans` (the default pipeline) into queued or running builds that have no jobs: builds triggered before
     * builds ran as jobs, left in the database by an earlier version. Each is planned under its row's lock, only if it
     * still has no jobs (replicas starting together plan it once), goes back to `queued` (an earlier version's run of
     * it is over: its process is gone) and says so in its log. Returns their ids.
     */
    async adoptJobless(plans: readonly JobPlan[]): Promise<number[]> {
      const adopted: number[] = [];
      const planSteps = this.planSteps.bind(this);
      for (;;) {
        const batch = await db
          .select({ id: builds.id })
          .from(builds)
          .where(and(inArray(builds.status, ['queued', 'running']), sql`not exists (select 1 from ${jobs} where ${qualified(jobs.build_id)} = ${qualified(builds.id)})`))
          .orderBy(asc(builds.id))
          .limit(100);
        if (batch.length === 0) return adopted;
        for (const { id } of batch) {
          const planned = await database.transaction(function* (tx) {
            const build = yield* lockBuild(tx, id);
            if (!build || (build.status !== 'queued' && build.status !== 'running')) return false;
            const existing = yield* step(tx.select({ id: jobs.id }).from(jobs).where(eq(jobs.build_id, id)).limit(1));
            if (existing.length > 0) return false;
            yield* planSteps(tx, id, plans);
            const line = "[usine] This build was queued before builds ran as jobs: it runs the default pipeline's jobs.\n";
            yield* step(tx.update(builds).set({ status: 'queued', started_at: null, logs: sql`${builds.logs} || ${line}`, ...releaseLease }).where(eq(builds.id, id)).returning({ id: builds.id }));
            return true;
          });
          // Planned here or by another replica meanwhile: either way it has jobs now, and the next batch moves on.
          if (planned) adopted.push(id);
        }
      }
    },

    /**
     * Jobs in each status, current attempts only: every status present, zero included. Read from job_status_count,
     * which triggers keep (migration 0012; not in the Drizzle schema, as build_status_count is not): the sum over its
     * slots, a few rows whatever the number of jobs, never a count over jobs.
     */
    async countByStatus(): Promise<Record<JobStatus, number>> {
      const statuses = ['created', 'queued', 'running', 'success', 'fail', 'canceled', 'skipped', 'manual'] as const satisfies readonly JobStatus[];
      const total = (status: JobStatus) => sql<number>`cast(coalesce(sum(${sql.identifier(status)}), 0) as integer)`.mapWith(Number);
      const rows = await db.select(Object.fromEntries(statuses.map((status) => [status, total(status)]))).from(sql`job_status_count`);
      return Object.fromEntries(statuses.map((status) => [status, rows[0]?.[status] ?? 0])) as Record<JobStatus, number>;
    },
  };

  /**
   * appendLog's write. PostgreSQL: one statement, which locks the build's row before the job's (the `FOR UPDATE`
   * subquery of the job's WHERE, as in finishAtOnce: the lock order of every transaction here), appends to the job's
   * log if `owner` holds it, and then to the build's. SQLite: a transaction. False when the job is not held: nothing
   * written.
   */
  async function appendJobLog(job: { id: number; build_id: number; name: string }, owner: string, text: string): Promise<boolean> {
    const buildText = prefixLines(job.name, text);
    if (dialect === 'pg') {
      // A deadlock's victim wrote nothing: run again, as the claim does (seen once under the bench's drain).
      const result = await retryingDeadlocks(() => db.execute(sql`
        with held as (
          update "jobs" set "logs" = "logs" || ${text}
          where "id" = ${job.id} and "lease_owner" = ${owner} and "status" = 'running'
            and exists (select 1 from "builds" where "id" = ${job.build_id} for update)
          returning "id"
        ), build as (
          update "builds" set "logs" = "logs" || ${buildText}
          where "id" = ${job.build_id} and exists (select 1 from held)
          returning "id"
        )
        select count(*)::int as "written" from build`));
      return ((result as unknown as { written: number }[])[0]?.written ?? 0) > 0;
    }
    try {
      return await database.transaction(function* (tx) {
        const [locked, held] = yield* steps(
          lockBuildAppending(tx, job.build_id, buildText),
          cached(
            tx,
            'usine_job_append_log',
            (on) =>
              on
                .update(jobs)
                .set({ logs: sql`${jobs.logs} || ${textParam}` })
                .where(and(eq(jobs.id, idParam), eq(jobs.lease_owner, ownerParam), eq(jobs.status, 'running')))
                .returning({ id: jobs.id }),
            { id: job.id, owner, text },
          ),
        );
        // A job no longer held rolls the build's write back.
        if (locked.length === 0 || held.length === 0) throw new NotHeld();
        return true;
      });
    } catch (error) {
      if (error instanceof NotHeld) return false;
      throw error;
    }
  }

  /**
   * The finish of a job in one statement (PostgreSQL, one round trip instead of the transaction's four), when what the
   * worker read at its claim (`snapshot`) still holds: the statement locks the build's row and checks its
   * `jobs_version` (a trigger counts every change of its jobs that a finish depends on: migration 0013) before it
   * finishes the job, if `owner` still holds it; then it releases what settlement() says, from the snapshot, and
   * writes the build. Undefined when it wrote nothing (another change came in between, or the job is no longer held):
   * the locking transaction then does it all again from what it reads.
   *
   * The version is read by `SELECT … FOR UPDATE` inside the job's update: under READ COMMITTED that waits for a
   * transaction holding the build and then reads its row as that one left it, so a change committed after this
   * statement's snapshot is seen there. Lock order as everywhere: the build's row (in the job's WHERE, evaluated
   * before the job's row is locked), then jobs. Only a build whose status does not change, or that is over, is done
   * here; the rare rest (a finish that queues a build again) goes to the transaction.
   */
  async function finishAtOnce(job: { id: number; build_id: number; name: string; snapshot: JobsSnapshot }, owner: string, outcome: JobOutcome): Promise<Settled | undefined> {
    if (dialect !== 'pg') return undefined;
    const rows = job.snapshot.jobs.map((row) => (row.name === job.name ? { ...row, status: outcome.status, duration_s: outcome.duration_s } : row));
    // The build started with this job's claim at the latest; until it is over it stays `running`, so the only change
    // of its status a finish can make here is its end.
    const { changes, derived, over } = settlement(rows, true);
    const buildText = prefixLines(job.name, outcome.text) + (over?.line ?? '');
    const buildWrite = over
      ? sql`"status" = ${derived.status}, "finished_at" = clock_timestamp(), "duration_s" = ${over.duration_s}, "lease_owner" = null, "lease_expires_at" = null,`
      : sql``;
    const ends = sql`c.to_status in ('skipped', 'canceled')`;
    // As artifactUpsert (src/repositories/artifacts.ts) writes it: the build's file of that name replaced, if any.
    const { artifact } = outcome;
    const storeArtifact = artifact
      ? sql`, stored as (
        insert into "artifacts" ("build_id", "job_id", "name", "content_type", "content", "size_bytes", "sha256")
        select ${job.build_id}::integer, ${job.id}::integer, ${artifact.name}::text, ${artifact.content_type}::text, ${artifact.content}::bytea,
          ${artifact.size_bytes}::integer, ${artifact.sha256}::text
        where exists (select 1 from finished)
        on conflict ("build_id", "name") do update set "job_id" = excluded."job_id", "content_type" = excluded."content_type",
          "content" = excluded."content", "size_bytes" = excluded."size_bytes", "sha256" = excluded."sha256"
      )`
      : sql``;
    const result = await db.execute(sql`
      with finished as (
        update "jobs" set "status" = ${outcome.status}, "duration_s" = ${outcome.duration_s}, "logs" = "logs" || ${outcome.text},
          "finished_at" = clock_timestamp(), "lease_owner" = null, "lease_expires_at" = null
        where "id" = ${job.id} and "lease_owner" = ${owner} and "status" = 'running'
          and (select "jobs_version" from "builds" where "id" = ${job.build_id} for update) = ${job.snapshot.version}
        returning "id"
      ), released as (
        update "jobs" set "status" = c.to_status,
          "finished_at" = case when ${ends} then clock_timestamp() else "jobs"."finished_at" end,
          "lease_owner" = case when ${ends} then null else "jobs"."lease_owner" end,
          "lease_expires_at" = case when ${ends} then null else "jobs"."lease_expires_at" end
        from json_to_recordset(${JSON.stringify(changes.map((change) => ({ name: change.name, from_status: change.from, to_status: change.to })))}::json)
          as c(name text, from_status text, to_status text)
        where "jobs"."build_id" = ${job.build_id} and not "jobs"."retried" and "jobs"."name" = c.name and "jobs"."status" = c.from_status
          and exists (select 1 from finished)
      ), build as (
        update "builds" set ${buildWrite} "logs" = "logs" || ${buildText}
        where "id" = ${job.build_id} and exists (select 1 from finished)
      )${storeArtifact}
      select count(*)::int as "finished" from finished`);
    if (((result as unknown as { finished: number }[])[0]?.finished ?? 0) === 0) return undefined;
    return {
      build_id: job.build_id,
      status: derived.status,
      build_changed: over !== undefined,
      warning: derived.warning,
      changes: mergeChanges([{ name: job.name, from: 'running', to: outcome.status }], changes),
      stopped: [],
    };
  }

  /** A job's finish in a transaction that locks its build and reads its jobs (see `finish`). */
  function finishLocking(job: { id: number; build_id: number; name: string }, owner: string, outcome: JobOutcome): Promise<Settled | undefined> {
    const finishJob = (on: AppDb) =>
      on
        .update(jobs)
        .set({
          status: outcome.status,
          duration_s: sql`${sql.placeholder('duration')}`,
          logs: sql`${jobs.logs} || ${textParam}`,
          finished_at: now(),
          ...releaseLease,
        })
        .where(and(eq(jobs.id, idParam), eq(jobs.lease_owner, ownerParam), eq(jobs.status, 'running')))
        .returning({ id: jobs.id });
    const values = { id: job.id, owner, duration: outcome.duration_s, text: outcome.text };
    const finishing = database.transaction(function* (tx) {
      // The statements go together (src/db/transaction.ts's `steps`): on PostgreSQL BEGIN, two statements, the
      // writes settle makes, COMMIT: four round trips where one statement at a time took eight. The order is the
      // same as one at a time: the build's row is locked first (by its log's write), then the job is finished if
      // still held, and the build's current jobs are read (each statement of a connection runs after the one
      // before it, and reads what committed before it started: under the lock). A job no longer held rolls the
      // log's write back: nothing written, as before.
      let locked: { status: BuildStatusValue; started_at: Date | null }[];
      let rows: JobRows;
      if (dialect === 'pg') {
        // One statement finishes the job and reads the build's jobs (a data-modifying WITH; its SELECT sees the
        // jobs as they were when the statement started, so this job's new status and duration are put in here).
        const finished = tx.$with('finished').as(finishJob(tx));
        const read = tx
          .with(finished)
          .select({ ...stateColumns, finished: sql<number>`(select count(*) from ${finished})`.mapWith(Number) })
          .from(jobs)
          .where(current(job.build_id))
          .orderBy(asc(jobs.position));
        // (The job's write has placeholders: the statement runs with their values.)
        const [lockedRows, readRows] = yield* steps(
          lockBuildAppending(tx, job.build_id, prefixLines(job.name, outcome.text)),
          read.prepare('usine_job_finish_read').execute(values),
        );
        if (!readRows.some((row) => row.finished > 0)) throw new NotHeld();
        locked = lockedRows;
        rows = readRows.map(({ finished: _finished, ...row }) => (row.id === job.id ? { ...row, status: outcome.status, duration_s: outcome.duration_s } : row));
      } else {
        const [lockedRows, finished, readRows] = yield* steps(
          lockBuildAppending(tx, job.build_id, prefixLines(job.name, outcome.text)),
          cached(tx, `usine_job_finish_${outcome.status}`, finishJob, values),
          cached(tx, 'usine_job_current', (on) => on.select(stateColumns).from(jobs).where(and(eq(jobs.build_id, idParam), eq(jobs.retried, false))).orderBy(asc(jobs.position)), {
            id: job.build_id,
          }),
        );
        if (finished.length === 0) throw new NotHeld();
        locked = lockedRows;
        rows = readRows;
      }
      const build = locked[0];
      if (!build) throw new NotHeld();
      if (outcome.artifact) {
        yield* step(
          cached(tx, 'usine_job_artifact', (on) => artifactUpsert(on, tables).returning({ id: tables.artifacts.id }), {
            build_id: job.build_id,
            job_id: job.id,
            ...outcome.artifact,
          }),
        );
      }
      return yield* settle(tx, job.build_id, build, [{ name: job.name, from: 'running', to: outcome.status }], rows);
    });
    return finishing.catch((error: unknown) => {
      if (error instanceof NotHeld) return undefined;
      throw error;
    });
  }

  /**
   * Running jobs being canceled: the lease released, `duration_s` what they ran in simulated seconds (the database's
   * time since `started_at` over the time scale; 0 at scale 0), a log line. Their workers see the status and stop.
   */
  /** Cancels the running jobs among `changes`, each with what it ran (simulated seconds) as its duration. */
  function* cancelRunning(
    tx: AppDb,
    buildId: number,
    changes: readonly JobChange[],
    timeScale: number,
    text = '',
  ): Script<{ id: number; name: string; duration_s: number | null }[]> {
    const names = changes.filter((change) => change.from === 'running').map((change) => change.name);
    if (names.length === 0) return [];
    const ran =
      timeScale <= 0
        ? sql`0`
        : dialect === 'pg'
          ? sql`round(cast(extract(epoch from (${database.now()} - ${jobs.started_at})) / ${timeScale} as numeric), 2)`
          : sql`round((${database.now()} - ${jobs.started_at}) / 1000.0 / ${timeScale}, 2)`;
    const rows = yield* step(
      tx
        .update(jobs)
        .set({ status: 'canceled', duration_s: ran, finished_at: now(), logs: sql`${jobs.logs} || ${text}`, ...releaseLease })
        .where(and(current(buildId), eq(jobs.status, 'running'), inArray(jobs.name, names)))
        .returning({ id: jobs.id, name: jobs.name, duration_s: jobs.duration_s }),
    );
    return rows;
  }

  /** Reads a job and its build under the build's lock, then lets `act` decide; not_found when either is gone. */
  function jobAction(
    jobId: number,
    act: (
      tx: AppDb,
      job: { id: number; build_id: number; name: string; status: JobStatus },
      rows: JobState[],
      build: { status: BuildStatusValue; started_at: Date | null },
    ) => Script<JobActionResult>,
  ): Promise<JobActionResult> {
    return database.transaction(function* (tx): Script<JobActionResult> {
      const found = (yield* step(tx.select({ build_id: jobs.build_id }).from(jobs).where(eq(jobs.id, jobId))))[0];
      if (!found) return { outcome: 'not_found' };
      const build = yield* lockBuild(tx, found.build_id);
      if (!build) return { outcome: 'not_found' };
      // The build's jobs locked first (a claim may be taking one), then the job read again: the status the decision
      // is made on is the one the writes will find.
      const rows = yield* lockedCurrentJobs(tx, found.build_id);
      const job = (yield* step(tx.select({ id: jobs.id, build_id: jobs.build_id, name: jobs.name, status: jobs.status, retried: jobs.retried }).from(jobs).where(eq(jobs.id, jobId))))[0];
      if (!job) return { outcome: 'not_found' };
      // An older attempt is history: only the current one can be acted on.
      if (job.retried) return { outcome: 'conflict', status: job.status };
      return yield* act(tx, job, rows, build);
    });
  }
}

/**
 * What a change of a build's jobs leads to, from its current jobs (`rows`, the change applied) and whether a job of it
 * was ever claimed (`started`): the jobs released or skipped, the build's status, and when it is over, its `duration_s` (the longest chain of jobs, in simulated seconds)
 * and its last log line. Pure: the locking transaction and the one-statement finish both write what it says.
 */
function settlement(rows: readonly SettlingJob[], started: boolean): { changes: JobChange[]; derived: BuildState; over?: { duration_s: number; line: string } } {
  const changes = advance(rows);
  const after = new Map(changes.map((change) => [change.name, change.to]));
  const states = rows.map((row) => ({ ...row, status: after.get(row.name) ?? row.status }));
  const derived = buildStatusOf(states, started);
  if (!derived.over) return { changes, derived };
  const duration_s = criticalPathSeconds(states.filter((job) => job.status !== 'skipped'));
  const failedAllowed = states.filter((job) => job.status === 'fail' && job.allow_failure).map((job) => job.name);
  const warning = failedAllowed.length > 0 ? ` (with warnings: ${failedAllowed.join(', ')} failed, allowed to fail)` : '';
  return { changes, derived, over: { duration_s, line: `Build finished: ${derived.status} in ${duration_s} s${warning}\n` } };
}

/** Earlier changes of a write followed by those advance() made, one entry per job (its first and last status). */
function mergeChanges(earlier: readonly JobChange[], later: readonly JobChange[]): JobChange[] {
  const merged = new Map(earlier.map((change) => [change.name, { ...change }]));
  for (const change of later) {
    const before = merged.get(change.name);
    if (before) before.to = change.to;
    else merged.set(change.name, { ...change });
  }
  return [...merged.values()];
}

export type JobsRepository = ReturnType<typeof createJobsRepository>;
export type JobRow = NonNullable<Awaited<ReturnType<JobsRepository['findById']>>>;
/** A job as claimed by a worker, with what its run needs of its build and project (null if they are gone). */
type Claimed = NonNullable<Awaited<ReturnType<JobsRepository['claimNext']>>>;
export type ClaimedJob = Claimed['job'];
/** What a claimed job's run needs of its build and project. */
export type ClaimedBuild = Claimed['build'];
