CREATE TABLE "deliveries" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "deliveries_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"hook_id" integer NOT NULL,
	"event_id" bigint,
	"event_type" text NOT NULL,
	"message_id" text NOT NULL,
	"body" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp with time zone,
	"retry_until" timestamp with time zone NOT NULL,
	"last_attempt_at" timestamp with time zone,
	"last_status_code" integer,
	"last_error" text,
	"lease_owner" text,
	"lease_expires_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "deliveries_message_id_unique" UNIQUE("message_id")
);
--> statement-breakpoint
CREATE TABLE "delivery_attempts" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "delivery_attempts_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"delivery_id" integer NOT NULL,
	"attempt" integer NOT NULL,
	"request_headers" json NOT NULL,
	"response_status" integer,
	"response_headers" json,
	"response_body" text,
	"error" text,
	"duration_ms" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "event_marks" (
	"name" text PRIMARY KEY NOT NULL,
	"value" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "events" (
	"seq" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "events_seq_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"id" bigint,
	"type" text NOT NULL,
	"project_id" integer,
	"build_id" integer,
	"job_id" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"data" json NOT NULL
);
--> statement-breakpoint
CREATE TABLE "hooks" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "hooks_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"project_id" integer NOT NULL,
	"url" text NOT NULL,
	"events" json NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"active" boolean DEFAULT true NOT NULL,
	"secret" text NOT NULL,
	"previous_secret" text,
	"previous_secret_expires_at" timestamp with time zone,
	"disabled_reason" text,
	"consecutive_failures" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "deliveries" ADD CONSTRAINT "deliveries_hook_id_hooks_id_fk" FOREIGN KEY ("hook_id") REFERENCES "public"."hooks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "delivery_attempts" ADD CONSTRAINT "delivery_attempts_delivery_id_deliveries_id_fk" FOREIGN KEY ("delivery_id") REFERENCES "public"."deliveries"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "hooks" ADD CONSTRAINT "hooks_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "deliveries_hook_idx" ON "deliveries" USING btree ("hook_id","id");--> statement-breakpoint
CREATE INDEX "deliveries_due_idx" ON "deliveries" USING btree ("next_attempt_at","id") WHERE "deliveries"."status" = 'pending';--> statement-breakpoint
CREATE UNIQUE INDEX "deliveries_one_in_flight_uq" ON "deliveries" USING btree ("hook_id") WHERE "deliveries"."status" = 'delivering';--> statement-breakpoint
CREATE INDEX "deliveries_lease_idx" ON "deliveries" USING btree ("lease_expires_at") WHERE "deliveries"."status" = 'delivering';--> statement-breakpoint
CREATE INDEX "delivery_attempts_delivery_idx" ON "delivery_attempts" USING btree ("delivery_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "events_id_uq" ON "events" USING btree ("id");--> statement-breakpoint
CREATE INDEX "events_unsequenced_idx" ON "events" USING btree ("seq") WHERE "events"."id" is null;--> statement-breakpoint
CREATE INDEX "events_project_id_idx" ON "events" USING btree ("project_id","id");--> statement-breakpoint
CREATE INDEX "events_created_at_idx" ON "events" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "hooks_project_idx" ON "hooks" USING btree ("project_id");--> statement-breakpoint
-- The event log is written by triggers, in the transaction that makes each change, whoever makes it (a route, a worker
-- of any replica, a migration): an event can neither be lost nor describe a change that was rolled back. `data` is the
-- resource as the API shows it (a build without its log; a hook without its URL or secrets), timestamps as the API
-- writes them. Ids are given after commit by the sequencer (src/events/sequencer.ts).
CREATE FUNCTION usine_iso(t timestamptz) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;
--> statement-breakpoint
-- `build.succeeded`, `job.failed`: event names use verbs, statuses stay as the API has them.
CREATE FUNCTION usine_event_verb(status text) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE status WHEN 'success' THEN 'succeeded' WHEN 'fail' THEN 'failed' ELSE status END $$;
--> statement-breakpoint
CREATE FUNCTION usine_project_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	p projects;
BEGIN
	IF TG_OP = 'DELETE' THEN p := OLD; ELSE p := NEW; END IF;
	INSERT INTO events (type, project_id, data) VALUES (
		'project.' || CASE TG_OP WHEN 'INSERT' THEN 'created' WHEN 'UPDATE' THEN 'updated' ELSE 'deleted' END,
		p.id,
		json_build_object('id', p.id, 'name', p.name, 'repo', p.repo, 'default_branch', p.default_branch,
			'last_build_status', p.last_build_status, 'created_at', usine_iso(p.created_at), 'updated_at', usine_iso(p.updated_at)));
	RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER projects_events_insert AFTER INSERT ON projects FOR EACH ROW EXECUTE FUNCTION usine_project_event();
--> statement-breakpoint
-- A change a user made (it bumps updated_at), not the newest build's status that triggers keep on the row.
CREATE TRIGGER projects_events_update AFTER UPDATE ON projects FOR EACH ROW
	WHEN (OLD.updated_at IS DISTINCT FROM NEW.updated_at) EXECUTE FUNCTION usine_project_event();
--> statement-breakpoint
CREATE TRIGGER projects_events_delete AFTER DELETE ON projects FOR EACH ROW EXECUTE FUNCTION usine_project_event();
--> statement-breakpoint
CREATE FUNCTION usine_build_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO events (type, project_id, build_id, data) VALUES (
		'build.' || usine_event_verb(NEW.status), NEW.project_id, NEW.id,
		json_build_object('id', NEW.id, 'project_id', NEW.project_id, 'number', NEW.number, 'status', NEW.status,
			'branch', NEW.branch, 'commit_sha', NEW.commit_sha, 'triggered_by', NEW.triggered_by, 'retry_of', NEW.retry_of,
			'duration_s', NEW.duration_s, 'created_at', usine_iso(NEW.created_at), 'started_at', usine_iso(NEW.started_at),
			'finished_at', usine_iso(NEW.finished_at)));
	RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER builds_events_insert AFTER INSERT ON builds FOR EACH ROW EXECUTE FUNCTION usine_build_event();
--> statement-breakpoint
CREATE TRIGGER builds_events_status AFTER UPDATE OF status ON builds FOR EACH ROW
	WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION usine_build_event();
--> statement-breakpoint
CREATE FUNCTION usine_job_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO events (type, project_id, build_id, job_id, data)
	SELECT 'job.' || usine_event_verb(NEW.status), b.project_id, NEW.build_id, NEW.id,
		json_build_object('id', NEW.id, 'build_id', NEW.build_id, 'name', NEW.name, 'stage', NEW.stage, 'needs', NEW.needs,
			'status', NEW.status, 'allow_failure', NEW.allow_failure, 'when', NEW."when", 'attempt', NEW.attempt,
			'retry_of', NEW.retry_of, 'retried', NEW.retried, 'worker', NEW.worker, 'duration_s', NEW.duration_s,
			'created_at', usine_iso(NEW.created_at), 'started_at', usine_iso(NEW.started_at), 'finished_at', usine_iso(NEW.finished_at))
	FROM builds b WHERE b.id = NEW.build_id;
	RETURN NULL;
END $$;
--> statement-breakpoint
-- `created` (waiting for its needs) is not an event: the job's build was just queued, or a retry planned it.
CREATE TRIGGER jobs_events_insert AFTER INSERT ON jobs FOR EACH ROW
	WHEN (NEW.status <> 'created') EXECUTE FUNCTION usine_job_event();
--> statement-breakpoint
CREATE TRIGGER jobs_events_status AFTER UPDATE OF status ON jobs FOR EACH ROW
	WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status <> 'created') EXECUTE FUNCTION usine_job_event();
--> statement-breakpoint
CREATE FUNCTION usine_hook_disabled_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO events (type, project_id, data) VALUES ('hook.disabled', NEW.project_id,
		json_build_object('id', NEW.id, 'project_id', NEW.project_id, 'description', NEW.description, 'active', NEW.active,
			'disabled_reason', NEW.disabled_reason, 'consecutive_failures', NEW.consecutive_failures,
			'updated_at', usine_iso(NEW.updated_at)));
	RETURN NULL;
END $$;
--> statement-breakpoint
-- Only a disabling by the delivery workers (it says why); a user's PATCH {active: false} is not an event.
CREATE TRIGGER hooks_events_disabled AFTER UPDATE OF active ON hooks FOR EACH ROW
	WHEN (OLD.active AND NOT NEW.active AND NEW.disabled_reason IS NOT NULL) EXECUTE FUNCTION usine_hook_disabled_event();
--> statement-breakpoint
INSERT INTO event_marks (name, value) VALUES ('webhooks', 0), ('purged', 0);
