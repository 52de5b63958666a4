CREATE TABLE `deliveries` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`hook_id` integer NOT NULL,
	`event_id` integer,
	`event_type` text NOT NULL,
	`message_id` text NOT NULL,
	`body` text NOT NULL,
	`status` text DEFAULT 'pending' NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`next_attempt_at` integer,
	`retry_until` integer NOT NULL,
	`last_attempt_at` integer,
	`last_status_code` integer,
	`last_error` text,
	`lease_owner` text,
	`lease_expires_at` integer,
	`created_at` integer DEFAULT (cast(unixepoch('subsec') * 1000 as integer)) NOT NULL,
	FOREIGN KEY (`hook_id`) REFERENCES `hooks`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `deliveries_message_id_unique` ON `deliveries` (`message_id`);--> statement-breakpoint
CREATE INDEX `deliveries_hook_idx` ON `deliveries` (`hook_id`,`id`);--> statement-breakpoint
CREATE INDEX `deliveries_due_idx` ON `deliveries` (`next_attempt_at`,`id`) WHERE "deliveries"."status" = 'pending';--> statement-breakpoint
CREATE UNIQUE INDEX `deliveries_one_in_flight_uq` ON `deliveries` (`hook_id`) WHERE "deliveries"."status" = 'delivering';--> statement-breakpoint
CREATE INDEX `deliveries_lease_idx` ON `deliveries` (`lease_expires_at`) WHERE "deliveries"."status" = 'delivering';--> statement-breakpoint
CREATE TABLE `delivery_attempts` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`delivery_id` integer NOT NULL,
	`attempt` integer NOT NULL,
	`request_headers` text NOT NULL,
	`response_status` integer,
	`response_headers` text,
	`response_body` text,
	`error` text,
	`duration_ms` integer NOT NULL,
	`created_at` integer DEFAULT (cast(unixepoch('subsec') * 1000 as integer)) NOT NULL,
	FOREIGN KEY (`delivery_id`) REFERENCES `deliveries`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `delivery_attempts_delivery_idx` ON `delivery_attempts` (`delivery_id`,`id`);--> statement-breakpoint
