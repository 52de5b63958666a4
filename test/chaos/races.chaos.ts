/**
 * Races: each must settle with one clear winner and consistent data, on SQLite and on PostgreSQL.
 *  - concurrent creates of one project name: one 201, the rest 409, one row;
 *  - cancels fired at random moments at builds running (one project with the default pipeline, one with parallel jobs
 *    and needs, test/chaos/job-runs.ts): every build ends either canceled with no `Build finished` line and no job
 *    line after its cancel line, or success|fail with exactly one, and the cancel's answer agrees with the outcome;
 *    every job ends terminal with one completed run at most (none when canceled), never before its needs finished;
 *    artifacts belong to successful jobs of successful builds only;
 *  - a retry storm (50 concurrent retries of one finished build of a pipeline): distinct builds, numbers without gaps,
 *    queue cap held, each retry planned with the original's jobs, once;
 *  - 20 concurrent refreshes with one refresh token: at most one 200, then the whole family is dead (the winner's too);
 *  - a user deleted while requests with its token are in flight: each answers as that user or 401, never 5xx; all 401
 *    after the delete.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createServer } from '../../src/server.js';
import { bearer, createScratchDatabase, injectAs, login, testConfig, testDb, waitForBuild } from '../helper.js';
import { CHAOS_PIPELINE_JOBS, chaosPipeline, jobRecord, jobsByBuild, terminalBuildProblems } from './job-runs.js';
import { recordScenario } from './record.js';

/** A database several apps can open in turn: a temporary SQLite file, or a scratch PostgreSQL database. */
async function sharedDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  if (testDb === 'pg') return createScratchDatabase('pg');
  const dir = mkdtempSync(join(tmpdir(), 'usine-races-'));
  return { url: `sqlite:${join(dir, 'races.db')}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
}

const cleanups: (() => Promise<void>)[] = [];
async function startApp(url: string, env: Record<string, string>): Promise<FastifyInstance> {
  const app = await createServer(testConfig(url, { UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0', ...env }), { logger: false });
  await app.ready();
  cleanups.push(() => app.close());
  return app;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const count = (responses: LightMyRequestResponse[], status: number) => responses.filter((r) => r.statusCode === status).length;
const fiveXx = (responses: LightMyRequestResponse[]) => responses.filter((r) => r.statusCode >= 500).length;

describe(`races settle with one winner (${testDb})`, () => {
  let scratch: { url: string; drop(): Promise<void> } | undefined;

  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()?.();
    await scratch?.drop();
    scratch = undefined;
  });
  afterAll(async () => {
    while (cleanups.length) await cleanups.pop()?.();
  });

  it('concurrent creates of one project name: one 201, the others 409, one row', async () => {
    scratch = await sharedDatabase();
    const app = await startApp(scratch.url, { BUILD_CONCURRENCY: '0' });
    const admin = await login(app);
    const ROUNDS = 5;
    const CONCURRENCY = 20;
    let created = 0;
    let conflicts = 0;
    let errors = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const name = `race-${round}`;
      const responses = await Promise.all(
        Array.from({ length: CONCURRENCY }, (_, i) =>
          injectAs(app, admin, { method: 'POST', url: '/projects', payload: { name, repo: `https://example.com/${round}/${i}.git` } }),
        ),
      );
      created += count(responses, 201);
      conflicts += count(responses, 409);
      errors += fiveXx(responses);
      expect(count(responses, 201), `round ${round}: ${responses.map((r) => r.statusCode).join(',')}`).toBe(1);
      expect(count(responses, 409)).toBe(CONCURRENCY - 1);
      for (const response of responses.filter((r) => r.statusCode === 409)) expect(response.json<{ error: string }>().error).toBe('conflict');
      const listed = await injectAs(app, admin, { method: 'GET', url: `/projects?q=${name}&per_page=100` });
      expect(listed.json<{ items: { name: string }[] }>().items.filter((p) => p.name === name)).toHaveLength(1);
    }
    recordScenario({
      scenario: 'race-same-name-project',
      db: testDb,
      what: `${ROUNDS} rounds of ${CONCURRENCY} concurrent POST /projects with one name.`,
      happened: `Each round: one 201, ${CONCURRENCY - 1} 409 conflict, one row.`,
      ok: errors === 0,
      figures: { requests: ROUNDS * CONCURRENCY, '5xx': errors, created, conflicts, rounds: ROUNDS },
    });
  });

  // At BUILD_TIME_SCALE=0 on SQLite a whole run happens without yielding to the event loop (better-sqlite3 is
  // synchronous), so no cancel can land mid-run there; 0.002 (runs of 4–20 ms) makes the race real on both databases.
  it.each(['0', '0.002'])('cancels racing completion at BUILD_TIME_SCALE=%s: canceled with no "Build finished" line, or finished with exactly one', async (scale) => {
    scratch = await sharedDatabase();
    const app = await startApp(scratch.url, { BUILD_CONCURRENCY: '3', BUILD_TIME_SCALE: scale, BUILD_QUEUE_LIMIT: '1000', BUILD_FAIL_RATE: '0.5' });
    const admin = await login(app);
    const projects: number[] = [];
    for (const name of ['cancel-a', 'cancel-b']) {
      projects.push((await injectAs(app, admin, { method: 'POST', url: '/projects', payload: { name, repo: 'https://example.com/c.git' } })).json<{ id: number }>().id);
    }
    // cancel-a runs the default pipeline (4 jobs in a row), cancel-b parallel jobs with needs (each failing 10 % of runs).
    const pipeline = await injectAs(app, admin, { method: 'PUT', url: `/projects/${projects[1]}/pipeline`, payload: chaosPipeline(0.1) });
    expect(pipeline.statusCode, pipeline.body).toBe(200);
    const BUILDS = 60;
    const ids: number[] = [];
    // All triggered at once, so a queue forms before the 3 workers: each cancel then lands on a queued, a running or a
    // finished build, depending on its delay (0–24 ms, spread evenly).
    const cancels = Array.from({ length: BUILDS }, async (_, i) => {
      const trigger = await injectAs(app, admin, { method: 'POST', url: `/projects/${projects[i % 2]}/builds` });
      expect(trigger.statusCode).toBe(201);
      const id = trigger.json<{ id: number }>().id;
      ids.push(id);
      await sleep((i * 7) % 25);
      return { id, response: await injectAs(app, admin, { method: 'POST', url: `/builds/${id}/cancel` }) };
    });
    const answers = await Promise.all(cancels);
    const outcomes: Record<string, number> = {};
    const inconsistencies: string[] = [];
    const ended: { id: number; number: number; status: string; logs: string }[] = [];
    for (const { id, response } of answers) {
      const build = await waitForBuild<{ id: number; number: number; status: string; logs: string }>(app, admin, id, { timeoutMs: 60_000 });
      ended.push(build);
      outcomes[build.status] = (outcomes[build.status] ?? 0) + 1;
      if (response.statusCode === 200 && build.status !== 'canceled') inconsistencies.push(`cancel of ${id} answered 200 but the build ended ${build.status}`);
      if (response.statusCode === 409 && build.status === 'canceled') inconsistencies.push(`cancel of ${id} answered 409 but the build ended canceled`);
      if (![200, 409].includes(response.statusCode)) inconsistencies.push(`cancel of ${id} answered ${response.statusCode}: ${response.body.slice(0, 200)}`);
    }
    // Each build's own lines (one `Build finished`, or none and nothing after the cancel line), each job's runs (its own
    // log and the build's; a canceled one completed none), every job terminal, none started before its needs finished.
    const { jobs } = app.database.tables;
    const jobRows = (await app.database.db.select().from(jobs)).filter((row) => !row.retried).map((row) => jobRecord(row));
    const jobsOf = jobsByBuild(jobRows);
    for (const build of ended) inconsistencies.push(...terminalBuildProblems(build, jobsOf.get(build.id) ?? []));
    const pipelineBuilds = ended.filter((build) => (jobsOf.get(build.id) ?? []).length === CHAOS_PIPELINE_JOBS.length).length;
    // Jobs stopped mid-run by their build's cancel: the race on jobs, not only on builds.
    const canceledRunning = jobRows.filter((job) => job.status === 'canceled' && job.started_at !== null).length;
    // Artifacts belong to successful jobs of successful builds only: in the database, and as the API lists them.
    for (const { id } of answers) {
      const listed = await injectAs(app, admin, { method: 'GET', url: `/builds/${id}/artifacts` });
      const build = await injectAs(app, admin, { method: 'GET', url: `/builds/${id}` });
      const items = listed.json<{ items?: { name: string }[] }>().items ?? [];
      if (build.json<{ status: string }>().status !== 'success' && items.length) {
        inconsistencies.push(`GET /builds/${id}/artifacts lists ${items.map((a) => a.name).join(', ')} for a ${build.json<{ status: string }>().status} build`);
      }
    }
    const { artifacts, builds } = app.database.tables;
    const artifactRows = await app.database.db.select({ build_id: artifacts.build_id, job_id: artifacts.job_id }).from(artifacts);
    const buildRows = await app.database.db.select({ id: builds.id, status: builds.status }).from(builds);
    for (const row of artifactRows) {
      const status = buildRows.find((b) => b.id === row.build_id)?.status;
      if (status !== 'success') inconsistencies.push(`artifact of build ${row.build_id}, which is ${status}`);
      const job = jobRows.find((j) => j.id === row.job_id);
      if (job?.status !== 'success') inconsistencies.push(`artifact of build ${row.build_id} stored by job ${row.job_id} (${job?.name}), which is ${job?.status}`);
    }
    recordScenario({
      scenario: `race-cancel-vs-completion-scale-${scale}`,
      db: testDb,
      what: `${BUILDS} builds triggered at once at BUILD_TIME_SCALE=${scale} on 3 workers (half of them of a pipeline of 6 jobs, 3 of them parallel, with needs; half of the default 4-job one), each canceled 0–24 ms after its trigger answered.`,
      happened: inconsistencies.length
        ? inconsistencies.slice(0, 5).join('; ')
        : `Every build ended one way: ${JSON.stringify(outcomes)}; cancel answers agreed with the outcome; every job terminal, run to its end once at most (${canceledRunning} stopped mid-run by a cancel), none before its needs.`,
      ok: inconsistencies.length === 0 && answers.every((a) => a.response.statusCode < 500),
      figures: {
        builds: BUILDS,
        requests: BUILDS * 2,
        '5xx': answers.filter((a) => a.response.statusCode >= 500).length,
        cancel_200: answers.filter((a) => a.response.statusCode === 200).length,
        cancel_409: answers.filter((a) => a.response.statusCode === 409).length,
        inconsistencies: inconsistencies.length,
        lost: ids.length - Object.values(outcomes).reduce((a, b) => a + b, 0),
        pipeline_builds: pipelineBuilds,
        jobs: jobRows.length,
        jobs_canceled_mid_run: canceledRunning,
        ...Object.fromEntries(Object.entries(outcomes).map(([status, n]) => [`ended_${status}`, n])),
      },
    });
    expect(inconsistencies).toEqual([]);
    expect(pipelineBuilds).toBe(BUILDS / 2);
    // Both sides of the race were exercised (but see above for SQLite at scale 0).
    if (scale !== '0' || testDb === 'pg') expect(outcomes.canceled ?? 0).toBeGreaterThan(0);
  });

  it('a retry storm: 50 concurrent retries of one finished build make distinct builds, gap-free numbers, queue cap held, each with the original\'s jobs', async () => {
    scratch = await sharedDatabase();
    const maker = await startApp(scratch.url, { BUILD_CONCURRENCY: '1', BUILD_TIME_SCALE: '0' });
    let admin = await login(maker);
    const project = (await injectAs(maker, admin, { method: 'POST', url: '/projects', payload: { name: 'storm', repo: 'https://example.com/s.git' } })).json<{ id: number }>();
    // A pipeline of parallel jobs with needs: each retry is planned with the original's snapshot of it.
    expect((await injectAs(maker, admin, { method: 'PUT', url: `/projects/${project.id}/pipeline`, payload: chaosPipeline() })).statusCode).toBe(200);
    const original = (await injectAs(maker, admin, { method: 'POST', url: `/projects/${project.id}/builds` })).json<{ id: number }>();
    await waitForBuild(maker, admin, original.id);
    await maker.close();
    cleanups.pop();

    const QUEUE_LIMIT = 30;
    const STORM = 50;
    const app = await startApp(scratch.url, { BUILD_CONCURRENCY: '0', BUILD_QUEUE_LIMIT: String(QUEUE_LIMIT) });
    admin = await login(app);
    const responses = await Promise.all(Array.from({ length: STORM }, () => injectAs(app, admin, { method: 'POST', url: `/builds/${original.id}/retry` })));
    const created = responses.filter((r) => r.statusCode === 201).map((r) => r.json<{ id: number; number: number; retry_of: number; status: string }>());
    const refused = responses.filter((r) => r.statusCode !== 201);
    const page = (await injectAs(app, admin, { method: 'GET', url: `/projects/${project.id}/builds?per_page=100` })).json<{ items: { id: number; number: number; status: string }[]; total: number }>();
    const numbers = page.items.map((b) => b.number).sort((a, b) => a - b);
    const queued = page.items.filter((b) => b.status === 'queued').length;
    // Each retry has the original's jobs, once each, in their first status (no worker runs them): those without
    // needs queued, the others waiting.
    const badPlans: string[] = [];
    for (const build of created) {
      const items = (await injectAs(app, admin, { method: 'GET', url: `/builds/${build.id}/jobs` })).json<{ items: { name: string; needs: string[]; status: string }[] }>().items;
      const names = items.map((job) => job.name);
      if (names.join('|') !== CHAOS_PIPELINE_JOBS.join('|')) badPlans.push(`build ${build.id}: jobs [${names.join(', ')}]`);
      const wrong = items.filter((job) => job.status !== (job.needs.length === 0 ? 'queued' : 'created'));
      if (wrong.length) badPlans.push(`build ${build.id}: ${wrong.map((job) => `${job.name} ${job.status}`).join(', ')}`);
    }
    recordScenario({
      scenario: 'race-retry-storm',
      db: testDb,
      what: `${STORM} concurrent POST /builds/:id/retry of one finished build (a pipeline of ${CHAOS_PIPELINE_JOBS.length} jobs, 3 of them parallel, with needs), BUILD_QUEUE_LIMIT=${QUEUE_LIMIT}, no workers.`,
      ok: fiveXx(responses) === 0 && created.length === QUEUE_LIMIT && refused.every((r) => r.statusCode === 429) && badPlans.length === 0,
      happened: `${created.length} retries created (distinct ids: ${new Set(created.map((b) => b.id)).size}), ${refused.length} refused (${[...new Set(refused.map((r) => r.statusCode))].join(', ')}); build numbers ${numbers[0]}–${numbers.at(-1)} for ${numbers.length} builds; ${queued} queued; ${badPlans.length ? `retries planned wrong: ${badPlans.slice(0, 3).join('; ')}` : `each planned with the original's ${CHAOS_PIPELINE_JOBS.length} jobs`}.`,
      figures: {
        requests: STORM,
        '5xx': fiveXx(responses),
        created: created.length,
        refused_429: count(responses, 429),
        refused_other: refused.length - count(responses, 429),
        distinct_ids: new Set(created.map((b) => b.id)).size,
        builds_total: page.total,
        queued,
        number_gaps: numbers.length ? numbers.at(-1)! - numbers.length : 0,
        badly_planned: badPlans.length,
      },
    });
    expect(fiveXx(responses)).toBe(0);
    expect(created.length).toBe(QUEUE_LIMIT);
    for (const response of refused) {
      expect(response.statusCode).toBe(429);
      expect(response.json<{ error: string }>().error).toBe('rate_limited');
      expect(response.headers['retry-after']).toBeDefined();
    }
    expect(new Set(created.map((b) => b.id)).size).toBe(created.length);
    for (const build of created) expect(build).toMatchObject({ retry_of: original.id, status: 'queued' });
    expect(numbers).toEqual(Array.from({ length: numbers.length }, (_, i) => i + 1));
    expect(page.total).toBe(QUEUE_LIMIT + 1);
    expect(queued).toBeLessThanOrEqual(QUEUE_LIMIT);
    expect(badPlans).toEqual([]);
  });

  it('20 concurrent refreshes with one token: at most one 200, and then the whole family is revoked', async () => {
    scratch = await sharedDatabase();
    const app = await startApp(scratch.url, { BUILD_CONCURRENCY: '0' });
    const ROUNDS = 3;
    const CONCURRENCY = 20;
    let winners = 0;
    let all: LightMyRequestResponse[] = [];
    const leaks: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const session = (await app.inject({ method: 'POST', url: '/login', payload: { username: 'admin', password: 'admin123' } })).json<{ access_token: string; refresh_token: string }>();
      const responses = await Promise.all(
        Array.from({ length: CONCURRENCY }, () => app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: session.refresh_token } })),
      );
      all = all.concat(responses);
      const ok = responses.filter((r) => r.statusCode === 200);
      winners += ok.length;
      expect(ok.length, `round ${round}: ${responses.map((r) => r.statusCode).join(',')}`).toBeLessThanOrEqual(1);
      for (const response of responses.filter((r) => r.statusCode !== 200)) {
        expect(response.statusCode).toBe(401);
        expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      }
      // The family is gone: the first access token, and the winner's new pair.
      if ((await app.inject({ method: 'GET', url: '/me', headers: bearer(session.access_token) })).statusCode !== 401) leaks.push(`round ${round}: the original access token still works`);
      for (const winner of ok) {
        const pair = winner.json<{ access_token: string; refresh_token: string }>();
        const me = await app.inject({ method: 'GET', url: '/me', headers: bearer(pair.access_token) });
        if (me.statusCode !== 401) leaks.push(`round ${round}: the winner's access token answers ${me.statusCode}`);
        const again = await app.inject({ method: 'POST', url: '/token/refresh', payload: { refresh_token: pair.refresh_token } });
        if (again.statusCode !== 401) leaks.push(`round ${round}: the winner's refresh token answers ${again.statusCode}`);
      }
    }
    recordScenario({
      scenario: 'race-refresh-reuse',
      db: testDb,
      what: `${ROUNDS} rounds of ${CONCURRENCY} concurrent POST /token/refresh with one refresh token.`,
      happened: leaks.length ? leaks.join('; ') : `${winners} winner(s) in ${ROUNDS} rounds (at most one each); every other answer 401; after each round the whole family, winner included, was dead.`,
      ok: leaks.length === 0 && fiveXx(all) === 0,
      figures: { requests: all.length, '5xx': fiveXx(all), winners, refused_401: count(all, 401), family_leaks: leaks.length, rounds: ROUNDS },
    });
    expect(fiveXx(all)).toBe(0);
    expect(leaks).toEqual([]);
  });

  it('a user deleted while its token is in use: each answer is that user or 401, never 5xx; all 401 after', async () => {
    scratch = await sharedDatabase();
    const app = await startApp(scratch.url, { BUILD_CONCURRENCY: '0' });
    const admin = await login(app);
    await injectAs(app, admin, { method: 'POST', url: '/projects', payload: { name: 'victim-sees', repo: 'https://example.com/v.git' } });
    const ROUNDS = 3;
    const LANES = 6;
    const figures = { requests: 0, '5xx': 0, as_user: 0, unauthorized: 0, other: 0, after_delete_not_401: 0 };
    const oddities: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const username = `victim-${round}`;
      const user = (await injectAs(app, admin, { method: 'POST', url: '/users', payload: { username, password: 'victim-password', role: 'maintainer' } })).json<{ id: number }>();
      const token = await login(app, username, 'victim-password');
      let deleted = false;
      const lane = async (lane: number) => {
        while (!deleted) {
          const url = ['/me', '/projects', '/projects/1', '/projects/1/builds'][lane % 4] ?? '/me';
          const response = await app.inject({ method: 'GET', url, headers: bearer(token) });
          figures.requests++;
          if (response.statusCode >= 500) figures['5xx']++;
          if (response.statusCode === 401) figures.unauthorized++;
          else if (response.statusCode === 200) {
            figures.as_user++;
            if (url === '/me' && response.json<{ id: number }>().id !== user.id) oddities.push(`/me answered as ${response.body}`);
          } else {
            figures.other++;
            oddities.push(`${url} → ${response.statusCode} ${response.body.slice(0, 200)}`);
          }
          await sleep(0);
        }
      };
      const lanes = Array.from({ length: LANES }, (_, i) => lane(i));
      await sleep(20 + round * 15);
      const deletion = await injectAs(app, admin, { method: 'DELETE', url: `/users/${user.id}` });
      expect(deletion.statusCode).toBe(204);
      deleted = true;
      await Promise.all(lanes);
      for (const url of ['/me', '/projects', '/projects/1', '/projects/1/builds']) {
        const response = await app.inject({ method: 'GET', url, headers: bearer(token) });
        figures.requests++;
        if (response.statusCode !== 401) {
          figures.after_delete_not_401++;
          oddities.push(`after delete ${url} → ${response.statusCode}`);
        }
      }
      const write = await app.inject({ method: 'POST', url: '/projects', headers: bearer(token), payload: { name: `ghost-${round}`, repo: 'https://example.com/g.git' } });
      figures.requests++;
      if (write.statusCode !== 401) {
        figures.after_delete_not_401++;
        oddities.push(`after delete POST /projects → ${write.statusCode}`);
      }
    }
    recordScenario({
      scenario: 'race-user-delete-in-flight',
      db: testDb,
      what: `${ROUNDS} rounds: ${LANES} lanes of GETs with a maintainer's token while an admin deletes that user; then GETs and a POST with the dead token.`,
      happened: oddities.length ? oddities.slice(0, 5).join('; ') : 'Every answer was 200 as that user or 401; after the delete, only 401.',
      ok: oddities.length === 0 && figures['5xx'] === 0,
      figures,
    });
    expect(oddities).toEqual([]);
    expect(figures['5xx']).toBe(0);
    expect(figures.as_user).toBeGreaterThan(0);
  });
});
