import { and, asc, eq, getTableColumns, inArray, lt, sql, type AnyColumn } from 'drizzle-orm';
import type { AppDb, Database } from '../db/client.js';
import { qualified } from '../db/qualified.js';
import { step, type Query } from '../db/transaction.js';
import { criticalPathSeconds } from '../pipelines/critical-path.js';
import {
  advance,
  buildStatusOf,
  cancelBuild as cancelBuildChanges,
  cancelJob as cancelJobChanges,
  initialStatuses,
  play as playChanges,
  replanAfterRetry,
  type JobChange,
  type JobState,
  type JobStatus,
} from '../pipelines/progress.js';
import type { JobSpec, ResolvedJob } from '../pipelines/resolve.js';
import type { BuildStatusValue } from '../schemas/build.js';

type Script<R> = Generator<Query<unknown>, R, unknown>;

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

  function* currentJobs(tx: AppDb, buildId: number) {
    return yield* step(tx.select(stateColumns).from(jobs).where(current(buildId)).orderBy(asc(jobs.position)));
  }

  /** Writes planned status changes, one statement per kind of change; each only where the job still has its old status. */
  function* applyChanges(tx: AppDb, buildId: number, changes: readonly JobChange[]): Script<void> {
    const groups = new Map<string, { from: JobStatus; to: JobStatus; names: string[] }>();
    for (const change of changes) {
      const key = `${change.from}>${change.to}`;
      const group = groups.get(key) ?? { from: change.from, to: change.to, names: [] };
      group.names.push(change.name);
      groups.set(key, group);
    }
    for (const { from, to, names } of groups.values()) {
      const ends = to === 'skipped' || to === 'canceled';
      yield* step(
        tx
          .update(jobs)
          .set({ status: to, ...(ends ? { finished_at: now(), ...releaseLease } : {}), ...(to === 'created' ? { finished_at: null } : {}) })
          .where(and(current(buildId), eq(jobs.status, from), inArray(jobs.name, names)))
          .returning({ id: jobs.id }),
      );
    }
  }

  /**
   * After a change of its jobs, under the build's lock: releases (or skips) the jobs whose needs are now over, then
   * writes the build's status as its jobs make it. Over: `finished_at`, `duration_s` (the longest chain of jobs, in
   * simulated seconds) and a last log line; not over: back to running (a retry, a play) or still queued.
   */
  function* settle(tx: AppDb, buildId: number, build: { status: BuildStatusValue; started_at: Date | null }, earlier: JobChange[] = []): Script<Settled> {
    const rows = yield* currentJobs(tx, buildId);
    const changes = advance(rows);
    yield* applyChanges(tx, buildId, changes);
    const after = new Map(changes.map((change) => [change.name, change.to]));
    const states: (JobState & { duration_s: number | null })[] = rows.map((row) => ({ ...row, status: after.get(row.name) ?? row.status }));
    const started = build.started_at !== null || rows.some((row) => row.started_at !== null);
    const derived = buildStatusOf(states, started);
    const allChanges = mergeChanges(earlier, changes);
    if (derived.status === build.status) {
      return { build_id: buildId, status: build.status, build_changed: false, warning: derived.warning, changes: allChanges, stopped: [] };
    }
    if (derived.over) {
      const duration = criticalPathSeconds(states.filter((job) => job.status !== 'skipped'));
      const failedAllowed = states.filter((job) => job.status === 'fail' && job.allow_failure).map((job) => job.name);
      const warning = failedAllowed.length > 0 ? ` (with warnings: ${failedAllowed.join(', ')} failed, allowed to fail)` : '';
      yield* step(
        tx
          .update(builds)
          .set({
            status: derived.status,
            finished_at: now(),
            duration_s: duration,
            logs: sql`${builds.logs} || ${`Build finished: ${derived.status} in ${duration} s${warning}\n`}`,
            ...releaseLease,
          })
          .where(eq(builds.id, buildId))
          .returning({ id: builds.id }),
      );
    } else {
      yield* step(
        tx
          .update(builds)
          .set({ status: derived.status, finished_at: null, duration_s: null })
          .where(eq(builds.id, buildId))
          .returning({ id: builds.id }),
      );
    }
    return {
      build_id: buildId,
      status: derived.status,
      build_changed: derived.status !== build.status,
      warning: derived.warning,
      changes: allChanges,
      stopped: [],
    };
  }

  const buildColumn = <T>(column: AnyColumn<{ data: T }>) =>
    sql<T | null>`(select ${qualified(column)} from ${builds} where ${qualified(builds.id)} = ${qualified(jobs.build_id)})`;
  const projectColumn = (column: typeof projects.name | typeof projects.repo) =>
    sql<string | null>`(select ${qualified(column)} from ${projects} join ${builds} on ${qualified(builds.project_id)} = ${qualified(projects.id)} where ${qualified(builds.id)} = ${qualified(jobs.build_id)})`;
  const claimStatements = new Map<number, ReturnType<typeof prepareClaim>>();
  function prepareClaim(leaseMs: number) {
    const owner = sql.placeholder('owner');
    const oldestQueued = db.select({ id: jobs.id }).from(jobs).where(eq(jobs.status, 'queued')).orderBy(asc(jobs.id)).limit(1);
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
      .where(and(eq(jobs.id, sql`(${candidate})`), eq(jobs.status, 'queued')))
      // What the run needs of its build and project comes back with the claim: it saves two queries per job.
      .returning({
        ...jobColumns,
        claims: jobs.claims,
        build_number: buildColumn(builds.number),
        build_branch: buildColumn(builds.branch),
        build_commit_sha: buildColumn(builds.commit_sha),
        project_id: buildColumn(builds.project_id),
        project_name: projectColumn(projects.name),
        project_repo: projectColumn(projects.repo),
      })
      .prepare(`usine_job_claim_${leaseMs}`);
  }
  const heldBy = (id: number, owner: string) => and(eq(jobs.id, id), eq(jobs.lease_owner, owner), eq(jobs.status, 'running'));

  return {
    /**
     * Writes a build's jobs from its resolved pipeline, in pipeline order, each in its first status (jobs without
     * needs are queued at once): one INSERT, as a step of a larger transaction (the build's creation).
     */
    *planSteps(tx: AppDb, buildId: number, resolved: readonly JobPlan[]): Script<number> {
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
     * workers each get a different job, parallel jobs of one build included), then marks its build running if it was
     * still queued (a separate statement: a crash in between leaves a queued build with a running job, which the next
     * change of that build's jobs puts right).
     */
    async claimNext(owner: string, leaseMs: number) {
      let statement = claimStatements.get(leaseMs);
      if (!statement) claimStatements.set(leaseMs, (statement = prepareClaim(leaseMs)));
      const job = (await statement.execute({ owner }))[0];
      if (!job) return undefined;
      const started = await db
        .update(builds)
        .set({ status: 'running', started_at: sql`coalesce(${builds.started_at}, ${database.now()})` })
        .where(and(eq(builds.id, job.build_id), eq(builds.status, 'queued')))
        .returning({ id: builds.id });
      return { job, build_started: started.length > 0 };
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
    appendLog(job: { id: number; build_id: number; name: string }, owner: string, text: string): Promise<boolean> {
      return database.transaction(function* (tx) {
          yield* lockBuild(tx, job.build_id);
          const held = yield* step(tx.update(jobs).set({ logs: sql`${jobs.logs} || ${text}` }).where(heldBy(job.id, owner)).returning({ id: jobs.id }));
          if (held.length === 0) return false;
          yield* step(tx.update(builds).set({ logs: sql`${builds.logs} || ${prefixLines(job.name, text)}` }).where(eq(builds.id, job.build_id)).returning({ id: builds.id }));
          return true;
        });
    },

    /**
     * running → success | fail, with the last log lines, if `owner` still holds the job; then, in the same
     * transaction, the jobs it unblocks are released (or skipped) and the build's status follows. Undefined when the
     * job was no longer held (canceled, taken over): nothing written.
     */
    finish(
      job: { id: number; build_id: number; name: string },
      owner: string,
      outcome: { status: 'success' | 'fail'; duration_s: number; text: string },
    ): Promise<Settled | undefined> {
      return database.transaction(function* (tx) {
        const build = yield* lockBuild(tx, job.build_id);
        if (!build) return undefined;
        const finished = yield* step(
          tx
            .update(jobs)
            .set({ status: outcome.status, duration_s: outcome.duration_s, logs: sql`${jobs.logs} || ${outcome.text}`, finished_at: now(), ...releaseLease })
            .where(heldBy(job.id, owner))
            .returning({ id: jobs.id }),
        );
        if (finished.length === 0) return undefined;
        yield* step(tx.update(builds).set({ logs: sql`${builds.logs} || ${prefixLines(job.name, outcome.text)}` }).where(eq(builds.id, job.build_id)).returning({ id: builds.id }));
        return yield* settle(tx, job.build_id, build, [{ name: job.name, from: 'running', to: outcome.status }]);
      });
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
        const rows = yield* currentJobs(tx, buildId);
        const changes = cancelBuildChanges(rows);
        const stopped = yield* cancelRunning(tx, buildId, changes, timeScale);
        yield* applyChanges(tx, buildId, changes.filter((change) => change.from !== 'running'));
        const after = new Map(changes.map((change) => [change.name, change.to]));
        const duration = criticalPathSeconds(rows.map((row) => ({ ...row, status: after.get(row.name) ?? row.status })).filter((job) => job.status !== 'skipped'));
        yield* step(
          tx
            .update(builds)
            .set({ status: 'canceled', logs: sql`${builds.logs} || ${text}`, finished_at: now(), duration_s: build.status === 'running' ? duration : null, ...releaseLease })
            .where(eq(builds.id, buildId))
            .returning({ id: builds.id }),
        );
        return { build_id: buildId, status: 'canceled' as const, build_changed: true, warning: false, changes, stopped };
      });
    },

    /** Cancels one job (created, queued, running or manual); its dependents follow (`always` ones still run). */
    cancelJob(jobId: number, text: string, timeScale: number): Promise<JobActionResult> {
      return jobAction(jobId, function* (tx, job, rows, build) {
        const changes = cancelJobChanges(rows, job.name);
        if (!changes) return { outcome: 'conflict', status: job.status };
        const stopped = yield* cancelRunning(tx, job.build_id, changes, timeScale, text);
        yield* applyChanges(tx, job.build_id, changes.filter((change) => change.from !== 'running'));
        const settled = yield* settle(tx, job.build_id, build, changes);
        return { outcome: 'done', job_id: job.id, settled: { ...settled, stopped } };
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
    release(job: { id: number; build_id: number }, owner: string, text: string): Promise<boolean> {
      return database.transaction(function* (tx) {
        yield* lockBuild(tx, job.build_id);
        const rows = yield* step(
          tx
            .update(jobs)
            .set({ status: 'queued', logs: sql`${jobs.logs} || ${text}`, claims: sql`${jobs.claims} - 1`, ...releaseLease })
            .where(heldBy(job.id, owner))
            .returning({ id: jobs.id }),
        );
        return rows.length > 0;
      });
    },

    /**
     * Running jobs whose lease expired (their process died or hung): those claimed `maxAttempts` times fail (and
     * their build moves on), the others go back to the queue for any worker to take over. Each gets a log line.
     */
    async recoverExpired(maxAttempts: number, limit = 100): Promise<{ requeued: number[]; failed: Settled[] }> {
      const expired = await db
        .select({ id: jobs.id, build_id: jobs.build_id })
        .from(jobs)
        .where(and(eq(jobs.status, 'running'), lt(jobs.lease_expires_at, sql`${database.now()}`)))
        .orderBy(asc(jobs.lease_expires_at))
        .limit(limit);
      const requeued: number[] = [];
      const failed: Settled[] = [];
      for (const { id, build_id } of expired) {
        const result = await database.transaction(function* (tx) {
          const build = yield* lockBuild(tx, build_id);
          if (!build) return undefined;
          const stillExpired = and(eq(jobs.id, id), eq(jobs.status, 'running'), lt(jobs.lease_expires_at, sql`${database.now()}`));
          const owner = sql`coalesce(${jobs.lease_owner}, 'unknown')`;
          const gaveUp = yield* step(
            tx
              .update(jobs)
              .set({
                status: 'fail',
                finished_at: now(),
                logs: sql`${jobs.logs} || '[usine] Worker ' || ${owner} || ' stopped renewing its lease, and this job has been claimed ' || ${jobs.claims} || ' times: giving up, the job fails.' || ${'\n'}`,
                ...releaseLease,
              })
              .where(and(stillExpired, sql`${jobs.claims} >= ${maxAttempts}`))
              .returning({ name: jobs.name }),
          );
          const name = gaveUp[0]?.name;
          if (name !== undefined) return { failed: yield* settle(tx, build_id, build, [{ name, from: 'running', to: 'fail' }]) };
          const back = yield* step(
            tx
              .update(jobs)
              .set({
                status: 'queued',
                logs: sql`${jobs.logs} || '[usine] Worker ' || ${owner} || ' stopped renewing its lease: the job is queued again for another worker to take over.' || ${'\n'}`,
                ...releaseLease,
              })
              .where(stillExpired)
              .returning({ id: jobs.id }),
          );
          return back.length > 0 ? { requeued: id } : undefined;
        });
        if (result?.failed) failed.push(result.failed);
        if (result?.requeued !== undefined) requeued.push(result.requeued);
      }
      return { requeued, failed };
    },

    /** Jobs waiting and running, across builds: two counts the partial indexes on status answer. */
    async countActive(): Promise<{ queued: number; running: number }> {
      const [queued, running] = await Promise.all(
        (['queued', 'running'] as const).map((status) => db.select({ total: sql<number>`count(*)`.mapWith(Number) }).from(jobs).where(eq(jobs.status, status))),
      );
      return { queued: queued?.[0]?.total ?? 0, running: running?.[0]?.total ?? 0 };
    },

    /** Jobs in each status, current attempts only: every status present, zero included. */
    async countByStatus(): Promise<Record<JobStatus, number>> {
      const rows = await db
        .select({ status: jobs.status, total: sql<number>`count(*)`.mapWith(Number) })
        .from(jobs)
        .where(eq(jobs.retried, false))
        .groupBy(jobs.status);
      const counts = Object.fromEntries(['created', 'queued', 'running', 'success', 'fail', 'canceled', 'skipped', 'manual'].map((status) => [status, 0])) as Record<JobStatus, number>;
      for (const row of rows) counts[row.status] = row.total;
      return counts;
    },
  };

  /**
   * Running jobs being canceled: the lease released, `duration_s` what they ran in simulated seconds (the database's
   * time since `started_at` over the time scale; 0 at scale 0), a log line. Their workers see the status and stop.
   */
  function* cancelRunning(tx: AppDb, buildId: number, changes: readonly JobChange[], timeScale: number, text = ''): Script<number[]> {
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
        .returning({ id: jobs.id }),
    );
    return rows.map((row) => row.id);
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
      // Read again under the lock: the status the decision is made on is the one the writes will find.
      const job = (yield* step(tx.select({ id: jobs.id, build_id: jobs.build_id, name: jobs.name, status: jobs.status, retried: jobs.retried }).from(jobs).where(eq(jobs.id, jobId))))[0];
      if (!job) return { outcome: 'not_found' };
      // An older attempt is history: only the current one can be acted on.
      if (job.retried) return { outcome: 'conflict', status: job.status };
      const rows = yield* currentJobs(tx, found.build_id);
      return yield* act(tx, job, rows, build);
    });
  }
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
export type ClaimedJob = NonNullable<Awaited<ReturnType<JobsRepository['claimNext']>>>['job'];
