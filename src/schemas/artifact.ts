import { Type, type Static } from '@sinclair/typebox';
import { NO_CONTROL_CHARACTERS, Timestamp } from './common.js';
import { ref } from './ref.js';

const SHA256 = 'c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2';

/** At most 200 characters: the router's `maxParamLength` (src/server.ts) refuses longer path parameters with a 414. */
export const ArtifactName = Type.String({
  minLength: 1,
  maxLength: 200,
  pattern: NO_CONTROL_CHARACTERS,
  description: 'Artifact file name, as listed by `GET /builds/{id}/artifacts`',
  examples: ['demoproj-1.tar.gz'],
});

/** Metadata of one artifact (its bytes are downloaded separately, from `download_url`). */
export const Artifact = Type.Object(
  {
    name: {
      ...ArtifactName,
      description:
        'File name: `<project-slug>-<build number>.tar.gz` for the build’s own (stored by the default pipeline’s ' +
        '`package` job), `<project-slug>-<build number>-<job>.tar.gz` for any other job’s',
    },
    content_type: Type.String({ description: 'Media type of the file', examples: ['application/gzip'] }),
    size_bytes: Type.Integer({ minimum: 0, description: 'Size of the file in bytes', examples: [1432] }),
    sha256: Type.String({
      pattern: '^[0-9a-f]{64}$',
      description: "SHA-256 of the file, lowercase hex; the download's `ETag` is this value in quotes",
      examples: [SHA256],
    }),
    created_at: Timestamp('When the artifact was stored'),
    download_url: Type.String({
      description: 'Path to download the file from: under the build, or under the job in a job’s list',
      examples: ['/builds/1/artifacts/demoproj-1.tar.gz'],
    }),
  },
  {
    $id: 'Artifact',
    title: 'Artifact',
    description: 'A file produced by a successful build or job: a `.tar.gz` holding `build-info.json` and `build.log`',
  },
);
export type ArtifactBody = Static<typeof Artifact>;

export const ArtifactList = Type.Object(
  { items: Type.Array(ref(Artifact), { description: "The build's artifacts, by name; empty unless the build succeeded" }) },
  {
    description: "A build's artifacts",
    examples: [
      {
        items: [
          {
            name: 'demoproj-1.tar.gz',
            content_type: 'application/gzip',
            size_bytes: 1432,
            sha256: SHA256,
            created_at: '2026-11-24T17:32:02.000Z',
            download_url: '/builds/1/artifacts/demoproj-1.tar.gz',
          },
        ],
      },
    ],
  },
);

export const JobArtifactList = Type.Object(
  {
    items: Type.Array(ref(Artifact), {
      description: "The job's artifacts, by name; empty unless the job succeeded and its definition says `artifacts: true`",
    }),
  },
  {
    description: "A job's artifacts",
    examples: [
      {
        items: [
          {
            name: 'demoproj-1.tar.gz',
            content_type: 'application/gzip',
            size_bytes: 1432,
            sha256: SHA256,
            created_at: '2026-11-24T17:32:02.000Z',
            download_url: '/jobs/4/artifacts/demoproj-1.tar.gz',
          },
        ],
      },
    ],
  },
);
