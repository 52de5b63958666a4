import fp from 'fastify-plugin';
import { PipelineDefinition } from '../../src/pipelines/definition.js';

/**
 * The pipeline definition as a shared schema, added at the root like src/app.ts's others, so that the routes that take
 * and answer it reference one `components.schemas.PipelineDefinition` in the OpenAPI document and the client.
 */
export default fp(
  async (fastify) => {
    fastify.addSchema(PipelineDefinition);
  },
  { name: 'pipeline-schemas' },
);
