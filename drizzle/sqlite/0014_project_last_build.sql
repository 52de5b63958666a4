-- A project's newest build, stored on the project: a page of projects reads no builds. Triggers on `builds` keep
-- `last_build_number` and `last_build_status` in the transaction that inserts, changes or deletes a build (see
-- drizzle/pg/0014_project_last_build.sql; SQLite has one writer at a time, and row-level triggers only).
ALTER TABLE `projects` ADD `last_build_number` integer;--> statement-breakpoint
ALTER TABLE `projects` ADD `last_build_status` text;--> statement-breakpoint
UPDATE `projects` SET (`last_build_number`, `last_build_status`) =
	(SELECT `number`, `status` FROM `builds` WHERE `builds`.`project_id` = `projects`.`id` ORDER BY `number` DESC LIMIT 1);
--> statement-breakpoint
CREATE TRIGGER `builds_last_build_insert` AFTER INSERT ON `builds`
BEGIN
	UPDATE `projects` SET `last_build_number` = NEW.`number`, `last_build_status` = NEW.`status`
		WHERE `id` = NEW.`project_id` AND (`last_build_number` IS NULL OR `last_build_number` <= NEW.`number`);
END;
--> statement-breakpoint
CREATE TRIGGER `builds_last_build_status` AFTER UPDATE OF `status` ON `builds` WHEN OLD.`status` IS NOT NEW.`status`
BEGIN
	UPDATE `projects` SET `last_build_status` = NEW.`status` WHERE `id` = NEW.`project_id` AND `last_build_number` = NEW.`number`;
END;
--> statement-breakpoint
CREATE TRIGGER `builds_last_build_delete` AFTER DELETE ON `builds`
BEGIN
	UPDATE `projects` SET (`last_build_number`, `last_build_status`) =
		(SELECT `number`, `status` FROM `builds` WHERE `project_id` = OLD.`project_id` ORDER BY `number` DESC LIMIT 1)
		WHERE `id` = OLD.`project_id` AND `last_build_number` = OLD.`number`;
END;
