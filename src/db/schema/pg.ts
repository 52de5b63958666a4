// JS keys are the snake_case column names so that rows are already in the API's wire format.
import { sql } from 'drizzle-orm';
import { bigint, boolean, customType, doublePrecision, index, integer, json, pgTable, text, timestamp, uniqueIndex, type AnyPgColumn } from 'drizzle-orm/pg-core';

import type { PipelineDefinition } from '../../pipelines/definition.js';
import type { JobSpec } from '../../pipelines/resolve.js';

// Keep table and column names identical to ./sqlite.ts: repositories are written once against this file.
const createdAt = () => timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();

export const users = pgTable(
  'users',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    username: text('username').notNull().unique(),
    password_hash: text('password_hash').notNull(),
    role: text('role', { enum: ['admin', 'maintainer', 'viewer'] }).notNull().default('viewer'),
    created_at: createdAt(),
  },
  // One user per username whatever its case (`Alice` and `alice` cannot both exist): drizzle/*/0006_username_case.sql.
  (table) => [uniqueIndex('users_username_lower_unique').on(sql`lower(${table.username})`)],
);

export const projects = pgTable('projects', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  name: text('name').notNull().unique(),
  repo: text('repo').notNull(),
  default_branch: text('default_branch').notNull().default('main'),
  created_at: createdAt(),
  updated_at: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  // The project's pipeline definition, null for the default one. `json`, not `jsonb`: jsonb reorders object keys
  // (shortest first), and the order of `jobs` is the pipeline's order within a stage. Nothing queries inside it.
  pipeline: json('pipeline').$type<PipelineDefinition>(),
  // The newest build's number and status, stored so that a page of projects reads no builds: triggers on `builds` keep
  // them in the transaction that inserts, changes or deletes a build (migration 0014), so they cannot disagree.
  last_build_number: integer('last_build_number'),
  last_build_status: text('last_build_status', { enum: ['queued', 'running', 'success', 'fail', 'canceled'] }),
});

