-- A project's newest build, stored on the project (issue #17): a page of projects then reads 20 rows of one table,
-- instead of looking up each project's newest build. `last_build_number` says which build `last_build_status` is the
-- status of; triggers on `builds` keep both in the transaction that inserts, changes or deletes a build, whoever
-- writes (the app, another process, psql), so the stored status cannot disagree with the builds table. Concurrent
-- writers settle on the project's row: each update below re-checks its condition on the row's newest version (read
-- committed), so a finish of build 7 committed after build 8 was inserted changes nothing.
--
-- - INSERT: a row-level trigger deferred to the commit, so that a new build's project row is the last thing its
--   transaction locks. The engine's writes lock a job count slot, then a build count slot, then the project's row (in
--   that order: a job's status changes before its build's); a build's creation locks a build count slot, then a job
--   count slot (its jobs come after it), and with an immediate trigger the project's row in between: a creation and a
--   finish in the same project each waited on the other (deadlock detected, a 500). Deferred, it locks the row after
--   everything else, as the engine does. It reads the build at commit and writes only when no newer build is there:
--   a statement inserting many builds of a project (a seed, an import) rewrites its row once, not once per build.
-- - UPDATE OF status: a row-level trigger, only when the status really changes (WHEN is checked without calling the
--   function); it writes only when the build is the project's newest, so a statement changing many old builds'
--   status (expired leases, a cancel) rewrites no project row.
-- - DELETE: the newest remaining build, when the deleted ones included the newest (a project's own deletion cascades
--   to its builds; its row is already gone then, and nothing is written). A project's deletion locks its row, then its
--   builds'; a build finishing meanwhile holds its build's row and waits for the project's: PostgreSQL fails one of
--   the two (deadlock detected), and the app runs it again (src/db/deadlocks.ts).
-- A build's number and project never change, so no trigger watches them.
ALTER TABLE "projects" ADD COLUMN "last_build_number" integer;--> statement-breakpoint
ALTER TABLE "projects" ADD COLUMN "last_build_status" text;--> statement-breakpoint
UPDATE "projects" AS p SET "last_build_number" = newest."number", "last_build_status" = newest."status"
  FROM (SELECT DISTINCT ON ("project_id") "project_id", "number", "status" FROM "builds" ORDER BY "project_id", "number" DESC) AS newest
  WHERE newest."project_id" = p."id";
--> statement-breakpoint
CREATE FUNCTION "usine_project_last_build_insert"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- The build as it is at commit (its status may have changed since its insert, or it may be gone), and only if no
  -- newer build of its project is there: a statement inserting many builds updates the project's row once.
  UPDATE "projects" AS p SET "last_build_number" = b."number", "last_build_status" = b."status"
    FROM "builds" AS b
    WHERE b."id" = NEW."id" AND p."id" = b."project_id"
      AND (p."last_build_number" IS NULL OR p."last_build_number" < b."number")
      AND NOT EXISTS (SELECT 1 FROM "builds" AS newer WHERE newer."project_id" = b."project_id" AND newer."number" > b."number");
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE CONSTRAINT TRIGGER "builds_last_build_insert" AFTER INSERT ON "builds" DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW EXECUTE FUNCTION "usine_project_last_build_insert"();
--> statement-breakpoint
CREATE FUNCTION "usine_project_last_build_status"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "projects" SET "last_build_status" = NEW."status"
    WHERE "id" = NEW."project_id" AND "last_build_number" = NEW."number";
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "builds_last_build_status" AFTER UPDATE OF "status" ON "builds" FOR EACH ROW
  WHEN (OLD."status" IS DISTINCT FROM NEW."status")
  EXECUTE FUNCTION "usine_project_last_build_status"();
--> statement-breakpoint
CREATE FUNCTION "usine_project_last_build_delete"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "projects" AS p SET ("last_build_number", "last_build_status") =
      (SELECT b."number", b."status" FROM "builds" AS b WHERE b."project_id" = p."id" ORDER BY b."number" DESC LIMIT 1)
    WHERE EXISTS (SELECT 1 FROM "deleted_builds" AS d WHERE d."project_id" = p."id" AND d."number" = p."last_build_number");
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "builds_last_build_delete" AFTER DELETE ON "builds" REFERENCING OLD TABLE AS "deleted_builds"
  FOR EACH STATEMENT EXECUTE FUNCTION "usine_project_last_build_delete"();
