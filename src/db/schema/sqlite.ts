// JS keys are the snake_case column names so that rows are already in the API's wire format.
import { sql } from 'drizzle-orm';
import { blob, index, integer, real, sqliteTable, text, uniqueIndex, type AnySQLiteColumn } from 'drizzle-orm/sqlite-core';

import type { PipelineDefinition } from '../../pipelines/definition.js';
import type { JobSpec } from '../../pipelines/resolve.js';

// Keep table and column names identical to ./pg.ts: repositories are written once against that file.
const timestampMs = (name: string) => integer(name, { mode: 'timestamp_ms' });
const createdAt = () => timestampMs('created_at').notNull().default(sql`(cast(unixepoch('subsec') * 1000 as integer))`);

export const users = sqliteTable(
  'users',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    username: text('username').notNull().unique(),
    password_hash: text('password_hash').notNull(),
    role: text('role', { enum: ['admin', 'maintainer', 'viewer'] }).notNull().default('viewer'),
    created_at: createdAt(),
  },
  // One user per username whatever its case (`Alice` and `alice` cannot both exist): drizzle/*/0006_username_case.sql.
  (table) => [uniqueIndex('users_username_lower_unique').on(sql`lower(${table.username})`)],
);

export const projects = sqliteTable('projects', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull().unique(),
  repo: text('repo').notNull(),
  default_branch: text('default_branch').notNull().default('main'),
  created_at: createdAt(),
  updated_at: timestampMs('updated_at').notNull().default(sql`(cast(unixepoch('subsec') * 1000 as integer))`),
  // The project's pipeline definition as JSON text, null for the default one.
  pipeline: text('pipeline', { mode: 'json' }).$type<PipelineDefinition>(),
  // The newest build's number and status, kept by triggers on `builds` (migration 0014; see ./pg.ts).
  last_build_number: integer('last_build_number'),
  last_build_status: text('last_build_status', { enum: ['queued', 'running', 'success', 'fail', 'canceled'] }),
});

export const builds = sqliteTable(
  'builds',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    project_id: integer('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    number: integer('number').notNull(),
    status: text('status', { enum: ['queued', 'running', 'success', 'fail', 'canceled'] }).notNull(),
    branch: text('branch').notNull(),
    commit_sha: text('commit_sha').notNull(),
    triggered_by: text('triggered_by'),
    retry_of: integer('retry_of').references((): AnySQLiteColumn => builds.id, { onDelete: 'set null' }),
    duration_s: real('duration_s'),
    logs: text('logs').notNull().default(''),
    created_at: createdAt(),
    started_at: timestampMs('started_at'),
    finished_at: timestampMs('finished_at'),
    lease_owner: text('lease_owner'),
    lease_expires_at: timestampMs('lease_expires_at'),
    attempts: integer('attempts').notNull().default(0),
    // Counts the changes of its jobs' statuses that a finish's outcome depends on (a trigger keeps it: migration 0013):
    // a worker that read it at its claim finishes in one statement if it is unchanged (src/repositories/jobs.ts).
    jobs_version: integer('jobs_version').notNull().default(0),
    idempotency_key: text('idempotency_key'),
    // Who sent the Idempotency-Key: a key is the caller's own (as payment APIs scope them), so another user's same key
    // neither answers this build nor stops theirs. No foreign key: user ids are never reused (identity/AUTOINCREMENT), so
    // a deleted user's keys can match no one, and deleting a user touches no build.
    idempotency_user_id: integer('idempotency_user_id'),
  },
  (table) => [
    uniqueIndex('builds_project_number_uq').on(table.project_id, table.number),
    // Filtered pages (`?status=`, `?branch=`), newest first, and their exact totals: index range scans, not table scans.
    index('builds_project_status_number_idx').on(table.project_id, table.status, table.number),
    index('builds_project_branch_number_idx').on(table.project_id, table.branch, table.number),
    index('builds_queued_idx').on(table.id).where(sql`${table.status} = 'queued'`),
    index('builds_running_lease_idx').on(table.lease_expires_at).where(sql`${table.status} = 'running'`),
    // The foreign key's own lookup: deleting a build (a project's builds by cascade) sets retry_of to null in the
    // builds that retried it; without this index every deleted row scanned the whole table (quadratic deletes).
    index('builds_retry_of_idx').on(table.retry_of).where(sql`${table.retry_of} is not null`),
    uniqueIndex('builds_idempotency_caller_uq')
      .on(table.project_id, table.idempotency_user_id, table.idempotency_key)
      .where(sql`${table.idempotency_key} is not null`),
  ],
);

