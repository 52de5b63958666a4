-- A build's `jobs_version` counts the changes of its jobs that a finish's outcome depends on: a job's status, or a job
-- stepping aside for a new attempt (`retried`); a claim (queued → running) and a hand-back (running → queued) leave it
-- alone. PostgreSQL's finish reads it to write in one statement (see drizzle/pg/0013_jobs_version.sql); SQLite runs
-- every finish in one synchronous transaction and does not need it, but keeps it by the same rule so that the two
-- schemas hold the same data.
ALTER TABLE `builds` ADD `jobs_version` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE TRIGGER `jobs_version_change` AFTER UPDATE OF `status`, `retried` ON `jobs`
	WHEN (OLD.`status` IS NOT NEW.`status` OR OLD.`retried` IS NOT NEW.`retried`)
		AND NOT (OLD.`status` = 'queued' AND NEW.`status` = 'running')
		AND NOT (OLD.`status` = 'running' AND NEW.`status` = 'queued')
BEGIN
	UPDATE `builds` SET `jobs_version` = `jobs_version` + 1 WHERE `id` = NEW.`build_id`;
END;
