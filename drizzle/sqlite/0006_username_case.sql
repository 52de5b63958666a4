-- Hand-written (drizzle-kit generate --custom): one user per username whatever its case, as GitHub does: `Alice` and
-- `alice` cannot both exist, and either spelling logs in (src/repositories/users.ts). The case given at creation is
-- kept and shown. SQLite's lower() folds ASCII only, which is all a username may hold (src/schemas/user.ts).
--
-- A database may already hold names that differ only in case (nothing forbade them before). The oldest account of each
-- such group keeps its name; every newer one is renamed `<name>-<id>` (cut to stay within the 64 characters a username
-- may have). No row, build or token is lost, and the renamed accounts keep their id, role and password: an admin sees
-- them in GET /users and tells their owners. Should a new name be taken as well, the unique index below fails and the
-- whole migration with it (the server does not start, and says why) rather than guess again.
UPDATE `users`
SET `username` = substr(`username`, 1, 63 - length(`id`)) || '-' || `id`
WHERE EXISTS (
  SELECT 1 FROM `users` AS `older` WHERE lower(`older`.`username`) = lower(`users`.`username`) AND `older`.`id` < `users`.`id`
);
--> statement-breakpoint
CREATE UNIQUE INDEX `users_username_lower_unique` ON `users` (lower(`username`));
