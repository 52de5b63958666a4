CREATE TABLE `artifacts` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`build_id` integer NOT NULL,
	`name` text NOT NULL,
	`content_type` text NOT NULL,
	`size_bytes` integer NOT NULL,
	`sha256` text NOT NULL,
	`content` blob NOT NULL,
	`created_at` integer DEFAULT (cast(unixepoch('subsec') * 1000 as integer)) NOT NULL,
	FOREIGN KEY (`build_id`) REFERENCES `builds`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `artifacts_build_name_uq` ON `artifacts` (`build_id`,`name`);--> statement-breakpoint
ALTER TABLE `builds` ADD `lease_owner` text;--> statement-breakpoint
ALTER TABLE `builds` ADD `lease_expires_at` integer;--> statement-breakpoint
ALTER TABLE `builds` ADD `attempts` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `builds` ADD `idempotency_key` text;--> statement-breakpoint
CREATE INDEX `builds_running_lease_idx` ON `builds` (`lease_expires_at`) WHERE "builds"."status" = 'running';--> statement-breakpoint
CREATE UNIQUE INDEX `builds_idempotency_uq` ON `builds` (`project_id`,`idempotency_key`) WHERE "builds"."idempotency_key" is not null;