/**
 * Database outage (issue #8): a real server on a PostgreSQL server of the test's own, under a steady load of API
 * requests and builds, loses its database for OUTAGE_S seconds (`pg_ctl stop -m fast`: connections cut, port closed).
 *
 * Expected: `/health/ready` turns 503; every request that needs the database answers a 503 problem quickly (each within
 * 6 s: the driver's connect_timeout is 5 s) and none hangs; `/health/live` stays 200; no build or job is marked
 * finished while the database is down; the process stays alive. When the database is back the service recovers by
 * itself within 5 s (ready, 2xx again), and every build and every job reaches a terminal status, the jobs whose lease
 * expired during the outage being taken over (queued again, run again). Two of the three projects run a pipeline of
 * parallel jobs with needs (test/chaos/job-runs.ts), the third the default one; per job, one completed run with its
 * pickups and take-overs well ordered, and no job started before its needs had finished; per build, one start line and
 * one `Build finished` line with its status, and build numbers 1..n. PostgreSQL only (the sqlite project leaves
 * *.pg.chaos.ts out).
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killServer, loginAdmin, startServer, type ServerProcess } from '../processes.js';
import { CHAOS_PIPELINE_JOBS, chaosPipeline, DEFAULT_PIPELINE_JOBS, jobRecord, jobsByBuild, takeoverPids, terminalBuildProblems, type JobRecord } from './job-runs.js';
import { createPgInstance, pgInstanceUnavailable, type PgInstance } from './pg-instance.js';
import { CHAOS_ARTIFACTS_DIR, isUnavailableProblem, probe, record, RequestTally, type Probe } from './record.js';

const OUTAGE_S = Number(process.env.CHAOS_OUTAGE_S ?? 30);
/** The issue's bounds. */
const REQUEST_BOUND_MS = 6000;
const RECOVERY_BOUND_MS = 5000;
const LEASE_S = 3;
const LANES = 8;
const TERMINAL = ['success', 'fail', 'canceled'];
/** Each job of the pipeline projects fails this often (the default pipeline's builds fail at BUILD_FAIL_RATE). */
const PIPELINE_FAIL_RATE = 0.05;
const JOBS_QUERY = 'select id, build_id, name, status, needs, spec, logs, started_at, finished_at from jobs where not retried order by build_id, position';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const unavailable = pgInstanceUnavailable();
if (unavailable) {
  const message = `outage chaos test: ${unavailable}`;
  if (process.env.CI === 'true') throw new Error(message);
  console.warn(`\n${'!'.repeat(78)}\n!! ${message}: SKIPPED.\n${'!'.repeat(78)}\n`);
}

interface Sample extends Probe {
  route: string;
  phase: 'before' | 'outage' | 'after';
}

interface BuildRowLite {
  id: number;
  project_id: number;
  number: number;
  status: string;
  logs: string;
  finished_at: Date | null;
}

