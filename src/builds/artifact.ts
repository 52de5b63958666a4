import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { NewArtifact } from '../repositories/artifacts.js';
import type { BuildRow } from '../repositories/builds.js';

/** What a successful run knows when it packages its artifact. */
export interface ArtifactInput {
  build: Pick<BuildRow, 'id' | 'number' | 'branch' | 'commit_sha' | 'triggered_by' | 'retry_of' | 'created_at' | 'started_at'>;
  project: { id: number; name: string; repo: string };
  duration_s: number;
  /** The build's log as written so far. */
  log: string;
  /** The worker that ran the build. */
  builtBy: string;
  /** Packaging time: `packaged_at` and the archive entries' mtime. */
  now: Date;
}

export interface TarEntry {
  name: string;
  content: Buffer;
}

export const ARTIFACT_CONTENT_TYPE = 'application/gzip';

const BLOCK = 512;
const MAX_SLUG_LENGTH = 100;

/**
 * A file-name-safe form of a project name: accents dropped, lowercase, anything outside `[a-z0-9._-]` turned into
 * `-`, runs of `-` collapsed, no leading or trailing `-` or `.`, at most 100 characters; `project` if nothing is left.
 */
export function slugify(name: string): string {
  const slug = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .slice(0, MAX_SLUG_LENGTH)
    .replace(/^[-.]+|[-.]+$/g, '');
  return slug === '' ? 'project' : slug;
}

export const artifactName = (projectName: string, buildNumber: number) => `${slugify(projectName)}-${buildNumber}.tar.gz`;

/** `build-info.json`: what was built, from what, by whom and when. */
export function buildInfo({ build, project, duration_s, builtBy, now }: ArtifactInput): string {
  const info = {
    project: { id: project.id, name: project.name, repo: project.repo },
    build: {
      id: build.id,
      number: build.number,
      branch: build.branch,
      commit_sha: build.commit_sha,
      triggered_by: build.triggered_by,
      retry_of: build.retry_of,
      created_at: build.created_at.toISOString(),
      started_at: build.started_at?.toISOString() ?? null,
    },
    duration_s,
    built_by: builtBy,
    packaged_at: now.toISOString(),
  };
  return `${JSON.stringify(info, null, 2)}\n`;
}

/** Writes `value` as a NUL-terminated, zero-padded octal number filling `length` bytes at `offset`. */
function writeOctal(header: Buffer, offset: number, length: number, value: number): void {
  header.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'ascii');
}

/** One POSIX ustar header block for a regular file (mode 0644, owner 0:0). */
export function tarHeader(name: string, size: number, mtime: Date): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long: ${name}`);
  const header = Buffer.alloc(BLOCK);
  header.write(name, 0, 100, 'utf8');
  writeOctal(header, 100, 8, 0o644);
  writeOctal(header, 108, 8, 0); // uid
  writeOctal(header, 116, 8, 0); // gid
  writeOctal(header, 124, 12, size);
  writeOctal(header, 136, 12, Math.floor(mtime.getTime() / 1000));
  header.fill(' ', 148, 156); // the checksum field counts as spaces while the checksum is computed
  header.write('0', 156, 1, 'ascii'); // typeflag: regular file
  header.write('ustar\0', 257, 6, 'ascii');
  header.write('00', 263, 2, 'ascii');
  let checksum = 0;
  for (const byte of header) checksum += byte;
  header.write(`${checksum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return header;
}

/** A tar archive: each entry's header and content padded to whole blocks, then two zero blocks. */
export function tar(entries: TarEntry[], mtime: Date): Buffer {
  const parts = entries.flatMap(({ name, content }) => [
    tarHeader(name, content.length, mtime),
    content,
    Buffer.alloc((BLOCK - (content.length % BLOCK)) % BLOCK),
  ]);
  return Buffer.concat([...parts, Buffer.alloc(2 * BLOCK)]);
}

/** The artifact of a successful build: `<project-slug>-<number>.tar.gz` holding `build-info.json` and `build.log`. */
export function packArtifact(input: ArtifactInput): NewArtifact {
  const archive = tar(
    [
      { name: 'build-info.json', content: Buffer.from(buildInfo(input), 'utf8') },
      { name: 'build.log', content: Buffer.from(input.log, 'utf8') },
    ],
    input.now,
  );
  const content = gzipSync(archive);
  return {
    name: artifactName(input.project.name, input.build.number),
    content_type: ARTIFACT_CONTENT_TYPE,
    content,
    size_bytes: content.length,
    sha256: createHash('sha256').update(content).digest('hex'),
  };
}
