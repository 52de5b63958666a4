-- A job's artifacts: the job that stored a file (issue #16, `GET /jobs/{id}/artifacts`); null for files stored before.
-- SQLite adds a column with a foreign key in place as long as it defaults to null (drizzle-kit 0.31 wrote this
-- ALTER without its ON DELETE: added by hand, as the schema and the snapshot say).
ALTER TABLE `artifacts` ADD `job_id` integer REFERENCES `jobs`(`id`) ON DELETE cascade;--> statement-breakpoint
CREATE INDEX `artifacts_job_idx` ON `artifacts` (`job_id`) WHERE "artifacts"."job_id" is not null;--> statement-breakpoint
-- Hand-written from here, as migration 0008 is for builds: how many jobs are in each status, kept by triggers so that
-- a /metrics scrape reads one row instead of counting the whole jobs table. Current attempts only: a retried job's
-- older attempt (`retried`: history, as `GET /builds/{id}/jobs` shows it) leaves the count as its new attempt enters
-- it. Any writer counts (the app, another process, the sqlite3 shell); a build's deletion (a project's, by cascade)
-- fires the delete trigger for each of its jobs. The update trigger names the status and retried columns only: the job
-- engine's log appends and lease renewals, which leave them alone, do not fire it. Seeded from the rows already there.
-- As with build_status_count, the rows that `INSERT OR REPLACE` removes escape it (the app never replaces a job).
CREATE TABLE `job_status_count` (
	`id` integer PRIMARY KEY NOT NULL CHECK (`id` = 1),
	`created` integer NOT NULL,
	`queued` integer NOT NULL,
	`running` integer NOT NULL,
	`success` integer NOT NULL,
	`fail` integer NOT NULL,
	`canceled` integer NOT NULL,
	`skipped` integer NOT NULL,
	`manual` integer NOT NULL
);
--> statement-breakpoint
INSERT INTO `job_status_count` (`id`, `created`, `queued`, `running`, `success`, `fail`, `canceled`, `skipped`, `manual`)
	SELECT 1, count(*) FILTER (WHERE `status` = 'created'), count(*) FILTER (WHERE `status` = 'queued'),
		count(*) FILTER (WHERE `status` = 'running'), count(*) FILTER (WHERE `status` = 'success'),
		count(*) FILTER (WHERE `status` = 'fail'), count(*) FILTER (WHERE `status` = 'canceled'),
		count(*) FILTER (WHERE `status` = 'skipped'), count(*) FILTER (WHERE `status` = 'manual')
	FROM `jobs` WHERE NOT `retried`;
--> statement-breakpoint
CREATE TRIGGER `jobs_count_insert` AFTER INSERT ON `jobs` WHEN NOT NEW.`retried`
BEGIN
	UPDATE `job_status_count` SET `created` = `created` + (NEW.`status` = 'created'), `queued` = `queued` + (NEW.`status` = 'queued'),
		`running` = `running` + (NEW.`status` = 'running'), `success` = `success` + (NEW.`status` = 'success'),
		`fail` = `fail` + (NEW.`status` = 'fail'), `canceled` = `canceled` + (NEW.`status` = 'canceled'),
		`skipped` = `skipped` + (NEW.`status` = 'skipped'), `manual` = `manual` + (NEW.`status` = 'manual')
	WHERE `id` = 1;
END;
--> statement-breakpoint
CREATE TRIGGER `jobs_count_delete` AFTER DELETE ON `jobs` WHEN NOT OLD.`retried`
BEGIN
	UPDATE `job_status_count` SET `created` = `created` - (OLD.`status` = 'created'), `queued` = `queued` - (OLD.`status` = 'queued'),
		`running` = `running` - (OLD.`status` = 'running'), `success` = `success` - (OLD.`status` = 'success'),
		`fail` = `fail` - (OLD.`status` = 'fail'), `canceled` = `canceled` - (OLD.`status` = 'canceled'),
		`skipped` = `skipped` - (OLD.`status` = 'skipped'), `manual` = `manual` - (OLD.`status` = 'manual')
	WHERE `id` = 1;
END;
--> statement-breakpoint
CREATE TRIGGER `jobs_count_status_change` AFTER UPDATE OF `status`, `retried` ON `jobs`
	WHEN OLD.`status` IS NOT NEW.`status` OR OLD.`retried` IS NOT NEW.`retried`
BEGIN
	UPDATE `job_status_count` SET
		`created` = `created` + (NEW.`status` = 'created' AND NOT NEW.`retried`) - (OLD.`status` = 'created' AND NOT OLD.`retried`),
		`queued` = `queued` + (NEW.`status` = 'queued' AND NOT NEW.`retried`) - (OLD.`status` = 'queued' AND NOT OLD.`retried`),
		`running` = `running` + (NEW.`status` = 'running' AND NOT NEW.`retried`) - (OLD.`status` = 'running' AND NOT OLD.`retried`),
		`success` = `success` + (NEW.`status` = 'success' AND NOT NEW.`retried`) - (OLD.`status` = 'success' AND NOT OLD.`retried`),
		`fail` = `fail` + (NEW.`status` = 'fail' AND NOT NEW.`retried`) - (OLD.`status` = 'fail' AND NOT OLD.`retried`),
		`canceled` = `canceled` + (NEW.`status` = 'canceled' AND NOT NEW.`retried`) - (OLD.`status` = 'canceled' AND NOT OLD.`retried`),
		`skipped` = `skipped` + (NEW.`status` = 'skipped' AND NOT NEW.`retried`) - (OLD.`status` = 'skipped' AND NOT OLD.`retried`),
		`manual` = `manual` + (NEW.`status` = 'manual' AND NOT NEW.`retried`) - (OLD.`status` = 'manual' AND NOT OLD.`retried`)
	WHERE `id` = 1;
END;
