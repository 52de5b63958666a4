import { Type } from '@sinclair/typebox';

/** The request headers of a log route (a build's or a job's): where a stream resumes, and a byte range of the text. */
export const LogRequestHeaders = Type.Object({
  'last-event-id': Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: Number.MAX_SAFE_INTEGER,
      description:
        'Stream only: the `id` of the last event received (a byte offset); the stream resumes just after it. ' +
        'Browsers send it by themselves when they reconnect. Takes precedence over `?offset=`.',
      examples: [512],
    }),
  ),
  range: Type.Optional(
    Type.String({
      description:
        'Plain text only, ignored with `?offset=`: one byte range (`bytes=N-`, `bytes=N-M` or `bytes=-N`) → 206 with ' +
        '`Content-Range`; a range starting at or past the end → 416. Anything else is ignored (200, the whole log).',
      examples: ['bytes=512-'],
    }),
  ),
});
