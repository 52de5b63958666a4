import { and, asc, eq, sql } from 'drizzle-orm';
import type { Database } from '../db/client.js';

export interface NewArtifact {
  name: string;
  content_type: string;
  content: Buffer;
  size_bytes: number;
  sha256: string;
}

/**
 * Stores an artifact of a build (placeholders `build_id`, `job_id`, `name`, `content_type`, `content`, `size_bytes`,
 * `sha256`), or replaces the build's file of that name: a job's new attempt stores the file again under the same name,
 * and it is that attempt's now. On the connection given: a job's finish stores its file in the transaction that finishes
 * it (src/repositories/jobs.ts; its one-statement finish on PostgreSQL writes the same upsert in SQL).
 */
export function artifactUpsert(on: Database['db'], { artifacts }: Database['tables']) {
  return on
    .insert(artifacts)
    .values({
      build_id: sql.placeholder('build_id'),
      job_id: sql.placeholder('job_id'),
      name: sql.placeholder('name'),
      content_type: sql.placeholder('content_type'),
      content: sql.placeholder('content'),
      size_bytes: sql.placeholder('size_bytes'),
      sha256: sql.placeholder('sha256'),
    })
    .onConflictDoUpdate({
      target: [artifacts.build_id, artifacts.name],
      set: {
        job_id: sql`excluded.job_id`,
        content_type: sql`excluded.content_type`,
        content: sql`excluded.content`,
        size_bytes: sql`excluded.size_bytes`,
        sha256: sql`excluded.sha256`,
      },
    });
}

/**
 * Artifacts live in the database (they are a few kilobytes), so every replica serves them without shared storage.
 * Only a successful build's artifacts are visible under the build, and a successful job's under the job (`job_id`,
 * the job that stored it): a worker stores a job's file in the write that marks the job successful (the job
 * repository's finish), and a build that does not succeed keeps its rows hidden.
 */
export function createArtifactsRepository({ db, tables }: Database) {
  const { artifacts, builds, jobs } = tables;
  const metadata = {
    name: artifacts.name,
    content_type: artifacts.content_type,
    size_bytes: artifacts.size_bytes,
    sha256: artifacts.sha256,
    created_at: artifacts.created_at,
  };
  const ofSuccessfulBuild = (buildId: number) =>
    and(eq(artifacts.build_id, buildId), eq(builds.status, 'success'));
  const ofSuccessfulJob = (jobId: number) => and(eq(artifacts.job_id, jobId), eq(jobs.status, 'success'));

  return {
    /** Metadata of a successful build's artifacts, by name. */
    async listForBuild(buildId: number) {
      return db
        .select(metadata)
        .from(artifacts)
        .innerJoin(builds, eq(builds.id, artifacts.build_id))
        .where(ofSuccessfulBuild(buildId))
        .orderBy(asc(artifacts.name));
    },

    /** One artifact with its bytes, if the build succeeded and has a file of exactly that name. */
    async find(buildId: number, name: string) {
      const rows = await db
        .select({ ...metadata, content: artifacts.content })
        .from(artifacts)
        .innerJoin(builds, eq(builds.id, artifacts.build_id))
        .where(and(ofSuccessfulBuild(buildId), eq(artifacts.name, name)));
      return rows[0];
    },

    /** Metadata of the artifacts a job stored, by name, once it succeeded (none before, nor if it did not). */
    async listForJob(jobId: number) {
      return db
        .select(metadata)
        .from(artifacts)
        .innerJoin(jobs, eq(jobs.id, artifacts.job_id))
        .where(ofSuccessfulJob(jobId))
        .orderBy(asc(artifacts.name));
    },

    /** One artifact of a successful job, with its bytes, if the job stored a file of exactly that name. */
    async findForJob(jobId: number, name: string) {
      const rows = await db
        .select({ ...metadata, content: artifacts.content })
        .from(artifacts)
        .innerJoin(jobs, eq(jobs.id, artifacts.job_id))
        .where(and(ofSuccessfulJob(jobId), eq(artifacts.name, name)));
      return rows[0];
    },
  };
}

export type ArtifactsRepository = ReturnType<typeof createArtifactsRepository>;
