-- A job's artifacts: the job that stored a file (issue #16, `GET /jobs/{id}/artifacts`); null for files stored before.
ALTER TABLE "artifacts" ADD COLUMN "job_id" integer;--> statement-breakpoint
ALTER TABLE "artifacts" ADD CONSTRAINT "artifacts_job_id_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "public"."jobs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "artifacts_job_idx" ON "artifacts" USING btree ("job_id") WHERE "artifacts"."job_id" is not null;--> statement-breakpoint
-- Hand-written from here, as migration 0008 is for builds: how many jobs are in each status, kept by triggers so that
-- a /metrics scrape reads at most 32 small rows instead of counting the whole jobs table. The total of a status is the
-- sum of its column over the slots. Current attempts only: a retried job's older attempt (`retried`: history, as
-- `GET /builds/{id}/jobs` shows it) leaves the count as its new attempt enters it. Any writer counts: the app, another
-- process, psql.
--
-- Unlike builds, jobs change status several at a time, in transactions that take other locks after their first change
-- (a finish releases the jobs it unblocks, a cancel skips a build's waiting jobs, a retry inserts the new attempt and
-- then plans again), while a worker's claim, one statement, locks a queued job's row without its build's. A count row
-- locked at the first change, as 0008's immediate triggers do, would be held while such a transaction waits for a job
-- row that a claim holds, the claim waiting for that count row: a deadlock. So inserts and status changes are counted
-- by row-level constraint triggers DEFERRABLE INITIALLY DEFERRED, which run at commit, when the transaction waits for
-- nothing else any more, all into one slot, that of the writer's backend (pg_backend_pid() % 16): a transaction holds
-- at most one of those rows, and only while it commits. Their WHEN conditions are checked at once (a row whose status
-- and `retried` are left alone queues nothing: log appends and lease renewals cost nothing).
-- - DELETE (a build's deletion, and a project's, cascade to jobs): a statement-level trigger reading the transition
--   table, one upsert per statement, into slots 16-31 (16 + pg_backend_pid() % 16), which the deferred triggers never
--   take: a delete that goes on to wait for rows after its first upsert holds no row a committing transaction needs.
-- - TRUNCATE empties the counts.
CREATE TABLE "job_status_count" (
	"slot" smallint PRIMARY KEY NOT NULL,
	"created" bigint DEFAULT 0 NOT NULL,
	"queued" bigint DEFAULT 0 NOT NULL,
	"running" bigint DEFAULT 0 NOT NULL,
	"success" bigint DEFAULT 0 NOT NULL,
	"fail" bigint DEFAULT 0 NOT NULL,
	"canceled" bigint DEFAULT 0 NOT NULL,
	"skipped" bigint DEFAULT 0 NOT NULL,
	"manual" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE FUNCTION "usine_job_count_insert"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "job_status_count" AS c ("slot", "created", "queued", "running", "success", "fail", "canceled", "skipped", "manual")
    VALUES (pg_backend_pid() % 16,
      (NEW."status" = 'created')::int, (NEW."status" = 'queued')::int, (NEW."status" = 'running')::int, (NEW."status" = 'success')::int,
      (NEW."status" = 'fail')::int, (NEW."status" = 'canceled')::int, (NEW."status" = 'skipped')::int, (NEW."status" = 'manual')::int)
    ON CONFLICT ("slot") DO UPDATE SET "created" = c."created" + EXCLUDED."created", "queued" = c."queued" + EXCLUDED."queued", "running" = c."running" + EXCLUDED."running",
      "success" = c."success" + EXCLUDED."success", "fail" = c."fail" + EXCLUDED."fail", "canceled" = c."canceled" + EXCLUDED."canceled",
      "skipped" = c."skipped" + EXCLUDED."skipped", "manual" = c."manual" + EXCLUDED."manual";
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE FUNCTION "usine_job_count_status_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "job_status_count" AS c ("slot", "created", "queued", "running", "success", "fail", "canceled", "skipped", "manual")
    VALUES (pg_backend_pid() % 16,
      (NOT NEW."retried" AND NEW."status" = 'created')::int - (NOT OLD."retried" AND OLD."status" = 'created')::int,
      (NOT NEW."retried" AND NEW."status" = 'queued')::int - (NOT OLD."retried" AND OLD."status" = 'queued')::int,
      (NOT NEW."retried" AND NEW."status" = 'running')::int - (NOT OLD."retried" AND OLD."status" = 'running')::int,
      (NOT NEW."retried" AND NEW."status" = 'success')::int - (NOT OLD."retried" AND OLD."status" = 'success')::int,
      (NOT NEW."retried" AND NEW."status" = 'fail')::int - (NOT OLD."retried" AND OLD."status" = 'fail')::int,
      (NOT NEW."retried" AND NEW."status" = 'canceled')::int - (NOT OLD."retried" AND OLD."status" = 'canceled')::int,
      (NOT NEW."retried" AND NEW."status" = 'skipped')::int - (NOT OLD."retried" AND OLD."status" = 'skipped')::int,
      (NOT NEW."retried" AND NEW."status" = 'manual')::int - (NOT OLD."retried" AND OLD."status" = 'manual')::int)
    ON CONFLICT ("slot") DO UPDATE SET "created" = c."created" + EXCLUDED."created", "queued" = c."queued" + EXCLUDED."queued", "running" = c."running" + EXCLUDED."running",
      "success" = c."success" + EXCLUDED."success", "fail" = c."fail" + EXCLUDED."fail", "canceled" = c."canceled" + EXCLUDED."canceled",
      "skipped" = c."skipped" + EXCLUDED."skipped", "manual" = c."manual" + EXCLUDED."manual";
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE FUNCTION "usine_job_count_delete"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "job_status_count" AS c ("slot", "created", "queued", "running", "success", "fail", "canceled", "skipped", "manual")
    SELECT 16 + pg_backend_pid() % 16,
      -count(*) FILTER (WHERE "status" = 'created'), -count(*) FILTER (WHERE "status" = 'queued'), -count(*) FILTER (WHERE "status" = 'running'),
      -count(*) FILTER (WHERE "status" = 'success'), -count(*) FILTER (WHERE "status" = 'fail'), -count(*) FILTER (WHERE "status" = 'canceled'),
      -count(*) FILTER (WHERE "status" = 'skipped'), -count(*) FILTER (WHERE "status" = 'manual')
    FROM "deleted_jobs" WHERE NOT "retried" HAVING count(*) > 0
    ON CONFLICT ("slot") DO UPDATE SET "created" = c."created" + EXCLUDED."created", "queued" = c."queued" + EXCLUDED."queued", "running" = c."running" + EXCLUDED."running",
      "success" = c."success" + EXCLUDED."success", "fail" = c."fail" + EXCLUDED."fail", "canceled" = c."canceled" + EXCLUDED."canceled",
      "skipped" = c."skipped" + EXCLUDED."skipped", "manual" = c."manual" + EXCLUDED."manual";
  RETURN NULL;
END
$$;
--> statement-breakpoint
-- TRUNCATE fires no row or DELETE trigger; it also fires this one when it reaches jobs through CASCADE.
CREATE FUNCTION "usine_job_count_truncate"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM "job_status_count";
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE CONSTRAINT TRIGGER "jobs_count_insert" AFTER INSERT ON "jobs" DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW WHEN (NOT NEW."retried") EXECUTE FUNCTION "usine_job_count_insert"();
--> statement-breakpoint
CREATE CONSTRAINT TRIGGER "jobs_count_status_change" AFTER UPDATE OF "status", "retried" ON "jobs" DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW WHEN (OLD."status" IS DISTINCT FROM NEW."status" OR OLD."retried" IS DISTINCT FROM NEW."retried")
  EXECUTE FUNCTION "usine_job_count_status_change"();
--> statement-breakpoint
CREATE TRIGGER "jobs_count_delete" AFTER DELETE ON "jobs" REFERENCING OLD TABLE AS "deleted_jobs"
  FOR EACH STATEMENT EXECUTE FUNCTION "usine_job_count_delete"();
--> statement-breakpoint
CREATE TRIGGER "jobs_count_truncate" AFTER TRUNCATE ON "jobs"
  FOR EACH STATEMENT EXECUTE FUNCTION "usine_job_count_truncate"();
--> statement-breakpoint
-- After the triggers: CREATE TRIGGER locks jobs against writes until the migration's transaction commits, so no row is
-- counted twice or missed between this count and the first trigger.
INSERT INTO "job_status_count" ("slot", "created", "queued", "running", "success", "fail", "canceled", "skipped", "manual")
  SELECT 0, count(*) FILTER (WHERE "status" = 'created'), count(*) FILTER (WHERE "status" = 'queued'), count(*) FILTER (WHERE "status" = 'running'),
    count(*) FILTER (WHERE "status" = 'success'), count(*) FILTER (WHERE "status" = 'fail'), count(*) FILTER (WHERE "status" = 'canceled'),
    count(*) FILTER (WHERE "status" = 'skipped'), count(*) FILTER (WHERE "status" = 'manual')
  FROM "jobs" WHERE NOT "retried";
