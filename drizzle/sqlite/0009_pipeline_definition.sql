-- The project's pipeline definition as JSON text (issue #16), null for the default pipeline.
ALTER TABLE `projects` ADD `pipeline` text;