/**
 * The job engine across real processes (PostgreSQL only): three servers share one database,
 * builds whose pipelines have parallel jobs and a job that needs all of them are triggered through all three, and one
 * server is SIGKILLed while it runs jobs. Every job and build must end, no job's run complete twice, every dependent be
 * released once, and the killed server's jobs be taken over by the survivors once their lease expires. Then a build
 * canceled through one survivor stops its jobs running on the other within a second.
 */
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, testDb, uniqueName, type ScratchDatabase } from './helper.js';
import { apiClient, describeServers, killServer, loginAdmin, mapLimit, startServers, stopServer, type ApiClient, type ServerProcess } from './processes.js';

const SERVERS = 3;
const BUILDS = 24;
const DRAIN_TIMEOUT_MS = 45_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Each build: a compile, four e2e copies and a lint at once, then a report that needs them all. */
const PIPELINE = {
  stages: ['build', 'test', 'report'],
  jobs: {
    compile: { stage: 'build', duration_s: [2, 4] },
    e2e: { stage: 'test', needs: ['compile'], parallel: 4, duration_s: [4, 8] },
    lint: { stage: 'test', needs: [], duration_s: [1, 3] },
    report: { stage: 'report', duration_s: [1, 2] },
  },
};
const JOBS_PER_BUILD = 7;

interface JobRecord {
  id: number;
  build_id: number;
  name: string;
  status: string;
  claims: number;
  logs: string;
}

const count = (text: string, needle: string) => text.split(needle).length - 1;

