import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { createServer } from '../../src/server.js';
import { injectAs, login, testConfig, testDb } from '../helper.js';
import { databaseAsReleasedBefore, type OldReleaseDatabase } from './old-release.js';

describe(`migration 0014 on a database that already has builds (${testDb})`, () => {
  let old: OldReleaseDatabase | undefined;
  let app: FastifyInstance | undefined;

  afterAll(async () => {
    await app?.close();
    await old?.drop();
  });

  it("stores each project's newest build status from the rows there, and the triggers keep it from then on", async () => {
    const writes = [
      `insert into projects (name, repo) values ('with-builds', 'https://github.com/usine/a'), ('without-builds', 'https://github.com/usine/b')`,
      // Inserted out of order: the newest is the highest number, not the last row.
      `insert into builds (project_id, number, branch, commit_sha, status) values ` +
        `(1, 3, 'main', 'abcdef1', 'fail'), (1, 1, 'main', 'abcdef1', 'success'), (1, 2, 'main', 'abcdef1', 'canceled')`,
    ];
    old = await databaseAsReleasedBefore('0014_project_last_build', writes);

    // No workers: a new build stays queued until canceled.
    const config = testConfig(old.url, { BUILD_CONCURRENCY: '0' });
    app = await createServer(config, { logger: false });
    await app.ready();
    const token = await login(app, config.ADMIN_USERNAME, config.ADMIN_PASSWORD);
    const statuses = async () =>
      (await injectAs(app!, token, { method: 'GET', url: '/projects' })).json<{ items: { name: string; last_build_status: string | null }[] }>().items;

    expect(await statuses()).toEqual([
      expect.objectContaining({ name: 'with-builds', last_build_status: 'fail' }),
      expect.objectContaining({ name: 'without-builds', last_build_status: null }),
    ]);
    const triggered = await injectAs(app, token, { method: 'POST', url: '/projects/2/build' });
    expect(triggered.statusCode).toBe(201);
    expect((await statuses())[1]).toMatchObject({ last_build_status: 'queued' });
    const canceled = await injectAs(app, token, { method: 'POST', url: `/builds/${triggered.json<{ id: number }>().id}/cancel` });
    expect(canceled.statusCode).toBe(200);
    expect((await statuses())[1]).toMatchObject({ last_build_status: 'canceled' });
  });
});
