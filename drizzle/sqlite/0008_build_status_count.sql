-- Hand-written (drizzle-kit generate --custom): how many builds are in each status, kept by triggers so that a
-- /metrics scrape reads one row instead of counting the whole builds table (migration 0005 does the same for
-- project_count). Any writer counts (the app, another process, the sqlite3 shell); a project's deletion cascades to
-- its builds and fires the delete trigger for each. The update trigger names the status column: the build engine's
-- log appends and lease renewals, which leave it alone, do not fire it. Seeded from the rows already there. As with
-- project_count, the rows that `INSERT OR REPLACE` removes escape it (the app never replaces a build).
CREATE TABLE `build_status_count` (
	`id` integer PRIMARY KEY NOT NULL CHECK (`id` = 1),
	`queued` integer NOT NULL,
	`running` integer NOT NULL,
	`success` integer NOT NULL,
	`fail` integer NOT NULL,
	`canceled` integer NOT NULL
);
--> statement-breakpoint
INSERT INTO `build_status_count` (`id`, `queued`, `running`, `success`, `fail`, `canceled`)
	SELECT 1, count(*) FILTER (WHERE `status` = 'queued'), count(*) FILTER (WHERE `status` = 'running'),
		count(*) FILTER (WHERE `status` = 'success'), count(*) FILTER (WHERE `status` = 'fail'),
		count(*) FILTER (WHERE `status` = 'canceled')
	FROM `builds`;
--> statement-breakpoint
CREATE TRIGGER `builds_count_insert` AFTER INSERT ON `builds`
BEGIN
	UPDATE `build_status_count` SET `queued` = `queued` + (NEW.`status` = 'queued'), `running` = `running` + (NEW.`status` = 'running'),
		`success` = `success` + (NEW.`status` = 'success'), `fail` = `fail` + (NEW.`status` = 'fail'),
		`canceled` = `canceled` + (NEW.`status` = 'canceled')
	WHERE `id` = 1;
END;
--> statement-breakpoint
CREATE TRIGGER `builds_count_delete` AFTER DELETE ON `builds`
BEGIN
	UPDATE `build_status_count` SET `queued` = `queued` - (OLD.`status` = 'queued'), `running` = `running` - (OLD.`status` = 'running'),
		`success` = `success` - (OLD.`status` = 'success'), `fail` = `fail` - (OLD.`status` = 'fail'),
		`canceled` = `canceled` - (OLD.`status` = 'canceled')
	WHERE `id` = 1;
END;
--> statement-breakpoint
CREATE TRIGGER `builds_count_status_change` AFTER UPDATE OF `status` ON `builds` WHEN OLD.`status` IS NOT NEW.`status`
BEGIN
	UPDATE `build_status_count` SET
		`queued` = `queued` + (NEW.`status` = 'queued') - (OLD.`status` = 'queued'),
		`running` = `running` + (NEW.`status` = 'running') - (OLD.`status` = 'running'),
		`success` = `success` + (NEW.`status` = 'success') - (OLD.`status` = 'success'),
		`fail` = `fail` + (NEW.`status` = 'fail') - (OLD.`status` = 'fail'),
		`canceled` = `canceled` + (NEW.`status` = 'canceled') - (OLD.`status` = 'canceled')
	WHERE `id` = 1;
END;