/**
 * A build's jobs, one row per attempt: a retried job keeps its row (`retried`), and its new attempt is a new row. Rows
 * are written at trigger time from the project's pipeline as resolved then (src/pipelines/resolve.ts), in pipeline
 * order (`position`): they are the build's snapshot, which later edits of the pipeline never reach.
 * src/pipelines/progress.ts decides every status change after that.
 */
export const jobs = sqliteTable(
  'jobs',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    build_id: integer('build_id')
      .notNull()
      .references(() => builds.id, { onDelete: 'cascade' }),
    /** Pipeline order within the build: stage order, then the order jobs are listed in. Attempts share it. */
    position: integer('position').notNull(),
    name: text('name').notNull(),
    stage: text('stage').notNull(),
    needs: text('needs', { mode: 'json' }).$type<string[]>().notNull(),
    when: text('when', { enum: ['on_success', 'on_failure', 'always', 'manual'] }).notNull(),
    allow_failure: integer('allow_failure', { mode: 'boolean' }).notNull(),
    /** How its simulated run behaves: script lines, duration range, fail rate, artifacts, parallel copy. */
    spec: text('spec', { mode: 'json' }).$type<JobSpec>().notNull(),
    status: text('status', { enum: ['created', 'queued', 'running', 'success', 'fail', 'canceled', 'skipped', 'manual'] }).notNull(),
    attempt: integer('attempt').notNull().default(1),
    retry_of: integer('retry_of').references((): AnySQLiteColumn => jobs.id, { onDelete: 'set null' }),
    /** True once a newer attempt of the same job exists: the graph then follows that one. */
    retried: integer('retried', { mode: 'boolean' }).notNull().default(false),
    /** The worker that ran (or runs) it: kept after the lease is released. */
    worker: text('worker'),
    duration_s: real('duration_s'),
    logs: text('logs').notNull().default(''),
    created_at: createdAt(),
    started_at: timestampMs('started_at'),
    finished_at: timestampMs('finished_at'),
    lease_owner: text('lease_owner'),
    lease_expires_at: timestampMs('lease_expires_at'),
    /** Claims of this attempt, against BUILD_MAX_ATTEMPTS (a take-over after a crash is a claim, not an attempt). */
    claims: integer('claims').notNull().default(0),
  },
  (table) => [
    // One current attempt per name within a build; older attempts step aside.
    uniqueIndex('jobs_build_name_current_uq').on(table.build_id, table.name).where(sql`not ${table.retried}`),
    index('jobs_build_position_idx').on(table.build_id, table.position, table.attempt),
    index('jobs_queued_idx').on(table.id).where(sql`${table.status} = 'queued'`),
    index('jobs_running_lease_idx').on(table.lease_expires_at).where(sql`${table.status} = 'running'`),
    index('jobs_retry_of_idx').on(table.retry_of).where(sql`${table.retry_of} is not null`),
  ],
);

export const artifacts = sqliteTable(
  'artifacts',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    build_id: integer('build_id')
      .notNull()
      .references(() => builds.id, { onDelete: 'cascade' }),
    /**
     * The job that stored it (null for artifacts stored before jobs existed): what `GET /jobs/{id}/artifacts` lists.
     * A retried job's new attempt that stores the file again takes it over (the name is unique within the build).
     */
    job_id: integer('job_id').references(() => jobs.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    content_type: text('content_type').notNull(),
    size_bytes: integer('size_bytes').notNull(),
    sha256: text('sha256').notNull(),
    content: blob('content', { mode: 'buffer' }).notNull(),
    created_at: createdAt(),
  },
  (table) => [
    uniqueIndex('artifacts_build_name_uq').on(table.build_id, table.name),
    // A job's artifacts, and the foreign key's own lookup when jobs go (with their build, by cascade).
    index('artifacts_job_idx').on(table.job_id).where(sql`${table.job_id} is not null`),
  ],
);

/**
 * Opaque refresh tokens, stored only as SHA-256 hashes. Each login starts a family; every refresh marks
 * the presented token used and adds the next one to the family. A used token presented again revokes it all.
 */
