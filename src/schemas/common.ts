import { Type } from '@sinclair/typebox';

export const IdParams = Type.Object({
  id: Type.Integer({ minimum: 1, maximum: 2_147_483_647, description: 'Numeric identifier', examples: [1] }),
});

/** Handlers may return a Date: the response serialiser writes it as an ISO-8601 string ending in `Z`. */
export const Timestamp = (description: string) =>
  Type.Unsafe<Date | string>(
    Type.String({ format: 'date-time', description: `${description} (ISO-8601, UTC)`, examples: ['2026-11-24T17:32:02.000Z'] }),
  );

export const NullableTimestamp = (description: string) =>
  Type.Union([Timestamp(description), Type.Null()], { description: `${description} (ISO-8601, UTC), or null` });

/** Response headers are documented as a map of name to schema. */
export const LocationHeader = {
  location: Type.String({ description: 'Path of the created resource', examples: ['/projects/1'] }),
};
