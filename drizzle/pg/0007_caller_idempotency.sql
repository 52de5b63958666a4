-- An Idempotency-Key belongs to the user who sent it (as payment APIs scope them): two users of one project sending
-- the same key get a build each, and only the sender's own repeat answers the first build. Keys already stored are
-- given to the user who triggered their build (by username); a key whose user is gone is forgotten.
-- refresh_tokens_expires_idx serves the background purge's scan of expired rows (plugins/app/refresh-token-purge.ts).
ALTER TABLE "builds" ADD COLUMN "idempotency_user_id" integer;--> statement-breakpoint
UPDATE "builds" SET "idempotency_user_id" = (SELECT "users"."id" FROM "users" WHERE "users"."username" = "builds"."triggered_by") WHERE "idempotency_key" IS NOT NULL;--> statement-breakpoint
UPDATE "builds" SET "idempotency_key" = NULL WHERE "idempotency_key" IS NOT NULL AND "idempotency_user_id" IS NULL;--> statement-breakpoint
DROP INDEX "builds_idempotency_uq";--> statement-breakpoint
CREATE UNIQUE INDEX "builds_idempotency_caller_uq" ON "builds" USING btree ("project_id","idempotency_user_id","idempotency_key") WHERE "builds"."idempotency_key" is not null;--> statement-breakpoint
CREATE INDEX "refresh_tokens_expires_idx" ON "refresh_tokens" USING btree ("expires_at");
