-- The project's pipeline definition (issue #16), null for the default pipeline. `json`, not `jsonb`: jsonb reorders
-- object keys, and the order of `jobs` is the pipeline's order within a stage.
ALTER TABLE "projects" ADD COLUMN "pipeline" json;