-- Hand-written (drizzle-kit generate --custom): the exact number of projects, kept by triggers so that GET /projects
-- reads its total from at most 16 small rows instead of counting the whole table on every request. Writers add to
-- the slot of their backend (pg_backend_pid() % 16), so concurrent inserts do not all wait on one counter row; the
-- total is the sum of the slots. Statement-level triggers reading the transition table do one upsert per statement
-- (a row-level trigger updating the same counter row for each of 35,000 rows inserted in one statement took 13 s,
-- this takes a few milliseconds); a statement that changes no row (a name taken: ON CONFLICT DO NOTHING) writes
-- nothing. Any writer counts: the app, another process, psql.
CREATE TABLE "project_count" (
	"slot" smallint PRIMARY KEY NOT NULL,
	"n" bigint NOT NULL
);
--> statement-breakpoint
CREATE FUNCTION "usine_project_count_insert"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "project_count" AS c ("slot", "n")
    SELECT pg_backend_pid() % 16, count(*) FROM "inserted_projects" HAVING count(*) > 0
    ON CONFLICT ("slot") DO UPDATE SET "n" = c."n" + EXCLUDED."n";
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE FUNCTION "usine_project_count_delete"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "project_count" AS c ("slot", "n")
    SELECT pg_backend_pid() % 16, -count(*) FROM "deleted_projects" HAVING count(*) > 0
    ON CONFLICT ("slot") DO UPDATE SET "n" = c."n" + EXCLUDED."n";
  RETURN NULL;
END
$$;
--> statement-breakpoint
-- TRUNCATE fires no row or DELETE trigger; it also fires this one when it reaches projects through CASCADE.
CREATE FUNCTION "usine_project_count_truncate"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM "project_count";
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "projects_count_insert" AFTER INSERT ON "projects" REFERENCING NEW TABLE AS "inserted_projects"
  FOR EACH STATEMENT EXECUTE FUNCTION "usine_project_count_insert"();
--> statement-breakpoint
CREATE TRIGGER "projects_count_delete" AFTER DELETE ON "projects" REFERENCING OLD TABLE AS "deleted_projects"
  FOR EACH STATEMENT EXECUTE FUNCTION "usine_project_count_delete"();
--> statement-breakpoint
CREATE TRIGGER "projects_count_truncate" AFTER TRUNCATE ON "projects"
  FOR EACH STATEMENT EXECUTE FUNCTION "usine_project_count_truncate"();
--> statement-breakpoint
-- After the triggers: CREATE TRIGGER locks projects against writes until the migration's transaction commits, so no
-- row is counted twice or missed between this count and the first trigger.
INSERT INTO "project_count" ("slot", "n") SELECT 0, count(*) FROM "projects";
