/**
 * A project's stored `last_build_status` (migration 0014's triggers) against the builds table, while triggers,
 * finishes, cancels, build and job retries and project deletions race on the running engine: every check reads both
 * in one statement (one snapshot), during the race and after it.
 */
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { qualified } from '../../src/db/qualified.js';
import { injectAs, testDb, uniqueName, useTestApp } from '../helper.js';

interface Disagreement {
  id: number;
  stored: string | null;
  newest: string | null;
}

describe(`a project's stored last build status under racing writes (${testDb})`, () => {
  // Instant builds that fail half the time (something to retry), several workers racing the requests below.
  const context = useTestApp({ BUILD_FAIL_RATE: '0.5', BUILD_CONCURRENCY: '4' });

  /** Projects whose stored status differs from their newest build's, read in one statement. */
  const disagreements = async (): Promise<Disagreement[]> => {
    const { db, tables } = context.app.database;
    const { projects, builds } = tables;
    const newest = sql<string | null>`(select ${qualified(builds.status)} from ${builds} where ${qualified(builds.project_id)} = ${qualified(projects.id)} order by ${qualified(builds.number)} desc limit 1)`;
    const rows = await db.select({ id: projects.id, stored: projects.last_build_status, newest }).from(projects);
    return rows.filter((row) => row.stored !== row.newest);
  };

  const post = (url: string) => injectAs(context.app, context.adminToken, { method: 'POST', url });
  const pick = <T>(items: readonly T[]): T | undefined => items[Math.floor(Math.random() * items.length)];

  it('never disagrees with the newest build, whatever races', async () => {
    const projectIds: number[] = [];
    for (let i = 0; i < 6; i++) {
      const response = await injectAs(context.app, context.adminToken, {
        method: 'POST',
        url: '/projects',
        payload: { name: uniqueName('last-build'), repo: 'https://github.com/usine/last-build' },
      });
      expect(response.statusCode).toBe(201);
      projectIds.push(response.json<{ id: number }>().id);
    }
    const doomed = new Set(projectIds.slice(0, 2));
    const buildIds: number[] = [];
    const done = { triggers: 0, cancels: 0, buildRetries: 0, jobRetries: 0, deletes: 0 };
    const serverErrors: string[] = [];
    const note = (what: string, response: { statusCode: number; body: string }) => {
      if (response.statusCode >= 500) serverErrors.push(`${what}: ${response.statusCode} ${response.body}`);
      return response.statusCode < 300;
    };

    // The checker reads both sides again and again while the writers run.
    const seen: Disagreement[] = [];
    let racing = true;
    let checks = 0;
    const checker = (async () => {
      while (racing) {
        seen.push(...(await disagreements()));
        checks++;
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();

    for (let round = 0; round < 8; round++) {
      const live = projectIds.filter((id) => !doomed.has(id) || round < 4);
      const writes: Promise<unknown>[] = [];
      for (const projectId of live) {
        for (let n = 0; n < 2; n++) {
          writes.push(
            post(`/projects/${projectId}/build`).then(async (response) => {
              if (!note('trigger', response)) return;
              done.triggers++;
              const id = response.json<{ id: number }>().id;
              buildIds.push(id);
              // Every other new build is canceled at once, racing the workers that claim its jobs.
              if (n === 1 && (projectId + round) % 2 === 0 && note('cancel', await post(`/builds/${id}/cancel`))) done.cancels++;
            }),
          );
        }
      }
      for (let n = 0; n < 3; n++) {
        const retryId = pick(buildIds.slice(0, -6));
        if (retryId) {
          writes.push(
            post(`/builds/${retryId}/retry`).then((response) => {
              if (note('build retry', response)) {
                done.buildRetries++;
                buildIds.push(response.json<{ id: number }>().id);
              }
            }),
          );
        }
        // An older build, more likely over (a job can be retried once its build settled it).
        const jobsOf = pick(buildIds.slice(0, -6));
        if (jobsOf) {
          writes.push(
            injectAs(context.app, context.adminToken, { method: 'GET', url: `/builds/${jobsOf}/jobs` }).then(async (response) => {
              if (response.statusCode !== 200) return;
              const failed = response.json<{ items: { id: number; status: string; retried: boolean }[] }>().items.find(
                (job) => job.status === 'fail' && !job.retried,
              );
              if (failed && note('job retry', await post(`/jobs/${failed.id}/retry`))) done.jobRetries++;
            }),
          );
        }
      }
      if (round === 4) {
        for (const projectId of doomed) {
          writes.push(
            injectAs(context.app, context.adminToken, { method: 'DELETE', url: `/projects/${projectId}` }).then(
              (response) => void (note('delete', response) && done.deletes++),
            ),
          );
        }
      }
      await Promise.all(writes);
      // Time for the workers to run some of them: finishes race the next round's writes, and there are failed jobs to retry.
      await new Promise((resolve) => setTimeout(resolve, 150));
    }

    // Then the engine drains what is left, and the checker stops once nothing is queued or running.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const status = (await context.app.inject({ method: 'GET', url: '/status' })).json<{ queue: { queued: number; running: number } }>();
      if (status.queue.queued + status.queue.running === 0) break;
      if (Date.now() > deadline) throw new Error(`builds still active: ${JSON.stringify(status.queue)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    racing = false;
    await checker;

    expect(serverErrors).toEqual([]);
    expect(seen).toEqual([]);
    expect(await disagreements()).toEqual([]);
    // The race did race: every kind of write happened, and the checker ran throughout.
    expect(done.triggers).toBeGreaterThan(40);
    expect(done.cancels).toBeGreaterThan(0);
    expect(done.buildRetries).toBeGreaterThan(0);
    expect(done.jobRetries).toBeGreaterThan(0);
    expect(done.deletes).toBe(2);
    expect(checks).toBeGreaterThan(10);

    // And through the API: each remaining project's status is its newest build's.
    const list = await injectAs(context.app, context.adminToken, { method: 'GET', url: '/projects?per_page=100' });
    const listed = list.json<{ items: { id: number; last_build_status: string | null }[] }>().items;
    expect(listed.map((project) => project.id).sort()).toEqual(projectIds.filter((id) => !doomed.has(id)).sort());
    for (const project of listed) {
      const builds = await injectAs(context.app, context.adminToken, { method: 'GET', url: `/projects/${project.id}/builds?per_page=1` });
      expect(project.last_build_status).toBe(builds.json<{ items: { status: string }[] }>().items[0]?.status);
    }
  });
});
