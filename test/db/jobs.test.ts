import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Database } from '../../src/db/client.js';
import { runMigrations } from '../../src/db/migrate.js';
import type { PipelineDefinition } from '../../src/pipelines/definition.js';
import { resolvePipeline } from '../../src/pipelines/resolve.js';
import { createBuildsRepository } from '../../src/repositories/builds.js';
import { createJobsRepository, prefixLines, type JobsRepository } from '../../src/repositories/jobs.js';
import { createScratchDatabase, testDb, uniqueName, type ScratchDatabase } from '../helper.js';

/**
 * The jobs repository against a real database of each kind: the transactions that move a build's jobs, and the races
 * they settle (two needs finishing at once release their dependent exactly once).
 */
const LEASE_MS = 60_000;
const SHA = '9b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c';

const EXAMPLE: PipelineDefinition = {
  stages: ['build', 'test', 'deploy'],
  jobs: {
    compile: { stage: 'build', script: ['npm ci', 'npm run build'], duration_s: [2, 4] },
    unit: { stage: 'test', needs: ['compile'], fail_rate: 0.2, artifacts: true },
    lint: { stage: 'test', needs: ['compile'], allow_failure: true },
    e2e: { stage: 'test', needs: ['compile'], parallel: 3 },
    release: { stage: 'deploy', when: 'manual' },
  },
};