export const refresh_tokens = sqliteTable(
  'refresh_tokens',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    user_id: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    family_id: text('family_id').notNull(),
    token_hash: text('token_hash').notNull().unique(),
    created_at: createdAt(),
    expires_at: timestampMs('expires_at').notNull(),
    used_at: timestampMs('used_at'),
    revoked_at: timestampMs('revoked_at'),
  },
  (table) => [
    index('refresh_tokens_family_idx').on(table.family_id),
    // Deleting a user (cascade) and ending all of its sessions (a new password) find its rows by this index.
    index('refresh_tokens_user_idx').on(table.user_id),
    // The background purge's scan of expired rows (plugins/app/refresh-token-purge.ts).
    index('refresh_tokens_expires_idx').on(table.expires_at),
  ],
);

/**
 * The event log: see ./pg.ts. SQLite has one writer at a time, so rows commit in the order of `id` (the rowid), and
 * `seq` is the same number (PostgreSQL's sequencer has nothing to do here).
 */
export const events = sqliteTable(
  'events',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    seq: integer('seq').generatedAlwaysAs(sql`id`, { mode: 'virtual' }),
    type: text('type').notNull(),
    project_id: integer('project_id'),
    build_id: integer('build_id'),
    job_id: integer('job_id'),
    created_at: createdAt(),
    data: text('data', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
  },
  (table) => [index('events_project_id_idx').on(table.project_id, table.id), index('events_created_at_idx').on(table.created_at)],
);

export const event_marks = sqliteTable('event_marks', {
  name: text('name').primaryKey(),
  value: integer('value').notNull(),
});

export const hooks = sqliteTable(
  'hooks',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    project_id: integer('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    url: text('url').notNull(),
    events: text('events', { mode: 'json' }).$type<string[]>().notNull(),
    description: text('description').notNull().default(''),
    active: integer('active', { mode: 'boolean' }).notNull().default(true),
    secret: text('secret').notNull(),
    previous_secret: text('previous_secret'),
    previous_secret_expires_at: timestampMs('previous_secret_expires_at'),
    disabled_reason: text('disabled_reason'),
    consecutive_failures: integer('consecutive_failures').notNull().default(0),
    created_at: createdAt(),
    updated_at: timestampMs('updated_at').notNull().default(sql`(cast(unixepoch('subsec') * 1000 as integer))`),
  },
  (table) => [index('hooks_project_idx').on(table.project_id)],
);

export const deliveries = sqliteTable(
  'deliveries',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    hook_id: integer('hook_id')
      .notNull()
      .references(() => hooks.id, { onDelete: 'cascade' }),
    event_id: integer('event_id'),
    event_type: text('event_type').notNull(),
    message_id: text('message_id').notNull().unique(),
    body: text('body').notNull(),
    status: text('status', { enum: ['pending', 'delivering', 'succeeded', 'failed'] }).notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    next_attempt_at: timestampMs('next_attempt_at'),
    retry_until: timestampMs('retry_until').notNull(),
    last_attempt_at: timestampMs('last_attempt_at'),
    last_status_code: integer('last_status_code'),
    last_error: text('last_error'),
    lease_owner: text('lease_owner'),
    lease_expires_at: timestampMs('lease_expires_at'),
    created_at: createdAt(),
  },
  (table) => [
    index('deliveries_hook_idx').on(table.hook_id, table.id),
    index('deliveries_due_idx').on(table.next_attempt_at, table.id).where(sql`${table.status} = 'pending'`),
    uniqueIndex('deliveries_one_in_flight_uq').on(table.hook_id).where(sql`${table.status} = 'delivering'`),
    index('deliveries_lease_idx').on(table.lease_expires_at).where(sql`${table.status} = 'delivering'`),
  ],
);

export const delivery_attempts = sqliteTable(
  'delivery_attempts',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    delivery_id: integer('delivery_id')
      .notNull()
      .references(() => deliveries.id, { onDelete: 'cascade' }),
    attempt: integer('attempt').notNull(),
    request_headers: text('request_headers', { mode: 'json' }).$type<Record<string, string>>().notNull(),
    response_status: integer('response_status'),
    response_headers: text('response_headers', { mode: 'json' }).$type<Record<string, string>>(),
    response_body: text('response_body'),
    error: text('error'),
    duration_ms: integer('duration_ms').notNull(),
    created_at: createdAt(),
  },
  (table) => [index('delivery_attempts_delivery_idx').on(table.delivery_id, table.id)],
);
