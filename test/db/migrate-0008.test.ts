import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { createServer } from '../../src/server.js';
import { testConfig, testDb } from '../helper.js';
import { databaseAsReleasedBefore, type OldReleaseDatabase } from './old-release.js';

describe(`migration 0008 on a database that already has builds (${testDb})`, () => {
  let old: OldReleaseDatabase | undefined;
  let app: FastifyInstance | undefined;

  afterAll(async () => {
    await app?.close();
    await old?.drop();
  });

  it('seeds the build counts from the rows there, and the triggers count on from them', async () => {
    const writes = [
      `insert into projects (name, repo) values ('before-0008', 'https://github.com/usine/old')`,
      `insert into builds (project_id, number, branch, commit_sha, status) values ` +
        `(1, 1, 'main', 'abcdef1', 'success'), (1, 2, 'main', 'abcdef1', 'success'), (1, 3, 'main', 'abcdef1', 'fail'), ` +
        `(1, 4, 'main', 'abcdef1', 'queued'), (1, 5, 'main', 'abcdef1', 'canceled')`,
    ];
    old = await databaseAsReleasedBefore('0008_build_status_count', writes);

    // No workers: the queued build stays queued until canceled below.
    app = await createServer(testConfig(old.url, { BUILD_CONCURRENCY: '0' }), { logger: false });
    await app.ready();
    expect(await app.buildsRepository.countByStatus()).toEqual({ queued: 1, running: 0, success: 2, fail: 1, canceled: 1 });
    expect(await app.jobEngine.cancelBuild(4, 'the test')).toBeDefined();
    expect(await app.buildsRepository.countByStatus()).toEqual({ queued: 0, running: 0, success: 2, fail: 1, canceled: 2 });
  });
});