describe.skipIf(Boolean(unavailable))(`database outage of ${OUTAGE_S} s under load (own PostgreSQL)`, () => {
  let pg: PgInstance | undefined;
  let server: ServerProcess | undefined;
  let sql: postgres.Sql | undefined;

  beforeAll(async () => {
    pg = await createPgInstance();
    server = await startServer(
      'outage',
      {
        DATABASE_URL: pg.url(),
        BUILD_TIME_SCALE: '0.2',
        BUILD_LEASE_S: String(LEASE_S),
        BUILD_CONCURRENCY: '4',
        BUILD_FAIL_RATE: '0.3',
        BUILD_QUEUE_LIMIT: '100000',
        // Reports unhandled rejections and uncaught exceptions (with the query behind them) in the server's output.
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${pathToFileURL(join(import.meta.dirname, 'outage-diagnostics.mjs')).href}`.trim(),
      },
      undefined,
      90_000,
    );
    sql = postgres(pg.url(), { max: 2, onnotice: () => {} });
  }, 150_000);

  afterAll(async () => {
    if (server) await killServer(server);
    await sql?.end({ timeout: 2 }).catch(() => undefined);
    await pg?.destroy();
  }, 60_000);

  it(
    'answers 503 problems quickly while the database is down, recovers within 5 s, and loses no build or job',
    async () => {
      const base = server!.url;
      const token = await loginAdmin(base);
      const auth = { authorization: `Bearer ${token}` };
      const json = { ...auth, 'content-type': 'application/json' };

      // Projects (the first with the default pipeline, the others with parallel jobs and needs) and a first batch of
      // builds, so that some run and some wait when the database goes.
      const projectIds: number[] = [];
      for (let index = 0; index < 3; index++) {
        const created = await probe(`${base}/projects`, {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ name: `outage-${Date.now()}-${index}`, repo: 'https://example.com/outage.git' }),
        });
        expect(created.status, JSON.stringify(created.body)).toBe(201);
        const projectId = (created.body as { id: number }).id;
        if (index > 0) {
          const pipeline = await probe(`${base}/projects/${projectId}/pipeline`, { method: 'PUT', headers: json, body: JSON.stringify(chaosPipeline(PIPELINE_FAIL_RATE)) });
          expect(pipeline.status, JSON.stringify(pipeline.body)).toBe(200);
        }
        projectIds.push(projectId);
      }
      const acknowledged = new Set<number>();
      const trigger = async (phase: Sample['phase'], samples: Sample[]) => {
        const projectId = projectIds[Math.floor(Math.random() * projectIds.length)]!;
        const answer = await probe(`${base}/projects/${projectId}/builds`, { method: 'POST', headers: auth }, REQUEST_BOUND_MS + 4000);
        samples.push({ ...answer, route: 'POST /projects/:id/builds', phase });
        if (answer.status === 201) acknowledged.add((answer.body as { id: number }).id);
      };

      const samples: Sample[] = [];
      for (let index = 0; index < 16; index++) await trigger('before', samples);

      // Steady load from 4 lanes until told to stop; each request is tagged with the phase it started in.
      let phase: Sample['phase'] = 'before';
      let loadOn = true;
      const routes: [string, () => Promise<Probe>][] = [
        ['GET /projects', () => probe(`${base}/projects`, { headers: auth }, REQUEST_BOUND_MS + 4000)],
        ['GET /builds/:id', () => probe(`${base}/builds/${[...acknowledged][0] ?? 1}`, { headers: auth }, REQUEST_BOUND_MS + 4000)],
        ['GET /projects/:id/builds', () => probe(`${base}/projects/${projectIds[0]}/builds`, { headers: auth }, REQUEST_BOUND_MS + 4000)],
        ['GET /me', () => probe(`${base}/me`, { headers: auth }, REQUEST_BOUND_MS + 4000)],
        ['GET /health/ready', () => probe(`${base}/health/ready`, {}, REQUEST_BOUND_MS + 4000)],
        ['GET /health/live', () => probe(`${base}/health/live`, {}, REQUEST_BOUND_MS + 4000)],
        ['GET /status', () => probe(`${base}/status`, {}, REQUEST_BOUND_MS + 4000)],
      ];
      const lane = async (offset: number) => {
        for (let turn = offset; loadOn; turn++) {
          const startedIn = phase;
          if (turn % 8 === 7) {
            await trigger(startedIn, samples);
          } else {
            const [route, call] = routes[turn % routes.length]!;
            samples.push({ ...(await call()), route, phase: startedIn });
          }
          await sleep(50);
        }
      };
      const lanes = Array.from({ length: LANES }, (_unused, index) => lane(index * 2));

      // Wait until jobs are running, note which, then cut the database.
      let runningAtStop: { id: number; build_id: number }[] = [];
      for (let waited = 0; waited < 20_000; waited += 200) {
        runningAtStop = await sql!<{ id: number; build_id: number }[]>`select id, build_id from jobs where status = 'running' and not retried`;
        if (runningAtStop.length >= 2) break;
        await sleep(200);
      }
      expect(runningAtStop.length, 'jobs running when the database goes').toBeGreaterThan(0);
      const buildsRunningAtStop = new Set(runningAtStop.map((job) => job.build_id)).size;
      await sql!.end({ timeout: 2 });
      sql = undefined;
      const stopAt = Date.now();
      await pg!.stop('fast');
      const downAt = Date.now();
      phase = 'outage';

      // Readiness must turn 503 (a problem body) soon, liveness must stay 200.
      let readyDownAfterMs: number | undefined;
      for (let waited = 0; waited < 10_000; waited += 200) {
        const ready = await probe(`${base}/health/ready`, {}, REQUEST_BOUND_MS + 4000);
        if (isUnavailableProblem(ready)) {
          readyDownAfterMs = Date.now() - downAt;
          break;
        }
        await sleep(200);
      }
      const liveDuring = await probe(`${base}/health/live`);
      // How long does a request wait when nothing bounds it? Three of them, started now, bounded only by the outage + 20 s.
      const meter = Promise.all(
        ['/projects', '/me', `/projects/${projectIds[0]}/builds`].map((path) => probe(`${base}${path}`, { headers: auth }, OUTAGE_S * 1000 + 20_000)),
      );

      await sleep(Math.max(0, OUTAGE_S * 1000 - (Date.now() - stopAt)));
      const aliveThroughout = server!.alive();

      // The database comes back: the service must be ready, read and write again within 5 s, by itself.
      phase = 'after';
      await pg!.start();
      const upAt = Date.now();
      // Three independent pollers (short per-attempt bounds, so that one stuck attempt does not blur the figure).
      const firstSuccess = async (attempt: () => Promise<boolean>) => {
        while (Date.now() - upAt < 30_000 && server!.alive()) {
          if (await attempt()) return Date.now() - upAt;
          await sleep(100);
        }
        return undefined;
      };
      const [readyAgainMs, readAgainMs, writeAgainMs] = await Promise.all([
        firstSuccess(async () => (await probe(`${base}/health/ready`, {}, 1500)).status === 200),
        firstSuccess(async () => (await probe(`${base}/projects`, { headers: auth }, 1500)).status === 200),
        firstSuccess(async () => {
          const write = await probe(`${base}/projects/${projectIds[0]}/builds`, { method: 'POST', headers: auth }, 1500);
          if (write.status === 201) acknowledged.add((write.body as { id: number }).id);
          return write.status === 201;
        }),
      ]);
      const metered = await meter;
      const meterSummary = metered
        .map((answer) => `${answer.status || answer.error} after ${answer.ms} ms (${answer.startedAt + answer.ms >= upAt ? `${answer.startedAt + answer.ms - upAt} ms after the database came back` : 'while it was down'})`)
        .join('; ');
      const meterHung = metered.filter((answer) => answer.startedAt + answer.ms >= upAt || answer.ms >= REQUEST_BOUND_MS).length;
      await sleep(3000);
      loadOn = false;
      await Promise.all(lanes);

      // Every build and job ends terminal: the jobs whose lease ran out during the outage are queued again and run again.
      sql = postgres(pg!.url(), { max: 2, onnotice: () => {} });
      const drainDeadline = Date.now() + 90_000;
      while (Date.now() < drainDeadline && server!.alive()) {
        const [row] = await sql<{ n: number }[]>`select (select count(*)::int from builds where status in ('queued', 'running')) + (select count(*)::int from jobs where status in ('created', 'queued', 'running') and not retried) as n`;
        if (row!.n === 0) break;
        await sleep(500);
      }
      const builds = await sql<BuildRowLite[]>`select id, project_id, number, status, logs, finished_at from builds order by id`;
      const jobs: JobRecord[] = (await sql.unsafe<Record<string, unknown>[]>(JOBS_QUERY)).map(jobRecord);
      const artifacts = await sql<{ job_id: number | null; sha256: string; size_bytes: number; content: Buffer }[]>`select job_id, sha256, size_bytes, content from artifacts`;
      const byId = new Map(builds.map((build) => [build.id, build]));
      const jobById = new Map(jobs.map((job) => [job.id, job]));
      const jobsOf = jobsByBuild(jobs);
      const artifactOf = new Map(artifacts.map((artifact) => [artifact.job_id, artifact]));

      const notTerminal = builds.filter((build) => !TERMINAL.includes(build.status));
      const jobsNotTerminal = jobs.filter((job) => !['success', 'fail', 'canceled', 'skipped'].includes(job.status));
      const missing = [...acknowledged].filter((id) => !byId.has(id));
      // A build or job finished while the database was down is impossible; a success that skipped the run's end is not.
      const inOutage = (at: number | null | undefined) => at !== null && at !== undefined && at > stopAt + 500 && at < upAt;
      const successDuringOutage = builds.filter((build) => build.status === 'success' && inOutage(build.finished_at?.getTime()));
      const jobsFinishedDuringOutage = jobs.filter((job) => inOutage(job.finished_at));
      // Every successful job that stores an artifact has it, sound (the default pipeline's `package`, the others' `publish`).
      const successWithoutArtifact = jobs.filter((job) => {
        if (job.status !== 'success' || !job.artifacts) return false;
        const artifact = artifactOf.get(job.id);
        return !artifact || createHash('sha256').update(artifact.content).digest('hex') !== artifact.sha256 || artifact.content.length !== artifact.size_bytes;
      });
      // A job running at the cut either finished just before it (finished_at before the stop), or was taken over from
      // this server once its lease had expired.
      const notTakenOver = runningAtStop
        .map((before) => jobById.get(before.id))
        .filter((job) => !job || (!(job.finished_at !== null && job.finished_at <= stopAt + 200) && !takeoverPids(job, []).includes(server!.pid)));
      const takenOver = jobs.filter((job) => takeoverPids(job, []).length > 0);
      // Builds' and jobs' runs: the server cut from its database between a claim and the claim's line in the build's
      // log is a process that died there (see job-runs.ts).
      const runProblems = builds
        .filter((build) => TERMINAL.includes(build.status))
        .flatMap((build) => terminalBuildProblems(build, jobsOf.get(build.id) ?? [], new Set([server!.pid])));
      const numbers = new Map<number, number[]>();
      for (const build of builds) numbers.set(build.project_id, [...(numbers.get(build.project_id) ?? []), build.number]);
      const badSequences = [...numbers].filter(([, list]) => list.sort((a, b) => a - b).some((number, index) => number !== index + 1));
      // Each build has its project's jobs: the default pipeline's for the first project, the pipeline's for the others.
      const jobNames = (build: BuildRowLite) => (jobsOf.get(build.id) ?? []).map((job) => job.name).join(', ');
      const wrongJobs = builds.filter((build) => jobNames(build) !== (build.project_id === projectIds[0] ? DEFAULT_PIPELINE_JOBS : CHAOS_PIPELINE_JOBS).join(', '));
      const pipelineBuilds = builds.filter((build) => jobNames(build) === CHAOS_PIPELINE_JOBS.join(', ')).length;

      // Requests: during the outage every database route must answer a 503 problem, and every request quickly.
      const tally = new RequestTally();
      for (const sample of samples) tally.add(sample.status === 0 ? 'error' : sample.status);
      const during = samples.filter((sample) => sample.phase === 'outage' && sample.startedAt >= downAt && sample.startedAt + sample.ms < upAt);
      const slow = samples.filter((sample) => sample.ms >= REQUEST_BOUND_MS);
      const noAnswer = samples.filter((sample) => sample.status === 0);
      // GET /status keeps the seed's monitoring body: 503 `{status: "degraded", db: "error"}` (documented), not a problem.
      const degradedStatus = (sample: Sample) =>
        sample.route === 'GET /status' && sample.status === 503 && (sample.body as { status?: unknown } | undefined)?.status === 'degraded';
      const wrong5xx = samples.filter((sample) => sample.status >= 500 && !isUnavailableProblem(sample) && !degradedStatus(sample));
      const duringWrong = during.filter((sample) =>
        sample.route === 'GET /health/live' ? sample.status !== 200 : !isUnavailableProblem(sample) && !degradedStatus(sample),
      );
      const at = (sample: Sample) => `${sample.route} started ${((sample.startedAt - downAt) / 1000).toFixed(1)} s after the cut, ${sample.status || sample.error} in ${sample.ms} ms`;
      const maxMsDuring = Math.max(0, ...during.map((sample) => sample.ms));
      const lost =
        notTerminal.length + jobsNotTerminal.length + missing.length + successDuringOutage.length + jobsFinishedDuringOutage.length + successWithoutArtifact.length + notTakenOver.length;

      const failures: string[] = [];
      if (!aliveThroughout || !server!.alive()) failures.push('the server process died');
      if (readyDownAfterMs === undefined) failures.push('/health/ready never answered a 503 problem during the outage');
      if (liveDuring.status !== 200) failures.push(`/health/live answered ${liveDuring.status} during the outage`);
      if (slow.length > 0) failures.push(`${slow.length} requests took ${REQUEST_BOUND_MS} ms or more: ${slow.slice(0, 6).map(at).join('; ')}`);
      if (noAnswer.length > 0) failures.push(`${noAnswer.length} requests got no answer: ${noAnswer.slice(0, 6).map(at).join('; ')}`);
      if (wrong5xx.length > 0) failures.push(`${wrong5xx.length} 5xx that are not 503 problems: ${JSON.stringify(wrong5xx.slice(0, 3).map((s) => [s.route, s.status, s.body]))}`);
      if (duringWrong.length > 0) {
        const kinds = [...new Set(duringWrong.map((s) => `${s.route} → ${s.status}`))];
        failures.push(`${duringWrong.length} requests during the outage did not answer a 503 problem: ${kinds.join(', ')} e.g. ${JSON.stringify(duringWrong[0]?.body)}`);
      }
      if (meterHung > 0) failures.push(`unbounded requests sent once readiness was 503: ${meterSummary}`);
      if (readyAgainMs === undefined || readyAgainMs > RECOVERY_BOUND_MS) failures.push(`ready again after ${readyAgainMs ?? 'never (30 s)'} ms`);
      if (readAgainMs === undefined || readAgainMs > RECOVERY_BOUND_MS) failures.push(`GET /projects 200 again after ${readAgainMs ?? 'never (30 s)'} ms`);
      if (writeAgainMs === undefined || writeAgainMs > RECOVERY_BOUND_MS) failures.push(`POST build 201 again after ${writeAgainMs ?? 'never (30 s)'} ms`);
      if (notTerminal.length > 0) failures.push(`${notTerminal.length} builds not terminal 90 s after the recovery: ${notTerminal.map((b) => `#${b.id} ${b.status}`).join(', ')}`);
      if (jobsNotTerminal.length > 0) {
        failures.push(`${jobsNotTerminal.length} jobs not terminal 90 s after the recovery: ${jobsNotTerminal.slice(0, 10).map((j) => `${j.id} (${j.name} of build ${j.build_id}) ${j.status}`).join(', ')}`);
      }
      if (missing.length > 0) failures.push(`${missing.length} acknowledged builds missing`);
      if (badSequences.length > 0) failures.push(`${badSequences.length} projects whose build numbers are not 1..n: ${JSON.stringify(badSequences)}`);
      if (successDuringOutage.length > 0) failures.push(`${successDuringOutage.length} builds marked success during the outage`);
      if (jobsFinishedDuringOutage.length > 0) {
        failures.push(`${jobsFinishedDuringOutage.length} jobs marked finished during the outage: ${jobsFinishedDuringOutage.slice(0, 5).map((j) => `${j.id} (${j.name} of build ${j.build_id}) ${j.status}`).join(', ')}`);
      }
      if (successWithoutArtifact.length > 0) failures.push(`${successWithoutArtifact.length} successful jobs without a sound artifact: ${successWithoutArtifact.slice(0, 5).map((j) => `${j.id} (${j.name} of build ${j.build_id})`).join(', ')}`);
      if (notTakenOver.length > 0) {
        failures.push(`${notTakenOver.length} jobs running at the cut were not taken over: ${notTakenOver.map((j) => (j ? `${j.id} (${j.name} of build ${j.build_id}) ${j.status}` : 'a job gone')).join(', ')}`);
      }
      if (runProblems.length > 0) failures.push(`${runProblems.length} problems with builds' and jobs' runs: ${runProblems.slice(0, 8).join(' | ')}`);
      if (wrongJobs.length > 0) failures.push(`${wrongJobs.length} builds without their project's jobs: ${wrongJobs.slice(0, 5).map((b) => `#${b.id} [${jobNames(b)}]`).join('; ')}`);
      if (pipelineBuilds === 0) failures.push('no build ran the pipeline of parallel jobs');

      record({
        scenario: 'outage',
        db: 'pg',
        what: `PostgreSQL (own instance) stopped with pg_ctl -m fast for ${OUTAGE_S} s under ${LANES} lanes of API requests and builds (two projects of three with a pipeline of 6 jobs, 3 of them parallel, with needs; BUILD_TIME_SCALE 0.2, BUILD_LEASE_S ${LEASE_S}, ${runningAtStop.length} jobs of ${buildsRunningAtStop} builds running at the cut), then started again`,
        happened:
          failures.length === 0
            ? `/health/ready 503 after ${readyDownAfterMs} ms; every database request answered a 503 problem (slowest ${maxMsDuring} ms), /health/live stayed 200; ready again ${readyAgainMs} ms and writing ${writeAgainMs} ms after the restart; all ${builds.length} builds (${pipelineBuilds} of the pipeline) and ${jobs.length} jobs terminal, each job run to its end once, none before its needs, ${takenOver.length} jobs taken over after their lease expired`
            : failures.join('; '),
        ok: failures.length === 0,
        figures: {
          requests: tally.requests,
          '5xx': tally.fiveXX,
          lost,
          outage_s: OUTAGE_S,
          requests_during_outage: during.length,
          non_503_5xx: wrong5xx.length,
          no_answer: noAnswer.length,
          slowest_ms_during_outage: maxMsDuring,
          unbounded_requests_held_until_db_back: meterHung,
          ready_503_after_ms: readyDownAfterMs ?? null,
          ready_again_ms: readyAgainMs ?? null,
          writes_again_ms: writeAgainMs ?? null,
          builds: builds.length,
          pipeline_builds: pipelineBuilds,
          jobs: jobs.length,
          jobs_running_at_cut: runningAtStop.length,
          builds_running_at_cut: buildsRunningAtStop,
          jobs_taken_over: takenOver.length,
          run_problems: runProblems.length,
          not_terminal: notTerminal.length + jobsNotTerminal.length,
        },
      });

      // The server's whole output, for the post-mortem; the failure message carries its state and tail.
      writeFileSync(join(CHAOS_ARTIFACTS_DIR, 'outage.pg.server.log'), `${server!.notable()}\n--- tail ---\n${server!.output()}`);
      const state = server!.alive() ? 'still running' : `exited (code ${server!.child.exitCode}, signal ${server!.child.signalCode})`;
      expect(failures, `${failures.join('\n')}\n--- server ${state}; answers 5xx but 503 logged ---\n${server!.notable().slice(0, 6000)}\n--- output tail (whole: test/artifacts/chaos/outage.pg.server.log) ---\n${server!.output().slice(-3000)}`).toEqual([]);
    },
    OUTAGE_S * 1000 + 240_000,
  );
});
