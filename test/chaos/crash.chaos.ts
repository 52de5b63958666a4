/**
 * Crash (issue #8): `kill -9` of a real server in the middle of writes — concurrent project creates (every other one
 * given a pipeline of parallel jobs and needs, test/chaos/job-runs.ts), build triggers, builds' jobs running and
 * storing their artifacts (BUILD_TIME_SCALE 0, BUILD_FAIL_RATE 0) — CYCLES times over, each time restarted on the same
 * database. Then, read straight from the database:
 * - every acknowledged (201) project and build is there, and every project row is complete; every build of a project
 *   whose pipeline was acknowledged (200) has that pipeline's jobs, every other build the default pipeline's or those;
 * - each project's build numbers are exactly 1..n;
 * - every artifact row's sha256 and size match its content, and every successful job that stores one has its artifact;
 * - every build and every job ends terminal: after the restart, with a 2 s lease, jobs orphaned `running` by a kill
 *   are taken over from the killed process;
 * - per job, one completed run, pickups and take-overs well ordered (its own log, and its build's log), and no job
 *   started before its needs had finished; per build, one start line and one `Build finished` line, with its status.
 * Runs on SQLite (a file database) and on PostgreSQL (a scratch database on TEST_DATABASE_URL, or else an own instance).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, type ScratchDatabase } from '../helper.js';
import { postgresAnswers, testDatabaseUrl } from '../pg-available.js';
import { describeServers, killServer, loginAdmin, startServer, stopServer, type ServerProcess } from '../processes.js';
import { CHAOS_PIPELINE_JOBS, chaosPipeline, DEFAULT_PIPELINE_JOBS, jobRecord, jobsByBuild, takeoverPids, terminalBuildProblems, type JobRecord } from './job-runs.js';
import { createPgInstance, pgInstanceUnavailable, type PgInstance } from './pg-instance.js';
import { probe, recordScenario, RequestTally } from './record.js';

const db = process.env.TEST_DB === 'pg' ? 'pg' : 'sqlite';
const CYCLES = 3;
const LANES = 6;
const LEASE_S = 2;
const TERMINAL = ['success', 'fail', 'canceled'];
/**
 * Claims of one job before a lost lease fails it: more than the kills, so that no job gives up because of them (a
 * job loses at most one claim to each kill): a give-up would mean a lease lost without one, and fails the scenario.
 */
const MAX_CLAIMS = CYCLES + 2;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface ProjectRow {
  id: number;
  name: string | null;
  repo: string | null;
  default_branch: string | null;
  created_at: unknown;
  updated_at: unknown;
}
interface BuildRow {
  id: number;
  project_id: number;
  number: number;
  status: string;
  logs: string;
}
interface ArtifactRow {
  build_id: number;
  job_id: number | null;
  name: string;
  sha256: string;
  size_bytes: number;
  content: Buffer;
}

/** Plain reads of the three tables, whichever the database. */
interface Reader {
  projects(): Promise<ProjectRow[]>;
  builds(): Promise<BuildRow[]>;
  /** Current jobs (no retried attempt), in build and pipeline order. */
  jobs(): Promise<JobRecord[]>;
  artifacts(): Promise<ArtifactRow[]>;
  close(): Promise<void>;
}

const JOBS_QUERY = 'select id, build_id, name, status, needs, spec, logs, started_at, finished_at from jobs where not retried order by build_id, position';

function sqliteReader(path: string): Reader {
  const handle = new BetterSqlite3(path, { readonly: true, fileMustExist: true });
  return {
    projects: async () => handle.prepare('select id, name, repo, default_branch, created_at, updated_at from projects order by id').all() as ProjectRow[],
    builds: async () => handle.prepare('select id, project_id, number, status, logs from builds order by id').all() as BuildRow[],
    jobs: async () => (handle.prepare(`${JOBS_QUERY}`).all() as Record<string, unknown>[]).map(jobRecord),
    artifacts: async () => handle.prepare('select build_id, job_id, name, sha256, size_bytes, content from artifacts').all() as ArtifactRow[],
    close: async () => void handle.close(),
  };
}

