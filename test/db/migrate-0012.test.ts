import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { createServer } from '../../src/server.js';
import { testConfig, testDb } from '../helper.js';
import { databaseAsReleasedBefore, type OldReleaseDatabase } from './old-release.js';

const TAG = '0012_job_artifacts_status_count';

/** A job row of build `build` as the release before 0012 wrote it. */
const job = (build: number, position: number, name: string, status: string, retried = false, attempt = 1) =>
  `(${build}, ${position}, '${name}', 'test', '[]', 'on_success', false, '{}', '${status}', ${attempt}, ${retried})`;

describe(`migration 0012 on a database that already has jobs and artifacts (${testDb})`, () => {
  let old: OldReleaseDatabase | undefined;
  let app: FastifyInstance | undefined;

  afterAll(async () => {
    await app?.close();
    await old?.drop();
  });

  it('seeds the job counts from the rows there (current attempts), the triggers count on, and old artifacts belong to no job', async () => {
    const bytes = testDb === 'pg' ? `decode('1f8b', 'hex')` : `x'1f8b'`;
    const writes = [
      `insert into projects (name, repo) values ('before-0012', 'https://github.com/usine/old')`,
      `insert into builds (project_id, number, branch, commit_sha, status) values ` +
        `(1, 1, 'main', 'abcdef1', 'success'), (1, 2, 'main', 'abcdef1', 'fail'), (1, 3, 'main', 'abcdef1', 'queued')`,
      `insert into jobs (build_id, position, name, stage, needs, "when", allow_failure, spec, status, attempt, retried) values ` +
        [
          job(1, 0, 'compile', 'success'),
          job(1, 1, 'unit', 'fail', true),
          job(1, 1, 'unit', 'success', false, 2),
          job(1, 2, 'deploy', 'manual'),
          job(2, 0, 'compile', 'fail'),
          job(2, 1, 'unit', 'skipped'),
          job(2, 2, 'lint', 'canceled'),
          job(3, 0, 'compile', 'queued'),
          job(3, 1, 'unit', 'created'),
          job(3, 2, 'lint', 'created'),
        ].join(', '),
      `insert into artifacts (build_id, name, content_type, size_bytes, sha256, content) values ` +
        `(1, 'before-0012-1.tar.gz', 'application/gzip', 2, '${'a'.repeat(64)}', ${bytes})`,
    ];
    old = await databaseAsReleasedBefore(TAG, writes);
    expect(old.objects).not.toContain('job_status_count');

    // No workers: the queued build stays as it is until canceled below.
    app = await createServer(testConfig(old.url, { BUILD_CONCURRENCY: '0' }), { logger: false });
    await app.ready();
    // The retried attempt (unit's first, a failure) is history: not counted.
    expect(await app.jobsRepository.countByStatus()).toEqual({
      created: 2,
      queued: 1,
      running: 0,
      success: 2,
      fail: 1,
      canceled: 1,
      skipped: 1,
      manual: 1,
    });

    // The triggers count on from the seeded figures: build 3 canceled, its queued job canceled, the others skipped.
    expect(await app.jobsRepository.cancelBuild(3, 'canceled by the test\n', 0)).toBeDefined();
    expect(await app.jobsRepository.countByStatus()).toEqual({
      created: 0,
      queued: 0,
      running: 0,
      success: 2,
      fail: 1,
      canceled: 2,
      skipped: 3,
      manual: 1,
    });

    // An artifact stored before 0012 is still its build's, and no job's.
    expect((await app.artifactsRepository.listForBuild(1)).map((artifact) => artifact.name)).toEqual(['before-0012-1.tar.gz']);
    for (const id of [1, 2, 3, 4]) expect(await app.artifactsRepository.listForJob(id)).toEqual([]);
  });
});
