-- Hand-written (drizzle-kit generate --custom): the exact number of projects, kept by triggers so that GET /projects
-- reads its total from one row instead of counting the whole table on every request. Any writer counts (the app,
-- another process, the sqlite3 shell); `DELETE FROM projects` fires the delete trigger for every row (SQLite skips
-- its truncate shortcut on a table with triggers). Seeded from the rows already there. One write escapes it: the rows
-- that `INSERT OR REPLACE` removes fire no delete trigger unless the connection set `PRAGMA recursive_triggers`; the
-- app never replaces (ON CONFLICT DO NOTHING, then a 409).
CREATE TABLE `project_count` (
	`id` integer PRIMARY KEY NOT NULL CHECK (`id` = 1),
	`n` integer NOT NULL
);
--> statement-breakpoint
INSERT INTO `project_count` (`id`, `n`) SELECT 1, count(*) FROM `projects`;
--> statement-breakpoint
CREATE TRIGGER `projects_count_insert` AFTER INSERT ON `projects`
BEGIN
	UPDATE `project_count` SET `n` = `n` + 1 WHERE `id` = 1;
END;
--> statement-breakpoint
CREATE TRIGGER `projects_count_delete` AFTER DELETE ON `projects`
BEGIN
	UPDATE `project_count` SET `n` = `n` - 1 WHERE `id` = 1;
END;
