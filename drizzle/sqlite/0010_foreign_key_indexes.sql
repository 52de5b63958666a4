CREATE INDEX `builds_retry_of_idx` ON `builds` (`retry_of`) WHERE "builds"."retry_of" is not null;--> statement-breakpoint
CREATE INDEX `refresh_tokens_user_idx` ON `refresh_tokens` (`user_id`);