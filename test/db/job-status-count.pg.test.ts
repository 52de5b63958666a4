/**
 * job_status_count on PostgreSQL under concurrency (migration 0012): the counts stay equal to the jobs table however
 * many transactions change jobs at once, and counting never deadlocks a transaction that changes several jobs against
 * a worker's claim, the pattern the job engine runs (a build's transaction takes its build's lock, then changes its
 * jobs one statement after another; a claim, one statement, locks a queued job without its build's lock).
 */
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { injectAs, uniqueName, useTestApp } from '../helper.js';

type Sql = postgres.Sql;

const STATUSES = ['created', 'queued', 'running', 'success', 'fail', 'canceled', 'skipped', 'manual'] as const;

describe('job_status_count under concurrency (pg)', () => {
  const ctx = useTestApp({ BUILD_CONCURRENCY: '0' });
  const clients: Sql[] = [];
  const connect = () => {
    const client = postgres(ctx.databaseUrl, { max: 1, onnotice: () => {} });
    clients.push(client);
    return client;
  };
  let builds: number[] = [];

  beforeAll(async () => {
    const project = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: '/projects', payload: { name: uniqueName('Counts'), repo: 'https://github.com/demo/counts' } });
    expect(project.statusCode, project.body).toBe(201);
    const { id } = project.json<{ id: number }>();
    // The default pipeline: four jobs per build, left as triggered (no workers).
    for (let i = 0; i < 12; i++) {
      const response = await injectAs(ctx.app, ctx.adminToken, { method: 'POST', url: `/projects/${id}/builds` });
      expect(response.statusCode, response.body).toBe(201);
      builds.push(response.json<{ id: number }>().id);
    }
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.end({ timeout: 5 })));
  });

  async function truth(sql: Sql): Promise<Record<string, number>> {
    const rows = await sql<{ status: string; n: number }[]>`select status, count(*)::int as n from jobs where not retried group by status`;
    const counts: Record<string, number> = Object.fromEntries(STATUSES.map((status) => [status, 0]));
    for (const row of rows) counts[row.status] = row.n;
    return counts;
  }

  const jobIdsOf = async (sql: Sql, buildId: number | undefined) =>
    (await sql<{ id: number }[]>`select id from jobs where build_id = ${buildId ?? 0} and not retried order by id`).map((row) => row.id);

  it('lets a transaction that changes several jobs and a claim of one of them, on backends sharing a count slot, both commit', async () => {
    // Two connections whose backends share a slot (pid % 16): among 17 there are two.
    const candidates = Array.from({ length: 17 }, connect);
    const pids = await Promise.all(candidates.map(async (client) => (await client<{ pid: number }[]>`select pg_backend_pid() as pid`)[0]?.pid ?? 0));
    const first = pids.findIndex((pid, i) => pids.findIndex((other) => other % 16 === pid % 16) !== i);
    const partner = pids.findIndex((pid) => pid % 16 === (pids[first] ?? -1) % 16);
    const [owner, claimer] = [candidates[partner], candidates[first]];
    if (!owner || !claimer || first === partner) throw new Error(`no two backends share a slot: ${pids.join(', ')}`);

    // A build of 20 jobs (16 of them queued for claims): two of them, k and j, have ids 16 apart (were the slot the job's id % 16, as 0008's is the
    // build's, they would share it too).
    await owner`insert into jobs (build_id, position, name, stage, needs, "when", allow_failure, spec, status)
      select ${builds[0] ?? 0}, 10 + i, 'extra ' || i, 'test', '[]', 'on_success', false, '{}', 'queued' from generate_series(1, 16) as i`;
    const ids = await jobIdsOf(owner, builds[0]);
    const k = ids[0];
    const j = ids.find((id) => id !== k && id % 16 === (k ?? 0) % 16);
    if (k === undefined || j === undefined) throw new Error(`no two jobs of build ${builds[0]} have ids 16 apart: ${ids.join(', ')}`);
    // The build's transaction changes job k, then job j, which a claim (on the other backend) holds in between.
    let claimed: Promise<unknown> | undefined;
    await owner.begin(async (tx) => {
      await tx`select id from builds where id = ${builds[0] ?? 0} for update`;
      await tx`update jobs set status = 'canceled' where id = ${k}`;
      claimed = claimer`update jobs set status = 'running' where id = ${j} and status = 'queued'`.then(() => 'claimed');
      // Long enough for the claim to take j's row (and, were the count row locked at once, to wait for it).
      await new Promise((resolve) => setTimeout(resolve, 300));
      await tx`update jobs set status = 'skipped' where id = ${j}`;
    });
    expect(await claimed).toBe('claimed');
    const statuses = await owner<{ id: number; status: string }[]>`select id, status from jobs where id in (${k}, ${j}) order by id`;
    expect(statuses).toEqual([
      { id: k, status: 'canceled' },
      { id: j, status: 'skipped' },
    ]);
    expect(await ctx.app.jobsRepository.countByStatus()).toEqual(await truth(owner));
  });

  it('stays equal to the jobs table after many concurrent transactions and claims, none of them failing', async () => {
    const workers = Array.from({ length: 6 }, connect);
    const random = (n: number) => Math.floor(Math.random() * n);
    const pick = <T>(items: readonly T[]): T => items[random(items.length)] as T;
    const errors: unknown[] = [];

    /** As the engine changes a build's jobs: its lock, then statements changing a few of its jobs' statuses; a retry now and then. */
    async function buildTransaction(sql: Sql) {
      const buildId = pick(builds);
      await sql.begin(async (tx) => {
        await tx`select id from builds where id = ${buildId} for update`;
        const ids = (await tx<{ id: number }[]>`select id from jobs where build_id = ${buildId} and not retried order by id`).map((row) => row.id);
        for (let step = 0; step < 3; step++) {
          const some = ids.filter(() => Math.random() < 0.5);
          if (some.length > 0) await tx`update jobs set status = ${pick(STATUSES)} where id in ${tx(some)}`;
        }
        if (Math.random() < 0.2 && ids.length > 0) {
          // A retry: the old attempt steps aside, a new one is queued.
          const old = pick(ids);
          const [row] = await tx<{ position: number; name: string; attempt: number }[]>`
            update jobs set retried = true where id = ${old} returning position, name, attempt`;
          if (row) {
            await tx`insert into jobs (build_id, position, name, stage, needs, "when", allow_failure, spec, status, attempt, retry_of)
              values (${buildId}, ${row.position}, ${row.name}, 'test', '[]', 'on_success', false, '{}', 'queued', ${row.attempt + 1}, ${old})`;
          }
        }
      });
    }

    /** As a worker claims: one statement on one queued job, without the build's lock. */
    async function claim(sql: Sql) {
      await sql`update jobs set status = 'running' where id = (select id from jobs where status = 'queued' order by random() limit 1 for update skip locked)`;
    }

    await Promise.all(
      workers.map(async (sql, index) => {
        for (let round = 0; round < 40; round++) {
          try {
            await (index % 3 === 0 ? claim(sql) : buildTransaction(sql));
            // Now and then every job of a build set back to queued (under its build's lock), for the claims to find some.
            if (round % 10 === 0) {
              const buildId = pick(builds);
              await sql.begin(async (tx) => {
                await tx`select id from builds where id = ${buildId} for update`;
                await tx`update jobs set status = 'queued' where build_id = ${buildId} and not retried`;
              });
            }
          } catch (error) {
            errors.push(error);
          }
        }
      }),
    );
    expect(errors).toEqual([]);
    const counts = await truth(workers[0] as Sql);
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(builds.length * 4 + 16);
    expect(await ctx.app.jobsRepository.countByStatus()).toEqual(counts);
  });

  it('follows rows deleted with their builds, and a truncate', async () => {
    const sql = connect();
    const doomed = builds.slice(0, 3);
    builds = builds.slice(3);
    await sql`delete from builds where id in ${sql(doomed)}`;
    expect(await ctx.app.jobsRepository.countByStatus()).toEqual(await truth(sql));
    await sql`truncate jobs cascade`;
    expect(await ctx.app.jobsRepository.countByStatus()).toEqual(Object.fromEntries(STATUSES.map((status) => [status, 0])));
  });
});
