import { Type } from '@sinclair/typebox';

const MAX_ID = 2_147_483_647;

export const IdParams = Type.Object({
  id: Type.Integer({ minimum: 1, maximum: MAX_ID, description: 'Numeric identifier', examples: [1] }),
});

/** `{id}` path parameters that say which resource they name; the example is an id the examples create. */
export const idParams = (description: string, example = 1) =>
  Type.Object({ id: Type.Integer({ minimum: 1, maximum: MAX_ID, description, examples: [example] }) });

/** Handlers may return a Date: the response serialiser writes it as an ISO-8601 string ending in `Z`. */
export const Timestamp = (description: string) =>
  Type.Unsafe<Date | string>(
    Type.String({ format: 'date-time', description: `${description} (ISO-8601, UTC)`, examples: ['2026-11-24T17:32:02.000Z'] }),
  );

export const NullableTimestamp = (description: string) =>
  Type.Union([Timestamp(description), Type.Null()], { description: `${description} (ISO-8601, UTC), or null` });

/** Response headers are documented as a map of name to schema. */
export const locationHeader = (example: string) => ({
  location: Type.String({ description: 'Path of the created resource', examples: [example] }),
});
export const LocationHeader = locationHeader('/projects/1');
/** The `Location` of a created build. */
export const BuildLocationHeader = locationHeader('/builds/1');

/** Any text without control characters (NUL included, which PostgreSQL cannot store in text). */
export const NO_CONTROL_CHARACTERS = '^[^\\u0000-\\u001f\\u007f]*$';