describe(`jobs repository (${testDb})`, () => {
  let scratch: ScratchDatabase;
  let database: Database;
  let jobs: JobsRepository;
  let projectId: number;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    const config = testDb === 'pg' ? ({ dialect: 'pg', url: scratch.url } as const) : ({ dialect: 'sqlite', path: ':memory:' } as const);
    database = createDatabase(config, { poolMax: 10 });
    await runMigrations(database, config);
    jobs = createJobsRepository(database);
    const [project] = await database.db.insert(database.tables.projects).values({ name: uniqueName('Jobs'), repo: 'https://example.com/jobs.git' }).returning();
    projectId = project!.id;
  });
  afterAll(async () => {
    await database?.close();
    await scratch?.drop();
  });

  /** A queued build of the project whose jobs are `definition`'s. */
  async function buildOf(definition: PipelineDefinition) {
    const created = await createBuildsRepository(database).create(
      { project_id: projectId, branch: 'main', commit_sha: SHA, triggered_by: 'admin' },
      { queueLimit: 1000, idempotencyTtlS: 60 },
      (tx, buildId) => jobs.planSteps(tx, buildId, resolvePipeline(definition, { defaultFailRate: 0 })),
    );
    if (created.outcome !== 'created') throw new Error(created.outcome);
    return created.build.id;
  }

  const statuses = async (buildId: number) =>
    Object.fromEntries((await jobs.listForBuild(buildId)).filter((job) => !job.retried).map((job) => [job.name, job.status]));
  const buildRow = async (buildId: number) => (await createBuildsRepository(database).findById(buildId))!;

  /**
   * Starts `writes` while another connection holds the rows of `jobIds` locked, then lets them all go at once, so that
   * the writes' transactions overlap for sure on PostgreSQL (each waits on its job's row until then). SQLite runs one
   * writer at a time whatever happens: there the writes just run together.
   */
  async function atTheSameInstant<T>(jobIds: number[], writes: () => Promise<T>[]): Promise<T[]> {
    if (testDb === 'sqlite') return Promise.all(writes());
    const blocker = postgres(scratch.url, { max: 1, onnotice: () => {} });
    try {
      let started: Promise<T[]> | undefined;
      await blocker.begin(async (sql) => {
        await sql`select id from jobs where id in ${sql(jobIds)} for update`;
        started = Promise.all(writes());
        // Long enough for every write to have reached the lock it waits on.
        await sleep(200);
      });
      return await started!;
    } finally {
      await blocker.end();
    }
  }

  /** Claims the oldest queued job for `owner`. */
  async function claim(owner: string) {
    const claimed = await jobs.claimNext(owner, LEASE_MS);
    expect(claimed, `${owner} found a queued job`).toBeDefined();
    return claimed!.job;
  }

  it('plans the jobs in pipeline order, those without needs queued at once, the build queued until a job starts', async () => {
    const buildId = await buildOf(EXAMPLE);
    const listed = await jobs.listForBuild(buildId);
    expect(listed.map((job) => [job.name, job.stage, job.status])).toEqual([
      ['compile', 'build', 'queued'],
      ['unit', 'test', 'created'],
      ['lint', 'test', 'created'],
      ['e2e 1/3', 'test', 'created'],
      ['e2e 2/3', 'test', 'created'],
      ['e2e 3/3', 'test', 'created'],
      ['release', 'deploy', 'created'],
    ]);
    expect(listed[3]).toMatchObject({ needs: ['compile'], attempt: 1, retry_of: null, when: 'on_success', allow_failure: false });
    expect(listed[3]!.spec.parallel).toEqual({ index: 1, total: 3 });
    expect(listed[6]).toMatchObject({ when: 'manual', allow_failure: true });
    expect((await buildRow(buildId)).status).toBe('queued');
    // Drain what this test left, so that the next ones claim their own jobs.
    await jobs.cancelBuild(buildId, 'done with it\n', 0);
  });

  it('runs a whole pipeline: the build starts with its first job, releases dependents as needs finish, and ends on its jobs', async () => {
    const buildId = await buildOf(EXAMPLE);
    const compile = await claim('w1');
    expect(compile).toMatchObject({ name: 'compile', status: 'running', worker: 'w1', build_id: buildId });
    expect((await buildRow(buildId)).status).toBe('running');

    expect(await jobs.appendLog(compile, 'w1', '$ npm ci\n$ npm run build\n')).toBe(true);
    const settled = await jobs.finish(compile, 'w1', { status: 'success', duration_s: 3, text: 'Job succeeded\n' });
    expect(settled?.changes).toEqual([
      { name: 'compile', from: 'running', to: 'success' },
      { name: 'unit', from: 'created', to: 'queued' },
      { name: 'lint', from: 'created', to: 'queued' },
      { name: 'e2e 1/3', from: 'created', to: 'queued' },
      { name: 'e2e 2/3', from: 'created', to: 'queued' },
      { name: 'e2e 3/3', from: 'created', to: 'queued' },
    ]);
    expect(settled?.status).toBe('running');

    // Two jobs of the build run at the same time, under two workers.
    const first = await claim('w1');
    const second = await claim('w2');
    expect([first.name, second.name]).toEqual(['unit', 'lint']);
    expect(await statuses(buildId)).toMatchObject({ unit: 'running', lint: 'running' });

    await jobs.finish(first, 'w1', { status: 'success', duration_s: 2, text: 'ok\n' });
    await jobs.finish(second, 'w2', { status: 'fail', duration_s: 1, text: 'lint failed\n' });
    let last;
    for (let copy = 1; copy <= 3; copy++) {
      const e2e = await claim('w3');
      expect(e2e.name).toBe(`e2e ${copy}/3`);
      last = await jobs.finish(e2e, 'w3', { status: 'success', duration_s: 5, text: 'ok\n' });
    }
    // release is manual: it waits for a play, and holds nothing back. lint was allowed to fail: a warning.
    expect(last).toMatchObject({ status: 'success', build_changed: true, warning: true });
    expect(last?.changes).toContainEqual({ name: 'release', from: 'created', to: 'manual' });
    const build = await buildRow(buildId);
    expect(build.status).toBe('success');
    // The longest chain: compile (3 s) then an e2e copy (5 s).
    expect(build.duration_s).toBe(8);
    expect(build.finished_at).toBeInstanceOf(Date);
    expect(build.logs).toContain('[compile] $ npm ci\n[compile] $ npm run build\n[compile] Job succeeded\n');
    expect(build.logs).toContain('[lint] lint failed\n');
    expect(build.logs).toMatch(/Build finished: success in 8 s \(with warnings: lint failed, allowed to fail\)\n$/);
    const compileRow = await jobs.findById(compile.id);
    expect(compileRow?.logs).toMatch(/^\[usine\] Job compile \(attempt 1\) picked up by w1, claim 1\n\$ npm ci\n\$ npm run build\nJob succeeded\n$/);

    // Playing the manual job runs the build again; it ends on its jobs once more.
    const played = await jobs.playJob((await jobs.listForBuild(buildId)).find((job) => job.name === 'release')!.id);
    expect(played).toMatchObject({ outcome: 'done', settled: { status: 'running', build_changed: true } });
    const release = await claim('w1');
    expect(release.name).toBe('release');
    expect(await jobs.finish(release, 'w1', { status: 'success', duration_s: 1, text: 'released\n' })).toMatchObject({ status: 'success' });
    expect((await buildRow(buildId)).duration_s).toBe(9);
  });

  it('releases a job needed by two jobs exactly once when both finish at the same instant', async () => {
    const rounds = 10;
    for (let round = 0; round < rounds; round++) {
      const buildId = await buildOf({
        stages: ['build', 'join'],
        jobs: { left: { stage: 'build' }, right: { stage: 'build' }, join: { stage: 'join', needs: ['left', 'right'] } },
      });
      const left = await claim('left-worker');
      const right = await claim('right-worker');
      const results = await atTheSameInstant([left.id, right.id], () => [
        jobs.finish(left, 'left-worker', { status: 'success', duration_s: 1, text: '' }),
        jobs.finish(right, 'right-worker', { status: 'success', duration_s: 1, text: '' }),
      ]);
      const releases = results.flatMap((result) => result?.changes ?? []).filter((change) => change.name === 'join');
      expect(releases, `round ${round}`).toEqual([{ name: 'join', from: 'created', to: 'queued' }]);
      expect((await statuses(buildId)).join).toBe('queued');
      const join = await claim('w');
      expect(join.name).toBe('join');
      await jobs.finish(join, 'w', { status: 'success', duration_s: 1, text: '' });
      expect((await buildRow(buildId)).status).toBe('success');
    }
  });

  it('skips dependents of a failure down the graph, runs `on_failure` and `always` jobs, and fails the build', async () => {
    const buildId = await buildOf({
      stages: ['build', 'test', 'cleanup'],
      jobs: {
        compile: { stage: 'build' },
        unit: { stage: 'test' },
        report: { stage: 'test', needs: ['unit'] },
        rollback: { stage: 'cleanup', when: 'on_failure' },
        notify: { stage: 'cleanup', when: 'always' },
      },
    });
    const compile = await claim('w');
    const settled = await jobs.finish(compile, 'w', { status: 'fail', duration_s: 1, text: 'boom\n' });
    expect(await statuses(buildId)).toEqual({ compile: 'fail', unit: 'skipped', report: 'skipped', rollback: 'queued', notify: 'queued' });
    expect(settled?.status).toBe('running');
    for (const expected of ['rollback', 'notify']) {
      const job = await claim('w');
      expect(job.name).toBe(expected);
      await jobs.finish(job, 'w', { status: 'success', duration_s: 1, text: '' });
    }
    expect((await buildRow(buildId)).status).toBe('fail');
  });

  it('retries a failed job as a new attempt, re-plans the jobs skipped because of it, and runs the build again', async () => {
    const buildId = await buildOf({
      stages: ['build', 'test'],
      jobs: { compile: { stage: 'build' }, unit: { stage: 'test' }, lint: { stage: 'test', needs: [] } },
    });
    const compile = await claim('w');
    expect(compile.name).toBe('compile');
    const lint = await claim('w');
    await jobs.finish(lint, 'w', { status: 'success', duration_s: 1, text: '' });
    await jobs.finish(compile, 'w', { status: 'fail', duration_s: 1, text: '' });
    expect((await buildRow(buildId)).status).toBe('fail');

    expect(await jobs.retryJob(lint.id)).toMatchObject({ outcome: 'done' }); // a success may run again too
    const retried = await jobs.retryJob(compile.id);
    expect(retried).toMatchObject({ outcome: 'done', settled: { status: 'running', build_changed: false } });
    const listed = await jobs.listForBuild(buildId);
    const attempts = listed.filter((job) => job.name === 'compile');
    expect(attempts.map((job) => [job.attempt, job.status, job.retried])).toEqual([
      [1, 'fail', true],
      [2, 'queued', false],
    ]);
    expect(attempts[1]!.retry_of).toBe(compile.id);
    expect(await statuses(buildId)).toMatchObject({ compile: 'queued', unit: 'created' });
    // The old attempt is history: it cannot be retried again; a queued job cannot be retried either.
    expect(await jobs.retryJob(compile.id)).toEqual({ outcome: 'conflict', status: 'fail' });
    expect(await jobs.retryJob(attempts[1]!.id)).toEqual({ outcome: 'conflict', status: 'queued' });
    expect(await jobs.retryJob(2_000_000_000)).toEqual({ outcome: 'not_found' });

    for (let left = 3; left > 0; left--) {
      const job = await claim('w');
      await jobs.finish(job, 'w', { status: 'success', duration_s: 1, text: '' });
    }
    expect(await statuses(buildId)).toEqual({ compile: 'success', unit: 'success', lint: 'success' });
    expect((await buildRow(buildId)).status).toBe('success');
  });

  it('cancels a build: running and queued jobs canceled, waiting ones skipped; a late finish writes nothing', async () => {
    const buildId = await buildOf({
      stages: ['build', 'test'],
      jobs: { a: { stage: 'build' }, b: { stage: 'build' }, c: { stage: 'test' } },
    });
    const a = await claim('w');
    const settled = await jobs.cancelBuild(buildId, '[usine] Build canceled by admin\n', 0);
    expect(settled?.changes).toEqual([
      { name: 'a', from: 'running', to: 'canceled' },
      { name: 'b', from: 'queued', to: 'canceled' },
      { name: 'c', from: 'created', to: 'skipped' },
    ]);
    expect(await jobs.finish(a, 'w', { status: 'success', duration_s: 1, text: 'late\n' })).toBeUndefined();
    expect(await jobs.appendLog(a, 'w', 'late\n')).toBe(false);
    const build = await buildRow(buildId);
    expect(build.status).toBe('canceled');
    expect(build.logs).not.toContain('late');
    expect(await jobs.cancelBuild(buildId, 'again\n', 0)).toBeUndefined();
  });

  it('cancels one job: its `on_success` dependents are skipped, and the build ends canceled', async () => {
    const buildId = await buildOf({ stages: ['build', 'test'], jobs: { a: { stage: 'build' }, b: { stage: 'test' } } });
    const a = await claim('w');
    const result = await jobs.cancelJob(a.id, 'canceled by admin\n', 0);
    expect(result).toMatchObject({ outcome: 'done', settled: { status: 'canceled', build_changed: true } });
    expect(await statuses(buildId)).toEqual({ a: 'canceled', b: 'skipped' });
    expect(await jobs.cancelJob(a.id, '', 0)).toEqual({ outcome: 'conflict', status: 'canceled' });
    expect(await jobs.playJob(a.id)).toEqual({ outcome: 'conflict', status: 'canceled' });
  });

  it('takes a job over when its lease expires, and fails it (moving the build on) after BUILD_MAX_ATTEMPTS claims', async () => {
    const buildId = await buildOf({ stages: ['build', 'test'], jobs: { a: { stage: 'build' }, b: { stage: 'test' } } });
    const short = await jobs.claimNext('dying-worker', 1);
    expect(short?.job.name).toBe('a');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await jobs.recoverExpired(2)).toEqual({ requeued: [short!.job.id], failed: [] });
    expect(await jobs.finish(short!.job, 'dying-worker', { status: 'success', duration_s: 1, text: '' })).toBeUndefined();
    const again = await jobs.claimNext('second-worker', 1);
    expect(again?.job).toMatchObject({ id: short!.job.id, claims: 2 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const recovered = await jobs.recoverExpired(2);
    expect(recovered.requeued).toEqual([]);
    expect(recovered.failed).toMatchObject([{ build_id: buildId, status: 'fail', changes: [{ name: 'a', to: 'fail' }, { name: 'b', to: 'skipped' }] }]);
    const row = await jobs.findById(short!.job.id);
    expect(row?.logs).toMatch(/stopped renewing its lease: the job is queued again[\s\S]*picked up by second-worker, claim 2[\s\S]*giving up, the job fails\.\n$/);
  });

  it('hands a job back to the queue on shutdown without counting the claim', async () => {
    const buildId = await buildOf({ stages: ['build'], jobs: { a: { stage: 'build' } } });
    const a = await claim('w');
    expect(await jobs.release(a, 'someone-else', 'no\n')).toBe(false);
    expect(await jobs.release(a, 'w', 'shutting down\n')).toBe(true);
    expect(await statuses(buildId)).toEqual({ a: 'queued' });
    const again = await claim('w2');
    expect(again).toMatchObject({ id: a.id, claims: 1 });
    await jobs.finish(again, 'w2', { status: 'success', duration_s: 1, text: '' });
  });

  /** Runs `work`, counting the transactions the repository runs meanwhile (the database object's own, wrapped). */
  async function countingTransactions<T>(work: () => Promise<T>): Promise<{ result: T; transactions: number }> {
    const original = database.transaction;
    let transactions = 0;
    database.transaction = (script) => {
      transactions++;
      return original(script);
    };
    try {
      return { result: await work(), transactions };
    } finally {
      database.transaction = original;
    }
  }

  const versionOf = async (buildId: number) =>
    (await database.db.select({ version: database.tables.builds.jobs_version }).from(database.tables.builds).where(eq(database.tables.builds.id, buildId)))[0]?.version;

  it("counts in the build's jobs_version every change of its jobs a finish depends on, not a claim nor a hand-back", async () => {
    const buildId = await buildOf({ stages: ['build', 'test'], jobs: { a: { stage: 'build' }, b: { stage: 'test' } } });
    expect(await versionOf(buildId)).toBe(0);
    const a = await claim('w');
    expect(await versionOf(buildId)).toBe(0);
    expect(await jobs.release(a, 'w', 'shutting down\n')).toBe(true);
    expect(await versionOf(buildId)).toBe(0);
    const again = await claim('w');
    // a: running → success, b: created → queued.
    await jobs.finish(again, 'w', { status: 'success', duration_s: 1, text: '' });
    expect(await versionOf(buildId)).toBe(2);
    const b = await claim('w');
    await jobs.finish(b, 'w', { status: 'fail', duration_s: 1, text: '' });
    expect(await versionOf(buildId)).toBe(3);
    // A retry: the old attempt steps aside (retried), the new one is queued.
    expect(await jobs.retryJob(b.id)).toMatchObject({ outcome: 'done' });
    expect(await versionOf(buildId)).toBe(4);
    // Nothing left queued for the next tests' claims.
    expect(await jobs.cancelBuild(buildId, 'done\n', 0)).toMatchObject({ status: 'canceled' });
  });

  it('finishes a job in one statement on PostgreSQL when nothing changed since its claim, and in a transaction when something did', async () => {
    const buildId = await buildOf({
      stages: ['build', 'join'],
      jobs: { left: { stage: 'build' }, right: { stage: 'build' }, join: { stage: 'join', needs: ['left', 'right'] } },
    });
    const left = await claim('left-worker');
    const right = await claim('right-worker');
    // right finishes first: what left's claim read of the build (right running) no longer holds when left finishes.
    const first = await countingTransactions(() => jobs.finish(right, 'right-worker', { status: 'success', duration_s: 2, text: 'right done\n' }));
    expect(first.result?.changes).toEqual([{ name: 'right', from: 'running', to: 'success' }]);
    expect(first.transactions).toBe(testDb === 'pg' ? 0 : 1);
    const second = await countingTransactions(() => jobs.finish(left, 'left-worker', { status: 'success', duration_s: 1, text: 'left done\n' }));
    expect(second.result?.changes).toEqual([
      { name: 'left', from: 'running', to: 'success' },
      { name: 'join', from: 'created', to: 'queued' },
    ]);
    expect(second.transactions).toBe(1);
    // join's claim read the build as it is: its finish, the build's last, is one statement again, and ends the build.
    const join = await claim('w');
    const last = await countingTransactions(() => jobs.finish(join, 'w', { status: 'success', duration_s: 3, text: 'joined\n' }));
    expect(last.result).toMatchObject({ status: 'success', build_changed: true, warning: false, changes: [{ name: 'join', from: 'running', to: 'success' }] });
    expect(last.transactions).toBe(testDb === 'pg' ? 0 : 1);
    const build = await buildRow(buildId);
    expect(build).toMatchObject({ status: 'success', duration_s: 5 });
    expect(build.finished_at).toBeInstanceOf(Date);
    expect(build.logs).toMatch(/\[right\] right done\n[^]*\[left\] left done\n[^]*\[join\] joined\nBuild finished: success in 5 s\n$/);
    const joinRow = await jobs.findById(join.id);
    expect(joinRow).toMatchObject({ status: 'success', duration_s: 3, lease_owner: null, lease_expires_at: null });
    expect(joinRow?.logs).toMatch(/joined\n$/);
    expect(joinRow?.finished_at).toBeInstanceOf(Date);
  });

  it('writes nothing in one statement for a job no longer held, and skips what a failure skips', async () => {
    const buildId = await buildOf({ stages: ['build', 'test', 'deploy'], jobs: { a: { stage: 'build' }, b: { stage: 'test' }, c: { stage: 'deploy' } } });
    const a = await claim('w');
    expect(await jobs.finish(a, 'someone-else', { status: 'success', duration_s: 1, text: 'not mine\n' })).toBeUndefined();
    expect(await statuses(buildId)).toEqual({ a: 'running', b: 'created', c: 'created' });
    expect((await buildRow(buildId)).logs).not.toContain('not mine');
    const failed = await countingTransactions(() => jobs.finish(a, 'w', { status: 'fail', duration_s: 1, text: 'broken\n' }));
    expect(failed.transactions).toBe(testDb === 'pg' ? 0 : 1);
    expect(failed.result).toMatchObject({ status: 'fail', build_changed: true });
    expect(await statuses(buildId)).toEqual({ a: 'fail', b: 'skipped', c: 'skipped' });
    const skipped = (await jobs.listForBuild(buildId)).filter((job) => job.status === 'skipped');
    expect(skipped.every((job) => job.finished_at instanceof Date)).toBe(true);
    expect(await buildRow(buildId)).toMatchObject({ status: 'fail', duration_s: 1 });
  });

  it("stores a job's artifact in the write that finishes it, whichever way it goes, and never for a job not held", async () => {
    const artifactOf = (name: string, text: string) => ({
      name,
      content_type: 'application/gzip',
      content: Buffer.from(text),
      size_bytes: text.length,
      sha256: createHash('sha256').update(text).digest('hex'),
    });
    const stored = async (buildId: number) =>
      database.db
        .select({ name: database.tables.artifacts.name, job_id: database.tables.artifacts.job_id, sha256: database.tables.artifacts.sha256 })
        .from(database.tables.artifacts)
        .where(eq(database.tables.artifacts.build_id, buildId));
    const buildId = await buildOf({ stages: ['build', 'pack'], jobs: { left: { stage: 'build' }, right: { stage: 'build' }, pack: { stage: 'pack' } } });
    const left = await claim('w1');
    const right = await claim('w2');
    // Not held: nothing stored, whichever path the finish takes.
    expect(await jobs.finish(left, 'someone-else', { status: 'success', duration_s: 1, text: '', artifact: artifactOf('left.tar.gz', 'x') })).toBeUndefined();
    expect(await stored(buildId)).toEqual([]);
    // right finishes first: left's snapshot no longer holds, and its finish (with its file) goes through the transaction.
    const first = await countingTransactions(() => jobs.finish(right, 'w2', { status: 'success', duration_s: 1, text: '', artifact: artifactOf('right.tar.gz', 'right') }));
    expect(first.transactions).toBe(testDb === 'pg' ? 0 : 1);
    const second = await countingTransactions(() => jobs.finish(left, 'w1', { status: 'success', duration_s: 1, text: '', artifact: artifactOf('left.tar.gz', 'left') }));
    expect(second.transactions).toBe(1);
    const pack = await claim('w3');
    expect(await jobs.buildLog(buildId)).toBe((await buildRow(buildId)).logs);
    // A file of a name the build has already is replaced, and is the job's that stored it last.
    await jobs.finish(pack, 'w3', { status: 'success', duration_s: 1, text: 'packed\n', artifact: artifactOf('left.tar.gz', 'packed') });
    const files = (await stored(buildId)).sort((a, b) => a.name.localeCompare(b.name));
    expect(files).toEqual([
      { name: 'left.tar.gz', job_id: pack.id, sha256: artifactOf('', 'packed').sha256 },
      { name: 'right.tar.gz', job_id: right.id, sha256: artifactOf('', 'right').sha256 },
    ]);
    expect((await buildRow(buildId)).status).toBe('success');
  });

  it('prefixes every line of a job in the build log with its name', () => {
    expect(prefixLines('e2e 1/3', 'one\ntwo\n')).toBe('[e2e 1/3] one\n[e2e 1/3] two\n');
    expect(prefixLines('x', '')).toBe('');
  });
});
