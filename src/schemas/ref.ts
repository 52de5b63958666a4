import { Type, type Static, type TSchema } from '@sinclair/typebox';

/**
 * A `$ref` to a schema registered with `fastify.addSchema`, keeping its static type.
 * Shared schemas are referenced, never inlined, so the OpenAPI document names them.
 */
export function ref<T extends TSchema>(schema: T) {
  if (!schema.$id) throw new Error('ref() needs a schema with an $id');
  return Type.Unsafe<Static<T>>(Type.Ref(schema.$id));
}