CREATE TABLE `event_marks` (
	`name` text PRIMARY KEY NOT NULL,
	`value` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`seq` integer GENERATED ALWAYS AS (id) VIRTUAL,
	`type` text NOT NULL,
	`project_id` integer,
	`build_id` integer,
	`job_id` integer,
	`created_at` integer DEFAULT (cast(unixepoch('subsec') * 1000 as integer)) NOT NULL,
	`data` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `events_project_id_idx` ON `events` (`project_id`,`id`);--> statement-breakpoint
CREATE INDEX `events_created_at_idx` ON `events` (`created_at`);--> statement-breakpoint
CREATE TABLE `hooks` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`project_id` integer NOT NULL,
	`url` text NOT NULL,
	`events` text NOT NULL,
	`description` text DEFAULT '' NOT NULL,
	`active` integer DEFAULT true NOT NULL,
	`secret` text NOT NULL,
	`previous_secret` text,
	`previous_secret_expires_at` integer,
	`disabled_reason` text,
	`consecutive_failures` integer DEFAULT 0 NOT NULL,
	`created_at` integer DEFAULT (cast(unixepoch('subsec') * 1000 as integer)) NOT NULL,
	`updated_at` integer DEFAULT (cast(unixepoch('subsec') * 1000 as integer)) NOT NULL,
	FOREIGN KEY (`project_id`) REFERENCES `projects`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `hooks_project_idx` ON `hooks` (`project_id`);--> statement-breakpoint
-- The event log is written by triggers, in the transaction that makes each change (see drizzle/pg/0015). `data` is the
-- resource as the API shows it; timestamps (milliseconds here) are written as the API writes them.
CREATE TRIGGER `projects_events_insert` AFTER INSERT ON `projects`
BEGIN
	INSERT INTO `events` (`type`, `project_id`, `data`) VALUES ('project.created', NEW.`id`,
		json_object('id', NEW.`id`, 'name', NEW.`name`, 'repo', NEW.`repo`, 'default_branch', NEW.`default_branch`,
			'last_build_status', NEW.`last_build_status`,
			'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`created_at` / 1000.0, 'unixepoch'),
			'updated_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`updated_at` / 1000.0, 'unixepoch')));
END;
--> statement-breakpoint
CREATE TRIGGER `projects_events_update` AFTER UPDATE ON `projects` WHEN OLD.`updated_at` IS NOT NEW.`updated_at`
BEGIN
	INSERT INTO `events` (`type`, `project_id`, `data`) VALUES ('project.updated', NEW.`id`,
		json_object('id', NEW.`id`, 'name', NEW.`name`, 'repo', NEW.`repo`, 'default_branch', NEW.`default_branch`,
			'last_build_status', NEW.`last_build_status`,
			'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`created_at` / 1000.0, 'unixepoch'),
			'updated_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`updated_at` / 1000.0, 'unixepoch')));
END;
--> statement-breakpoint
CREATE TRIGGER `projects_events_delete` AFTER DELETE ON `projects`
BEGIN
	INSERT INTO `events` (`type`, `project_id`, `data`) VALUES ('project.deleted', OLD.`id`,
		json_object('id', OLD.`id`, 'name', OLD.`name`, 'repo', OLD.`repo`, 'default_branch', OLD.`default_branch`,
			'last_build_status', OLD.`last_build_status`,
			'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', OLD.`created_at` / 1000.0, 'unixepoch'),
			'updated_at', strftime('%Y-%m-%dT%H:%M:%fZ', OLD.`updated_at` / 1000.0, 'unixepoch')));
END;
--> statement-breakpoint
CREATE TRIGGER `builds_events_insert` AFTER INSERT ON `builds`
BEGIN
	INSERT INTO `events` (`type`, `project_id`, `build_id`, `data`) VALUES (
		'build.' || CASE NEW.`status` WHEN 'success' THEN 'succeeded' WHEN 'fail' THEN 'failed' ELSE NEW.`status` END,
		NEW.`project_id`, NEW.`id`,
		json_object('id', NEW.`id`, 'project_id', NEW.`project_id`, 'number', NEW.`number`, 'status', NEW.`status`,
			'branch', NEW.`branch`, 'commit_sha', NEW.`commit_sha`, 'triggered_by', NEW.`triggered_by`, 'retry_of', NEW.`retry_of`,
			'duration_s', NEW.`duration_s`,
			'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`created_at` / 1000.0, 'unixepoch'),
			'started_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`started_at` / 1000.0, 'unixepoch'),
			'finished_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`finished_at` / 1000.0, 'unixepoch')));
END;
--> statement-breakpoint
CREATE TRIGGER `builds_events_status` AFTER UPDATE OF `status` ON `builds` WHEN OLD.`status` IS NOT NEW.`status`
BEGIN
	INSERT INTO `events` (`type`, `project_id`, `build_id`, `data`) VALUES (
		'build.' || CASE NEW.`status` WHEN 'success' THEN 'succeeded' WHEN 'fail' THEN 'failed' ELSE NEW.`status` END,
		NEW.`project_id`, NEW.`id`,
		json_object('id', NEW.`id`, 'project_id', NEW.`project_id`, 'number', NEW.`number`, 'status', NEW.`status`,
			'branch', NEW.`branch`, 'commit_sha', NEW.`commit_sha`, 'triggered_by', NEW.`triggered_by`, 'retry_of', NEW.`retry_of`,
			'duration_s', NEW.`duration_s`,
			'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`created_at` / 1000.0, 'unixepoch'),
			'started_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`started_at` / 1000.0, 'unixepoch'),
			'finished_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`finished_at` / 1000.0, 'unixepoch')));
END;
--> statement-breakpoint
CREATE TRIGGER `jobs_events_insert` AFTER INSERT ON `jobs` WHEN NEW.`status` <> 'created'
BEGIN
	INSERT INTO `events` (`type`, `project_id`, `build_id`, `job_id`, `data`)
	SELECT 'job.' || CASE NEW.`status` WHEN 'success' THEN 'succeeded' WHEN 'fail' THEN 'failed' ELSE NEW.`status` END,
		b.`project_id`, NEW.`build_id`, NEW.`id`,
		json_object('id', NEW.`id`, 'build_id', NEW.`build_id`, 'name', NEW.`name`, 'stage', NEW.`stage`, 'needs', json(NEW.`needs`),
			'status', NEW.`status`, 'allow_failure', json(CASE WHEN NEW.`allow_failure` THEN 'true' ELSE 'false' END),
			'when', NEW.`when`, 'attempt', NEW.`attempt`, 'retry_of', NEW.`retry_of`,
			'retried', json(CASE WHEN NEW.`retried` THEN 'true' ELSE 'false' END), 'worker', NEW.`worker`, 'duration_s', NEW.`duration_s`,
			'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`created_at` / 1000.0, 'unixepoch'),
			'started_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`started_at` / 1000.0, 'unixepoch'),
			'finished_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`finished_at` / 1000.0, 'unixepoch'))
	FROM `builds` b WHERE b.`id` = NEW.`build_id`;
END;
--> statement-breakpoint
CREATE TRIGGER `jobs_events_status` AFTER UPDATE OF `status` ON `jobs` WHEN OLD.`status` IS NOT NEW.`status` AND NEW.`status` <> 'created'
BEGIN
	INSERT INTO `events` (`type`, `project_id`, `build_id`, `job_id`, `data`)
	SELECT 'job.' || CASE NEW.`status` WHEN 'success' THEN 'succeeded' WHEN 'fail' THEN 'failed' ELSE NEW.`status` END,
		b.`project_id`, NEW.`build_id`, NEW.`id`,
		json_object('id', NEW.`id`, 'build_id', NEW.`build_id`, 'name', NEW.`name`, 'stage', NEW.`stage`, 'needs', json(NEW.`needs`),
			'status', NEW.`status`, 'allow_failure', json(CASE WHEN NEW.`allow_failure` THEN 'true' ELSE 'false' END),
			'when', NEW.`when`, 'attempt', NEW.`attempt`, 'retry_of', NEW.`retry_of`,
			'retried', json(CASE WHEN NEW.`retried` THEN 'true' ELSE 'false' END), 'worker', NEW.`worker`, 'duration_s', NEW.`duration_s`,
			'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`created_at` / 1000.0, 'unixepoch'),
			'started_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`started_at` / 1000.0, 'unixepoch'),
			'finished_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`finished_at` / 1000.0, 'unixepoch'))
	FROM `builds` b WHERE b.`id` = NEW.`build_id`;
END;
--> statement-breakpoint
CREATE TRIGGER `hooks_events_disabled` AFTER UPDATE OF `active` ON `hooks`
	WHEN OLD.`active` AND NOT NEW.`active` AND NEW.`disabled_reason` IS NOT NULL
BEGIN
	INSERT INTO `events` (`type`, `project_id`, `data`) VALUES ('hook.disabled', NEW.`project_id`,
		json_object('id', NEW.`id`, 'project_id', NEW.`project_id`, 'description', NEW.`description`, 'active', json('false'),
			'disabled_reason', NEW.`disabled_reason`, 'consecutive_failures', NEW.`consecutive_failures`,
			'updated_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`updated_at` / 1000.0, 'unixepoch')));
END;
--> statement-breakpoint
INSERT INTO `event_marks` (`name`, `value`) VALUES ('webhooks', 0), ('purged', 0);
