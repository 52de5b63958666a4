-- A build's `jobs_version` counts the changes of its jobs that a finish's outcome depends on (issue #16, the job
-- engine's one-statement finish): a job's status, or a job stepping aside for a new attempt (`retried`). A worker reads
-- it with its claim, together with the build's jobs, works out what its job's finish releases and what the build then
-- is, and writes all of that in one statement that first locks the build's row and checks the count is unchanged; if
-- another change came in between, it writes nothing and the finish takes the locking transaction
-- (src/repositories/jobs.ts). A trigger keeps it, so that no writer (the app, another process, psql) can forget it.
-- Two moves leave it alone: a claim (queued → running) and a hand-back (running → queued, a shutdown or a lost lease).
-- Neither changes what a finish releases or whether a build is over (both statuses are "not over"), and a claim must
-- never wait for its build's row (it locks a queued job, then its build only if no one holds it: SKIP LOCKED). Every
-- other status change runs in a transaction that locked the build's row first, so this update of that row waits on
-- nothing new.
ALTER TABLE "builds" ADD COLUMN "jobs_version" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE FUNCTION "usine_build_jobs_changed"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "builds" SET "jobs_version" = "jobs_version" + 1 WHERE "id" = NEW."build_id";
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "jobs_version_change" AFTER UPDATE OF "status", "retried" ON "jobs" FOR EACH ROW
  WHEN ((OLD."status" IS DISTINCT FROM NEW."status" OR OLD."retried" IS DISTINCT FROM NEW."retried")
    AND NOT (OLD."status" = 'queued' AND NEW."status" = 'running')
    AND NOT (OLD."status" = 'running' AND NEW."status" = 'queued'))
  EXECUTE FUNCTION "usine_build_jobs_changed"();