export const builds = pgTable(
  'builds',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    project_id: integer('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    number: integer('number').notNull(),
    status: text('status', { enum: ['queued', 'running', 'success', 'fail', 'canceled'] }).notNull(),
    branch: text('branch').notNull(),
    commit_sha: text('commit_sha').notNull(),
    triggered_by: text('triggered_by'),
    retry_of: integer('retry_of').references((): AnyPgColumn => builds.id, { onDelete: 'set null' }),
    duration_s: doublePrecision('duration_s'),
    logs: text('logs').notNull().default(''),
    created_at: createdAt(),
    started_at: timestamp('started_at', { withTimezone: true, mode: 'date' }),
    finished_at: timestamp('finished_at', { withTimezone: true, mode: 'date' }),
    // Engine bookkeeping, never sent to clients: which worker holds the build and until when, how many claims.
    lease_owner: text('lease_owner'),
    lease_expires_at: timestamp('lease_expires_at', { withTimezone: true, mode: 'date' }),
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
    // Serves "newest first" pages, per-project numbering and the latest-status lookup.
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
export const jobs = pgTable(
  'jobs',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    build_id: integer('build_id')
      .notNull()
      .references(() => builds.id, { onDelete: 'cascade' }),
    /** Pipeline order within the build: stage order, then the order jobs are listed in. Attempts share it. */
    position: integer('position').notNull(),
    name: text('name').notNull(),
    stage: text('stage').notNull(),
    needs: json('needs').$type<string[]>().notNull(),
    when: text('when', { enum: ['on_success', 'on_failure', 'always', 'manual'] }).notNull(),
    allow_failure: boolean('allow_failure').notNull(),
    /** How its simulated run behaves: script lines, duration range, fail rate, artifacts, parallel copy. */
    spec: json('spec').$type<JobSpec>().notNull(),
    status: text('status', { enum: ['created', 'queued', 'running', 'success', 'fail', 'canceled', 'skipped', 'manual'] }).notNull(),
    attempt: integer('attempt').notNull().default(1),
    retry_of: integer('retry_of').references((): AnyPgColumn => jobs.id, { onDelete: 'set null' }),
    /** True once a newer attempt of the same job exists: the graph then follows that one. */
    retried: boolean('retried').notNull().default(false),
    /** The worker that ran (or runs) it: kept after the lease is released. */
    worker: text('worker'),
    duration_s: doublePrecision('duration_s'),
    logs: text('logs').notNull().default(''),
    created_at: createdAt(),
    started_at: timestamp('started_at', { withTimezone: true, mode: 'date' }),
    finished_at: timestamp('finished_at', { withTimezone: true, mode: 'date' }),
    lease_owner: text('lease_owner'),
    lease_expires_at: timestamp('lease_expires_at', { withTimezone: true, mode: 'date' }),
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

const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => 'bytea' });

/** Files a successful build (or job) produced, stored in the database so that every replica can serve them. */
export const artifacts = pgTable(
  'artifacts',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
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
    content: bytea('content').notNull(),
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
export const refresh_tokens = pgTable(
  'refresh_tokens',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    user_id: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    family_id: text('family_id').notNull(),
    token_hash: text('token_hash').notNull().unique(),
    created_at: createdAt(),
    expires_at: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
    used_at: timestamp('used_at', { withTimezone: true, mode: 'date' }),
    revoked_at: timestamp('revoked_at', { withTimezone: true, mode: 'date' }),
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
 * The event log (a transactional outbox): triggers on projects, builds, jobs and hooks write one row per state change in
 * the transaction that makes it (migration 0015), whoever writes. `seq` is the order rows were inserted in; `id`, the
 * public id, is given by the sequencer (src/events/sequencer.ts) once the row is committed, one sequencer at a time, so
 * ids become visible in increasing order and a reader that saw id N never later finds a smaller one (a sequence value
 * taken at insert would: a transaction that started first may commit last). Until then `id` is null and the row is
 * not served. No foreign keys: events outlive what they describe (`project.deleted`).
 */
export const events = pgTable(
  'events',
  {
    seq: bigint('seq', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    id: bigint('id', { mode: 'number' }),
    type: text('type').notNull(),
    project_id: integer('project_id'),
    build_id: integer('build_id'),
    job_id: integer('job_id'),
    created_at: createdAt(),
    /** The resource as the API shows it at that moment (a build without its log). */
    data: json('data').$type<Record<string, unknown>>().notNull(),
  },
  (table) => [
    uniqueIndex('events_id_uq').on(table.id),
    index('events_unsequenced_idx').on(table.seq).where(sql`${table.id} is null`),
    index('events_project_id_idx').on(table.project_id, table.id),
    index('events_created_at_idx').on(table.created_at),
  ],
);

/** Named positions in the event log: how far webhooks' fan-out has read (`webhooks`), up to where retention purged. */
export const event_marks = pgTable('event_marks', {
  name: text('name').primaryKey(),
  value: bigint('value', { mode: 'number' }).notNull(),
});

/** A project's webhooks: where to POST which events, signed with `secret` (and `previous_secret` during a rotation). */
export const hooks = pgTable(
  'hooks',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    project_id: integer('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    url: text('url').notNull(),
    /** Event types or patterns (`build.*`, `*`). */
    events: json('events').$type<string[]>().notNull(),
    description: text('description').notNull().default(''),
    active: boolean('active').notNull().default(true),
    secret: text('secret').notNull(),
    previous_secret: text('previous_secret'),
    previous_secret_expires_at: timestamp('previous_secret_expires_at', { withTimezone: true, mode: 'date' }),
    /** Why it was disabled automatically; null while active or when a user disabled it. */
    disabled_reason: text('disabled_reason'),
    consecutive_failures: integer('consecutive_failures').notNull().default(0),
    created_at: createdAt(),
    updated_at: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (table) => [index('hooks_project_idx').on(table.project_id)],
);

/**
 * One event (or ping) to send to one hook: claimed by delivery workers as jobs are, at most one in flight per hook (a
 * unique index says so). `message_id` is the `webhook-id`, the same on every attempt and redelivery.
 */
export const deliveries = pgTable(
  'deliveries',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    hook_id: integer('hook_id')
      .notNull()
      .references(() => hooks.id, { onDelete: 'cascade' }),
    event_id: bigint('event_id', { mode: 'number' }),
    event_type: text('event_type').notNull(),
    message_id: text('message_id').notNull().unique(),
    body: text('body').notNull(),
    status: text('status', { enum: ['pending', 'delivering', 'succeeded', 'failed'] }).notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    next_attempt_at: timestamp('next_attempt_at', { withTimezone: true, mode: 'date' }),
    /** No retry is planned after this moment (24 h after the delivery was made, or redelivered). */
    retry_until: timestamp('retry_until', { withTimezone: true, mode: 'date' }).notNull(),
    last_attempt_at: timestamp('last_attempt_at', { withTimezone: true, mode: 'date' }),
    last_status_code: integer('last_status_code'),
    last_error: text('last_error'),
    lease_owner: text('lease_owner'),
    lease_expires_at: timestamp('lease_expires_at', { withTimezone: true, mode: 'date' }),
    created_at: createdAt(),
  },
  (table) => [
    index('deliveries_hook_idx').on(table.hook_id, table.id),
    index('deliveries_due_idx').on(table.next_attempt_at, table.id).where(sql`${table.status} = 'pending'`),
    uniqueIndex('deliveries_one_in_flight_uq').on(table.hook_id).where(sql`${table.status} = 'delivering'`),
    index('deliveries_lease_idx').on(table.lease_expires_at).where(sql`${table.status} = 'delivering'`),
  ],
);

/** Each attempt of a delivery: the request's headers as sent, and the answer (or the error). */
export const delivery_attempts = pgTable(
  'delivery_attempts',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    delivery_id: integer('delivery_id')
      .notNull()
      .references(() => deliveries.id, { onDelete: 'cascade' }),
    attempt: integer('attempt').notNull(),
    request_headers: json('request_headers').$type<Record<string, string>>().notNull(),
    response_status: integer('response_status'),
    response_headers: json('response_headers').$type<Record<string, string>>(),
    response_body: text('response_body'),
    error: text('error'),
    duration_ms: integer('duration_ms').notNull(),
    created_at: createdAt(),
  },
  (table) => [index('delivery_attempts_delivery_idx').on(table.delivery_id, table.id)],
);