describe.skipIf(testDb !== 'pg')('job engine across three server processes on one PostgreSQL database', () => {
  let scratch: ScratchDatabase | undefined;
  let servers: ServerProcess[] = [];
  let clients: ApiClient[] = [];
  let sql: postgres.Sql | undefined;
  const projectIds: number[] = [];
  const diagnostics = () => describeServers(servers).slice(-16_000);

  beforeAll(async () => {
    scratch = await createScratchDatabase('pg');
    servers = await startServers(
      SERVERS,
      {
        DATABASE_URL: scratch.url,
        BUILD_CONCURRENCY: '3',
        BUILD_TIME_SCALE: '0.05',
        BUILD_LEASE_S: '2',
        BUILD_FAIL_RATE: '0',
        BUILD_MAX_ATTEMPTS: '5',
        BUILD_QUEUE_LIMIT: '10000',
        BUILD_DRAIN_S: '1',
      },
      'usine-jobs',
    );
    const token = await loginAdmin(servers[0]!.url);
    clients = servers.map((server) => apiClient(server.url, token));
    for (let index = 0; index < 2; index++) {
      const project = await clients[index]!.expect<{ id: number }>(201, 'POST', '/projects', {
        name: uniqueName('jobs-multiprocess'),
        repo: `https://github.com/demo/jobs-${index}`,
      });
      await clients[index]!.expect(200, 'PUT', `/projects/${project.id}/pipeline`, PIPELINE);
      projectIds.push(project.id);
    }
    sql = postgres(scratch.url, { max: 2, onnotice: () => {} });
  });

  afterAll(async () => {
    await sql?.end({ timeout: 2 });
    await Promise.all(servers.map((server) => stopServer(server, 5000)));
    await scratch?.drop();
  });

  it('ends every job and build, runs no job to completion twice, releases every dependent once, takes over the killed jobs', async () => {
    const db = sql!;
    await mapLimit(
      Array.from({ length: BUILDS }, (_, index) => index),
      4 * SERVERS,
      async (index) => clients[index % SERVERS]!.expect(201, 'POST', `/projects/${projectIds[index % projectIds.length]}/builds`),
    );

    // Kill the last server once it runs jobs of several builds.
    const victim = servers[SERVERS - 1]!;
    const victimOwner = `%:${victim.pid}:%`;
    const killDeadline = Date.now() + 20_000;
    for (;;) {
      const [row] = await db<{ running: number }[]>`
        select count(*)::int as running from jobs where status = 'running' and lease_owner like ${victimOwner}`;
      if ((row?.running ?? 0) >= 2) break;
      if (Date.now() > killDeadline) throw new Error(`never saw the victim (pid ${victim.pid}) run 2 jobs\n${diagnostics()}`);
      await sleep(25);
    }
    const killedAt = Date.now();
    expect((await killServer(victim)).signal).toBe('SIGKILL');

    // Wait (bounded) until no build is queued or running.
    for (;;) {
      const [row] = await db<{ active: number }[]>`select count(*)::int as active from builds where status in ('queued', 'running')`;
      const active = row?.active ?? 0;
      if (active === 0) break;
      if (Date.now() - killedAt > DRAIN_TIMEOUT_MS) throw new Error(`${active} builds still active ${DRAIN_TIMEOUT_MS} ms after the kill\n${diagnostics()}`);
      await sleep(200);
    }

    const builds = await db<{ id: number; status: string; logs: string }[]>`select id, status, logs from builds`;
    const jobs = await db<JobRecord[]>`select id, build_id, name, status, claims, logs from jobs where not retried order by build_id, position`;
    const problems: string[] = [];
    expect(builds).toHaveLength(BUILDS);
    expect(jobs).toHaveLength(BUILDS * JOBS_PER_BUILD);
    for (const build of builds) {
      if (build.status !== 'success') problems.push(`build ${build.id}: ${build.status}`);
      if (count(build.logs, 'Build finished:') !== 1) problems.push(`build ${build.id}: ${count(build.logs, 'Build finished:')} "Build finished" lines`);
    }
    let takenOver = 0;
    for (const job of jobs) {
      const where = `job ${job.id} (${job.name} of build ${job.build_id})`;
      if (job.status !== 'success') problems.push(`${where}: ${job.status}\n${job.logs}`);
      // Completed once: one last line, whatever happened before (take-overs).
      if (count(job.logs, 'Job succeeded in') !== 1) problems.push(`${where}: ${count(job.logs, 'Job succeeded in')} "Job succeeded" lines\n${job.logs}`);
      // Every claim left its line, and a claim follows a release or a take-over.
      const pickups = count(job.logs, ') picked up by ');
      const handedBack = count(job.logs, 'stopped renewing its lease') + count(job.logs, 'is shutting down');
      if (pickups !== job.claims || pickups !== handedBack + 1) problems.push(`${where}: ${pickups} pickups, ${job.claims} claims, ${handedBack} hand-backs\n${job.logs}`);
      if (job.logs.includes(`:${victim.pid}:`) && count(job.logs, 'stopped renewing its lease') > 0) takenOver++;
    }
    // The report job waited for all six others: it started after each of them finished (released once, at the end).
    const order = await db<{ build_id: number; late: number }[]>`
      select r.build_id, count(*)::int as late from jobs r join jobs o on o.build_id = r.build_id and o.name <> 'report' and not o.retried
      where r.name = 'report' and not r.retried and o.finished_at > r.started_at group by r.build_id`;
    for (const row of order) problems.push(`build ${row.build_id}: report started before ${row.late} of its needs finished`);
    expect(problems, `${problems.slice(0, 10).join('\n\n')}\n${diagnostics()}`).toEqual([]);
    expect(takenOver, 'some of the killed server’s jobs were taken over').toBeGreaterThan(0);
  }, 90_000);

  it('cancels a build through one replica and stops its jobs running on the other within a second', async () => {
    const db = sql!;
    // The survivors: three workers each, and six copies of a long job, so that both run some of them.
    const survivors = servers.filter((server) => server.alive());
    expect(survivors).toHaveLength(2);
    const [front, other] = [clients[0]!, clients[1]!];
    const project = await front.expect<{ id: number }>(201, 'POST', '/projects', { name: uniqueName('jobs-cancel'), repo: 'https://github.com/demo/cancel' });
    await front.expect(200, 'PUT', `/projects/${project.id}/pipeline`, { stages: ['test'], jobs: { soak: { stage: 'test', parallel: 6, duration_s: [400, 400] } } });
    const build = await front.expect<{ id: number }>(201, 'POST', `/projects/${project.id}/builds`);

    const deadline = Date.now() + 20_000;
    let owners: string[];
    for (;;) {
      const rows = await db<{ lease_owner: string }[]>`select lease_owner from jobs where build_id = ${build.id} and status = 'running'`;
      owners = rows.map((row) => row.lease_owner);
      if (owners.length === 6) break;
      if (Date.now() > deadline) throw new Error(`only ${owners.length} of 6 copies running\n${diagnostics()}`);
      await sleep(25);
    }
    const pids = new Set(owners.map((owner) => Number(owner.split(':').at(-2))));
    expect(pids).toEqual(new Set(survivors.map((server) => server.pid)));

    // Through the first replica; half of the jobs run on the other, which hears of it through PostgreSQL.
    const canceledAt = Date.now();
    await front.expect(200, 'POST', `/builds/${build.id}/cancel`);
    const busy = async (client: ApiClient) => (await client.expect<{ workers: { busy: number } }>(200, 'GET', '/status')).workers.busy;
    for (;;) {
      if ((await busy(front)) === 0 && (await busy(other)) === 0) break;
      // A second of scaled time is 50 ms here: a second of wall time is plenty, on a loaded box too.
      if (Date.now() - canceledAt > 1000) throw new Error(`workers still busy ${Date.now() - canceledAt} ms after the cancel\n${diagnostics()}`);
      await sleep(20);
    }
    const after = await db<{ status: string; logs: string }[]>`select status, logs from jobs where build_id = ${build.id} order by position`;
    expect(after.map((job) => job.status)).toEqual(Array(6).fill('canceled'));
    // Nothing is written once canceled: the logs a little later are the logs now.
    await sleep(500);
    const later = await db<{ logs: string }[]>`select logs from jobs where build_id = ${build.id} order by position`;
    expect(later.map((job) => job.logs)).toEqual(after.map((job) => job.logs));
    const [row] = await db<{ status: string }[]>`select status from builds where id = ${build.id}`;
    expect(row?.status).toBe('canceled');
  }, 60_000);
});
