-- A build's jobs (issue #16): one row per attempt, written at trigger time from the project's pipeline, the build's
-- snapshot of it. Statuses change only through src/pipelines/progress.ts, inside one transaction per build.
CREATE TABLE `jobs` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`build_id` integer NOT NULL,
	`position` integer NOT NULL,
	`name` text NOT NULL,
	`stage` text NOT NULL,
	`needs` text NOT NULL,
	`when` text NOT NULL,
	`allow_failure` integer NOT NULL,
	`spec` text NOT NULL,
	`status` text NOT NULL,
	`attempt` integer DEFAULT 1 NOT NULL,
	`retry_of` integer,
	`retried` integer DEFAULT false NOT NULL,
	`worker` text,
	`duration_s` real,
	`logs` text DEFAULT '' NOT NULL,
	`created_at` integer DEFAULT (cast(unixepoch('subsec') * 1000 as integer)) NOT NULL,
	`started_at` integer,
	`finished_at` integer,
	`lease_owner` text,
	`lease_expires_at` integer,
	`claims` integer DEFAULT 0 NOT NULL,
	FOREIGN KEY (`build_id`) REFERENCES `builds`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`retry_of`) REFERENCES `jobs`(`id`) ON UPDATE no action ON DELETE set null
);
--> statement-breakpoint
CREATE UNIQUE INDEX `jobs_build_name_current_uq` ON `jobs` (`build_id`,`name`) WHERE not "jobs"."retried";--> statement-breakpoint
CREATE INDEX `jobs_build_position_idx` ON `jobs` (`build_id`,`position`,`attempt`);--> statement-breakpoint
CREATE INDEX `jobs_queued_idx` ON `jobs` (`id`) WHERE "jobs"."status" = 'queued';--> statement-breakpoint
CREATE INDEX `jobs_running_lease_idx` ON `jobs` (`lease_expires_at`) WHERE "jobs"."status" = 'running';--> statement-breakpoint
CREATE INDEX `jobs_retry_of_idx` ON `jobs` (`retry_of`) WHERE "jobs"."retry_of" is not null;