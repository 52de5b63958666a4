-- Hand-written (drizzle-kit generate --custom): tells every Usine process that a cached caller may be stale.
-- Authentication caches "this user, with this role, in this unrevoked session" (plugins/app/caller-cache.ts); any
-- statement that could change that answer (a user renamed, demoted or deleted; a session revoked; tokens deleted)
-- sends a NOTIFY on `usine_auth`, and each process drops its cache when it gets one. Statement-level, so a
-- statement revoking many rows sends one notification, and PostgreSQL folds identical ones within a transaction.
-- Logins (inserts) and rotations (updates of used_at) send nothing: they cannot take access away.
CREATE FUNCTION "usine_notify_auth_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('usine_auth', TG_TABLE_NAME);
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "users_auth_change" AFTER UPDATE OF "username", "role" OR DELETE OR TRUNCATE ON "users"
  FOR EACH STATEMENT EXECUTE FUNCTION "usine_notify_auth_change"();
--> statement-breakpoint
CREATE TRIGGER "refresh_tokens_auth_change" AFTER UPDATE OF "revoked_at", "family_id", "user_id" OR DELETE OR TRUNCATE ON "refresh_tokens"
  FOR EACH STATEMENT EXECUTE FUNCTION "usine_notify_auth_change"();
--> statement-breakpoint
-- A token inserted already revoked revokes its family (see src/repositories/refresh-tokens.ts).
CREATE TRIGGER "refresh_tokens_auth_change_insert" AFTER INSERT ON "refresh_tokens"
  FOR EACH ROW WHEN (NEW."revoked_at" IS NOT NULL) EXECUTE FUNCTION "usine_notify_auth_change"();
