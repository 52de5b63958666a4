-- Hand-written (drizzle-kit generate --custom): how many builds are in each status, kept by triggers so that a
-- /metrics scrape reads at most 16 small rows instead of counting the whole builds table (migration 0005 does the same
-- for project_count). The total of a status is the sum of its column over the slots. Any writer counts: the app,
-- another process, psql.
--
-- - INSERT and DELETE (a project's deletion cascades to its builds): statement-level triggers reading the transition
--   table, one upsert per statement however many rows, into the slot of the writer's backend (pg_backend_pid() % 16).
-- - UPDATE: a row-level trigger on `UPDATE OF status`, only when the status really changes (the WHEN condition is
--   checked without calling the function). The build engine's frequent updates that leave the status alone (log
--   appends, lease renewals) cost nothing; a statement-level UPDATE trigger cost each of them ~50 µs (transition
--   tables are filled for every update). The app changes one build's status per statement (a few at most when leases
--   expire). The slot is the build's id % 16: a statement changing the status of many rows rewrites a slot row once
--   per row, and those versions pile up within the transaction (an UPDATE of 35,000 builds' status took 7 s here,
--   19 s with a single slot); concurrent workers finishing different builds seldom wait on the same row.
CREATE TABLE "build_status_count" (
	"slot" smallint PRIMARY KEY NOT NULL,
	"queued" bigint DEFAULT 0 NOT NULL,
	"running" bigint DEFAULT 0 NOT NULL,
	"success" bigint DEFAULT 0 NOT NULL,
	"fail" bigint DEFAULT 0 NOT NULL,
	"canceled" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE FUNCTION "usine_build_count_insert"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "build_status_count" AS c ("slot", "queued", "running", "success", "fail", "canceled")
    SELECT pg_backend_pid() % 16,
      count(*) FILTER (WHERE "status" = 'queued'), count(*) FILTER (WHERE "status" = 'running'),
      count(*) FILTER (WHERE "status" = 'success'), count(*) FILTER (WHERE "status" = 'fail'),
      count(*) FILTER (WHERE "status" = 'canceled')
    FROM "inserted_builds" HAVING count(*) > 0
    ON CONFLICT ("slot") DO UPDATE SET "queued" = c."queued" + EXCLUDED."queued", "running" = c."running" + EXCLUDED."running",
      "success" = c."success" + EXCLUDED."success", "fail" = c."fail" + EXCLUDED."fail", "canceled" = c."canceled" + EXCLUDED."canceled";
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE FUNCTION "usine_build_count_delete"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "build_status_count" AS c ("slot", "queued", "running", "success", "fail", "canceled")
    SELECT pg_backend_pid() % 16,
      -count(*) FILTER (WHERE "status" = 'queued'), -count(*) FILTER (WHERE "status" = 'running'),
      -count(*) FILTER (WHERE "status" = 'success'), -count(*) FILTER (WHERE "status" = 'fail'),
      -count(*) FILTER (WHERE "status" = 'canceled')
    FROM "deleted_builds" HAVING count(*) > 0
    ON CONFLICT ("slot") DO UPDATE SET "queued" = c."queued" + EXCLUDED."queued", "running" = c."running" + EXCLUDED."running",
      "success" = c."success" + EXCLUDED."success", "fail" = c."fail" + EXCLUDED."fail", "canceled" = c."canceled" + EXCLUDED."canceled";
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE FUNCTION "usine_build_count_status_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "build_status_count" AS c ("slot", "queued", "running", "success", "fail", "canceled")
    VALUES (NEW."id" % 16,
      (NEW."status" = 'queued')::int - (OLD."status" = 'queued')::int,
      (NEW."status" = 'running')::int - (OLD."status" = 'running')::int,
      (NEW."status" = 'success')::int - (OLD."status" = 'success')::int,
      (NEW."status" = 'fail')::int - (OLD."status" = 'fail')::int,
      (NEW."status" = 'canceled')::int - (OLD."status" = 'canceled')::int)
    ON CONFLICT ("slot") DO UPDATE SET "queued" = c."queued" + EXCLUDED."queued", "running" = c."running" + EXCLUDED."running",
      "success" = c."success" + EXCLUDED."success", "fail" = c."fail" + EXCLUDED."fail", "canceled" = c."canceled" + EXCLUDED."canceled";
  RETURN NULL;
END
$$;
--> statement-breakpoint
-- TRUNCATE fires no row or DELETE trigger; it also fires this one when it reaches builds through CASCADE.
CREATE FUNCTION "usine_build_count_truncate"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM "build_status_count";
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "builds_count_insert" AFTER INSERT ON "builds" REFERENCING NEW TABLE AS "inserted_builds"
  FOR EACH STATEMENT EXECUTE FUNCTION "usine_build_count_insert"();
--> statement-breakpoint
CREATE TRIGGER "builds_count_delete" AFTER DELETE ON "builds" REFERENCING OLD TABLE AS "deleted_builds"
  FOR EACH STATEMENT EXECUTE FUNCTION "usine_build_count_delete"();
--> statement-breakpoint
CREATE TRIGGER "builds_count_status_change" AFTER UPDATE OF "status" ON "builds"
  FOR EACH ROW WHEN (OLD."status" IS DISTINCT FROM NEW."status") EXECUTE FUNCTION "usine_build_count_status_change"();
--> statement-breakpoint
CREATE TRIGGER "builds_count_truncate" AFTER TRUNCATE ON "builds"
  FOR EACH STATEMENT EXECUTE FUNCTION "usine_build_count_truncate"();
--> statement-breakpoint
-- After the triggers: CREATE TRIGGER locks builds against writes until the migration's transaction commits, so no
-- row is counted twice or missed between this count and the first trigger.
INSERT INTO "build_status_count" ("slot", "queued", "running", "success", "fail", "canceled")
  SELECT 0, count(*) FILTER (WHERE "status" = 'queued'), count(*) FILTER (WHERE "status" = 'running'),
    count(*) FILTER (WHERE "status" = 'success'), count(*) FILTER (WHERE "status" = 'fail'),
    count(*) FILTER (WHERE "status" = 'canceled')
  FROM "builds";