function pgReader(url: string): Reader {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  return {
    projects: async () => [...(await sql<ProjectRow[]>`select id, name, repo, default_branch, created_at, updated_at from projects order by id`)],
    builds: async () => [...(await sql<BuildRow[]>`select id, project_id, number, status, logs from builds order by id`)],
    jobs: async () => (await sql.unsafe<Record<string, unknown>[]>(JOBS_QUERY)).map(jobRecord),
    artifacts: async () => [...(await sql<ArtifactRow[]>`select build_id, job_id, name, sha256, size_bytes, content from artifacts`)],
    close: async () => sql.end({ timeout: 2 }),
  };
}

describe(`crash: kill -9 during writes (${db})`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'usine-chaos-crash-'));
  let databaseUrl = '';
  let scratch: ScratchDatabase | undefined;
  let instance: PgInstance | undefined;
  let server: ServerProcess | undefined;
  const dead: ServerProcess[] = [];

  beforeAll(async () => {
    if (db === 'sqlite') {
      databaseUrl = `sqlite:${join(dir, 'usine.db')}`;
    } else if (await postgresAnswers(testDatabaseUrl())) {
      scratch = await createScratchDatabase('pg');
      databaseUrl = scratch.url;
    } else {
      const why = pgInstanceUnavailable();
      if (why) throw new Error(`crash chaos test on PostgreSQL: ${testDatabaseUrl()} does not answer and ${why}`);
      instance = await createPgInstance();
      databaseUrl = instance.url();
    }
  }, 120_000);

  afterAll(async () => {
    if (server) await stopServer(server, 5000);
    await scratch?.drop().catch(() => undefined);
    await instance?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  // Cycle 2 runs jobs for 0.01–0.15 s (builds for 0.1–0.5 s), so that the kill leaves some `running` (orphans to take
  // over); the others are instant.
  const env = (cycle: number) => ({
    DATABASE_URL: databaseUrl,
    BUILD_TIME_SCALE: cycle === 2 ? '0.05' : '0',
    BUILD_FAIL_RATE: '0',
    BUILD_LEASE_S: String(LEASE_S),
    BUILD_MAX_ATTEMPTS: String(MAX_CLAIMS),
    BUILD_CONCURRENCY: '4',
    BUILD_QUEUE_LIMIT: '100000',
  });

  it(`keeps every acknowledged write whole and every build and job terminal across ${CYCLES} kill -9`, async () => {
    const tally = new RequestTally();
    const ackProjects = new Map<number, { name: string; repo: string }>();
    /** Projects whose PUT /projects/{id}/pipeline answered 200: each of their builds runs that pipeline. */
    const ackPipelines = new Set<number>();
    const ackBuilds = new Set<number>();
    const wrong5xx: string[] = [];
    const otherRefusals: string[] = [];
    const buildsRunningPerKill: number[] = [];
    /** Jobs left `running` by each kill, with the pid of the process killed. */
    const orphanJobs = new Map<number, number>();
    const killedPids = new Set<number>();
    let inFlightAtKill = 0;
    let projectCreates = 0;

    for (let cycle = 1; cycle <= CYCLES; cycle++) {
      server = await startServer(`crash-${db}-${cycle}`, env(cycle), undefined, 90_000);
      const base = server.url;
      const token = await loginAdmin(base);
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      const known = [...ackProjects.keys()];
      let crashed = false;

      const lane = async (laneIndex: number) => {
        for (let turn = 0; !crashed; turn++) {
          let answer;
          if (turn % 4 === 0 || known.length === 0) {
            const name = `crash-${cycle}-${laneIndex}-${turn}-${process.hrtime.bigint()}`;
            const repo = `https://example.com/${name}.git`;
            const withPipeline = projectCreates++ % 2 === 1;
            answer = await probe(`${base}/projects`, { method: 'POST', headers, body: JSON.stringify({ name, repo }) }, 15_000);
            if (answer.status === 201) {
              const id = (answer.body as { id: number }).id;
              ackProjects.set(id, { name, repo });
              if (withPipeline) {
                // Builds of it are triggered only once the pipeline is set (or the kill came first: then either).
                tally.add(answer.status);
                answer = await probe(`${base}/projects/${id}/pipeline`, { method: 'PUT', headers, body: JSON.stringify(chaosPipeline()) }, 15_000);
                if (answer.status === 200) ackPipelines.add(id);
                else if (answer.status > 0 && answer.status < 500) otherRefusals.push(`PUT /projects/${id}/pipeline: ${answer.status} ${JSON.stringify(answer.body)}`);
              }
              known.push(id);
            }
          } else {
            const projectId = known[Math.floor(Math.random() * known.length)]!;
            answer = await probe(`${base}/projects/${projectId}/builds`, { method: 'POST', headers, body: '{}' }, 15_000);
            if (answer.status === 201) ackBuilds.add((answer.body as { id: number }).id);
          }
          if (answer.status === 0) {
            if (crashed) inFlightAtKill++;
            else tally.add('error');
            if (crashed) return;
            continue;
          }
          tally.add(answer.status);
          if (answer.status >= 500) wrong5xx.push(`${answer.status} ${JSON.stringify(answer.body)}`);
        }
      };
      const lanes = Array.from({ length: LANES }, (_unused, index) => lane(index));
      // Kill at a different moment each cycle, while every lane is writing and the workers are busy.
      await sleep(1200 + cycle * 600);
      crashed = true;
      await killServer(server);
      dead.push(server);
      killedPids.add(server.pid);
      const killed = server.pid;
      server = undefined;
      await Promise.all(lanes);

      // Orphans: jobs (and so builds) left `running` by the killed process.
      const reader = db === 'sqlite' ? sqliteReader(join(dir, 'usine.db')) : pgReader(databaseUrl);
      buildsRunningPerKill.push((await reader.builds()).filter((build) => build.status === 'running').length);
      for (const job of await reader.jobs()) if (job.status === 'running') orphanJobs.set(job.id, killed);
      await reader.close();
    }

    // Restart once more and let the orphans be taken over and everything queued run.
    server = await startServer(`crash-${db}-final`, env(0), undefined, 90_000);
    const reader = db === 'sqlite' ? sqliteReader(join(dir, 'usine.db')) : pgReader(databaseUrl);
    let builds: BuildRow[] = [];
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      builds = await reader.builds();
      if (builds.every((build) => TERMINAL.includes(build.status))) break;
      await sleep(500);
    }
    const jobs = await reader.jobs();
    const projects = await reader.projects();
    const artifacts = await reader.artifacts();
    await reader.close();

    // Projects: acknowledged ones present as sent; no row half-written.
    const projectById = new Map(projects.map((project) => [project.id, project]));
    const missingProjects = [...ackProjects].filter(([id, sent]) => {
      const row = projectById.get(id);
      return !row || row.name !== sent.name || row.repo !== sent.repo;
    });
    const incompleteProjects = projects.filter(
      (project) => !project.name || !project.repo || !project.default_branch || project.created_at === null || project.updated_at === null,
    );

    // Builds: acknowledged ones present; numbers 1..n per project; all terminal.
    const buildIds = new Set(builds.map((build) => build.id));
    const missingBuilds = [...ackBuilds].filter((id) => !buildIds.has(id));
    const numbers = new Map<number, number[]>();
    for (const build of builds) numbers.set(build.project_id, [...(numbers.get(build.project_id) ?? []), build.number]);
    const badSequences = [...numbers].filter(([, list]) => list.sort((a, b) => a - b).some((number, index) => number !== index + 1));
    const notTerminal = builds.filter((build) => !TERMINAL.includes(build.status));
    const orphanBuildsOfUnknownProject = builds.filter((build) => !projectById.has(build.project_id));

    // Jobs: each build has its pipeline's (an acknowledged pipeline's, or the default one's); every run sound.
    const jobsOf = jobsByBuild(jobs);
    const sameNames = (list: readonly JobRecord[], names: readonly string[]) => list.length === names.length && list.every((job, index) => job.name === names[index]);
    const wrongJobs = builds.filter((build) => {
      const list = jobsOf.get(build.id) ?? [];
      if (ackPipelines.has(build.project_id)) return !sameNames(list, CHAOS_PIPELINE_JOBS);
      return !sameNames(list, DEFAULT_PIPELINE_JOBS) && !sameNames(list, CHAOS_PIPELINE_JOBS);
    });
    const pipelineBuilds = builds.filter((build) => sameNames(jobsOf.get(build.id) ?? [], CHAOS_PIPELINE_JOBS)).length;
    const jobsNotTerminal = jobs.filter((job) => !['success', 'fail', 'skipped', 'canceled'].includes(job.status));
    const runProblems = builds.filter((build) => TERMINAL.includes(build.status)).flatMap((build) => terminalBuildProblems(build, jobsOf.get(build.id) ?? [], killedPids));

    // Artifacts: each row sound; each successful job that stores one has it (the default pipeline's `package`).
    const badArtifacts = artifacts.filter(
      (artifact) =>
        createHash('sha256').update(artifact.content).digest('hex') !== artifact.sha256 || artifact.content.length !== artifact.size_bytes,
    );
    const withArtifact = new Set(artifacts.map((artifact) => artifact.job_id));
    const successWithoutArtifact = jobs.filter((job) => job.status === 'success' && job.artifacts && !withArtifact.has(job.id));
    const jobById = new Map(jobs.map((job) => [job.id, job]));
    // Each orphan must have been recovered through its expired lease: taken over from the process that was killed.
    const orphansNotRecovered = [...orphanJobs].filter(([id, pid]) => {
      const job = jobById.get(id);
      return !job || !takeoverPids(job, []).includes(pid);
    });
    const takenOver = jobs.filter((job) => takeoverPids(job, []).length > 0);

    // And through the API, a sample of successful builds' artifacts download whole (ETag = sha256 of the bytes).
    const token = await loginAdmin(server.url);
    const downloadProblems: string[] = [];
    for (const build of builds.filter((b) => b.status === 'success').slice(0, 10)) {
      const artifact = artifacts.find((a) => a.build_id === build.id);
      if (!artifact) continue;
      const response = await fetch(`${server.url}/builds/${build.id}/artifacts/${encodeURIComponent(artifact.name)}`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(15_000),
      });
      const bytes = Buffer.from(await response.arrayBuffer());
      const sha = createHash('sha256').update(bytes).digest('hex');
      if (response.status !== 200 || sha !== artifact.sha256) downloadProblems.push(`build ${build.id}: ${response.status}, sha ${sha}`);
    }

    const lost =
      missingProjects.length +
      incompleteProjects.length +
      missingBuilds.length +
      notTerminal.length +
      jobsNotTerminal.length +
      successWithoutArtifact.length +
      badArtifacts.length;
    const failures: string[] = [];
    if (missingProjects.length) failures.push(`${missingProjects.length} acknowledged projects missing or different: ${JSON.stringify(missingProjects.slice(0, 3))}`);
    if (incompleteProjects.length) failures.push(`${incompleteProjects.length} incomplete project rows: ${JSON.stringify(incompleteProjects.slice(0, 3))}`);
    if (missingBuilds.length) failures.push(`${missingBuilds.length} acknowledged builds missing: ${missingBuilds.slice(0, 10).join(', ')}`);
    if (badSequences.length) failures.push(`${badSequences.length} projects whose build numbers are not 1..n: ${JSON.stringify(badSequences.slice(0, 3))}`);
    if (notTerminal.length) failures.push(`${notTerminal.length} builds not terminal 120 s after the restart: ${notTerminal.slice(0, 10).map((b) => `#${b.id} ${b.status}`).join(', ')}`);
    if (jobsNotTerminal.length) failures.push(`${jobsNotTerminal.length} jobs not terminal 120 s after the restart: ${jobsNotTerminal.slice(0, 10).map((j) => `${j.id} (${j.name} of build ${j.build_id}) ${j.status}`).join(', ')}`);
    if (orphanBuildsOfUnknownProject.length) failures.push(`${orphanBuildsOfUnknownProject.length} builds of a project that does not exist`);
    if (wrongJobs.length) {
      const show = (build: BuildRow) => `#${build.id} [${(jobsOf.get(build.id) ?? []).map((job) => job.name).join(', ')}]${ackPipelines.has(build.project_id) ? ' (pipeline acknowledged)' : ''}`;
      failures.push(`${wrongJobs.length} builds without their pipeline's jobs: ${wrongJobs.slice(0, 5).map(show).join('; ')}`);
    }
    if (pipelineBuilds === 0) failures.push('no build ran the pipeline of parallel jobs: the graph was not exercised');
    if (runProblems.length) failures.push(`${runProblems.length} problems with builds' and jobs' runs: ${runProblems.slice(0, 8).join(' | ')}`);
    if (badArtifacts.length) failures.push(`${badArtifacts.length} artifact rows whose sha256/size do not match their content`);
    if (successWithoutArtifact.length) failures.push(`${successWithoutArtifact.length} successful jobs without their artifact: ${successWithoutArtifact.slice(0, 10).map((j) => `${j.id} (${j.name} of build ${j.build_id})`).join(', ')}`);
    if (downloadProblems.length) failures.push(`artifact downloads: ${downloadProblems.join('; ')}`);
    if (wrong5xx.length) failures.push(`${wrong5xx.length} 5xx answers before the kills: ${[...new Set(wrong5xx)].slice(0, 3).join(' | ')}`);
    if (otherRefusals.length) failures.push(`${otherRefusals.length} pipelines refused: ${otherRefusals.slice(0, 2).join(' | ')}`);
    if (orphanJobs.size === 0) failures.push('no job was left running by the kills: the take-over was not exercised');
    if (orphansNotRecovered.length) {
      const show = ([id, pid]: [number, number]) => `job ${id} (${jobById.get(id)?.name} of build ${jobById.get(id)?.build_id}, ${jobById.get(id)?.status}, orphaned by pid ${pid})`;
      failures.push(`${orphansNotRecovered.length} orphaned jobs not taken over from the killed process through their lease: ${orphansNotRecovered.slice(0, 10).map(show).join(', ')}`);
    }
    if (tally.errors) failures.push(`${tally.errors} requests got no answer before the kill`);
    const buildsOrphaned = buildsRunningPerKill.reduce((sum, n) => sum + n, 0);

    recordScenario({
      scenario: 'crash',
      db,
      what: `${CYCLES} × kill -9 of a server during ${LANES} lanes of project creates (every other one given a pipeline of 6 jobs, 3 of them parallel, with needs) and build triggers (jobs running, artifacts written; BUILD_TIME_SCALE 0, 0.05 in the second cycle; fail rate 0), restarted on the same ${db === 'sqlite' ? 'SQLite file' : 'PostgreSQL database'} with BUILD_LEASE_S ${LEASE_S}`,
      happened:
        failures.length === 0
          ? `all ${ackProjects.size} acknowledged projects (${ackPipelines.size} with a pipeline) and ${ackBuilds.size} acknowledged builds present and whole, build numbers 1..n, ${artifacts.length} artifacts sound; ${orphanJobs.size} jobs (of ${buildsOrphaned} builds) orphaned running by the kills, all taken over; all ${builds.length} builds (${pipelineBuilds} of the pipeline) and ${jobs.length} jobs terminal after the restart, each job run to its end once, none before its needs (${takenOver.length} taken over)`
          : failures.join('; '),
      ok: failures.length === 0,
      figures: {
        requests: tally.requests + inFlightAtKill,
        '5xx': tally.fiveXX,
        lost,
        kills: CYCLES,
        in_flight_at_kill: inFlightAtKill,
        projects_acknowledged: ackProjects.size,
        pipelines_acknowledged: ackPipelines.size,
        builds_acknowledged: ackBuilds.size,
        builds: builds.length,
        pipeline_builds: pipelineBuilds,
        jobs: jobs.length,
        builds_orphaned_running: buildsOrphaned,
        jobs_orphaned_running: orphanJobs.size,
        jobs_taken_over: takenOver.length,
        run_problems: runProblems.length,
        artifacts: artifacts.length,
        bad_artifacts: badArtifacts.length,
        bad_sequences: badSequences.length,
      },
    });

    expect(failures, `${failures.join('\n')}\n${describeServers([...dead, server]).slice(-4000)}`).toEqual([]);
  }, 400_000);
});
