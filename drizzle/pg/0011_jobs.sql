-- A build's jobs (issue #16): one row per attempt, written at trigger time from the project's pipeline, the build's
-- snapshot of it. Statuses change only through src/pipelines/progress.ts, inside one transaction per build.
CREATE TABLE "jobs" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "jobs_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"build_id" integer NOT NULL,
	"position" integer NOT NULL,
	"name" text NOT NULL,
	"stage" text NOT NULL,
	"needs" json NOT NULL,
	"when" text NOT NULL,
	"allow_failure" boolean NOT NULL,
	"spec" json NOT NULL,
	"status" text NOT NULL,
	"attempt" integer DEFAULT 1 NOT NULL,
	"retry_of" integer,
	"retried" boolean DEFAULT false NOT NULL,
	"worker" text,
	"duration_s" double precision,
	"logs" text DEFAULT '' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"lease_owner" text,
	"lease_expires_at" timestamp with time zone,
	"claims" integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
ALTER TABLE "jobs" ADD CONSTRAINT "jobs_build_id_builds_id_fk" FOREIGN KEY ("build_id") REFERENCES "public"."builds"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "jobs" ADD CONSTRAINT "jobs_retry_of_jobs_id_fk" FOREIGN KEY ("retry_of") REFERENCES "public"."jobs"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "jobs_build_name_current_uq" ON "jobs" USING btree ("build_id","name") WHERE not "jobs"."retried";--> statement-breakpoint
CREATE INDEX "jobs_build_position_idx" ON "jobs" USING btree ("build_id","position","attempt");--> statement-breakpoint
CREATE INDEX "jobs_queued_idx" ON "jobs" USING btree ("id") WHERE "jobs"."status" = 'queued';--> statement-breakpoint
CREATE INDEX "jobs_running_lease_idx" ON "jobs" USING btree ("lease_expires_at") WHERE "jobs"."status" = 'running';--> statement-breakpoint
CREATE INDEX "jobs_retry_of_idx" ON "jobs" USING btree ("retry_of") WHERE "jobs"."retry_of" is not null;