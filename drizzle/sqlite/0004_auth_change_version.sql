-- Hand-written (drizzle-kit generate --custom): a counter that moves whenever a cached caller may be stale.
-- Authentication caches "this user, with this role, in this unrevoked session" (plugins/app/caller-cache.ts) and
-- reads this one-row table every few milliseconds: any write that could change that answer (a user renamed, demoted
-- or deleted; a session revoked; tokens deleted), on any connection (another process, the sqlite3 shell), bumps it,
-- and the cache is dropped. Logins (inserts) and rotations (used_at) do not.
CREATE TABLE `auth_version` (
	`id` integer PRIMARY KEY NOT NULL CHECK (`id` = 1),
	`version` integer NOT NULL
);
--> statement-breakpoint
INSERT INTO `auth_version` (`id`, `version`) VALUES (1, 0);
--> statement-breakpoint
CREATE TRIGGER `users_auth_change_update` AFTER UPDATE OF `username`, `role` ON `users`
BEGIN
	UPDATE `auth_version` SET `version` = `version` + 1 WHERE `id` = 1;
END;
--> statement-breakpoint
CREATE TRIGGER `users_auth_change_delete` AFTER DELETE ON `users`
BEGIN
	UPDATE `auth_version` SET `version` = `version` + 1 WHERE `id` = 1;
END;
--> statement-breakpoint
CREATE TRIGGER `refresh_tokens_auth_change_update` AFTER UPDATE OF `revoked_at`, `family_id`, `user_id` ON `refresh_tokens`
BEGIN
	UPDATE `auth_version` SET `version` = `version` + 1 WHERE `id` = 1;
END;
--> statement-breakpoint
CREATE TRIGGER `refresh_tokens_auth_change_delete` AFTER DELETE ON `refresh_tokens`
BEGIN
	UPDATE `auth_version` SET `version` = `version` + 1 WHERE `id` = 1;
END;
--> statement-breakpoint
CREATE TRIGGER `refresh_tokens_auth_change_insert` AFTER INSERT ON `refresh_tokens` WHEN NEW.`revoked_at` IS NOT NULL
BEGIN
	UPDATE `auth_version` SET `version` = `version` + 1 WHERE `id` = 1;
END;
