import { gunzipSync } from 'node:zlib';

export interface TarEntryRead {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  magic: string;
  version: string;
  /** Stored checksum field, and the one computed over the header with that field as spaces. */
  checksum: { stored: number; computed: number };
  content: Buffer;
}

export interface TarRead {
  entries: TarEntryRead[];
  /** Zero blocks after the last entry (a tar ends with at least two). */
  trailingZeroBlocks: number;
  totalBytes: number;
}

const BLOCK = 512;
const text = (block: Buffer, offset: number, length: number) =>
  block.subarray(offset, offset + length).toString('latin1').replace(/\0.*$/s, '');
const octal = (block: Buffer, offset: number, length: number) => parseInt(text(block, offset, length).trim() || '0', 8);

/** A small, strict ustar reader for tests: it parses every field, it does not trust them. */
export function readTar(archive: Buffer): TarRead {
  const entries: TarEntryRead[] = [];
  let offset = 0;
  while (offset + BLOCK <= archive.length) {
    const header = archive.subarray(offset, offset + BLOCK);
    if (header.every((byte) => byte === 0)) break;
    let computed = 0;
    header.forEach((byte, i) => (computed += i >= 148 && i < 156 ? 0x20 : byte));
    const size = octal(header, 124, 12);
    entries.push({
      name: text(header, 0, 100),
      mode: octal(header, 100, 8),
      uid: octal(header, 108, 8),
      gid: octal(header, 116, 8),
      size,
      mtime: octal(header, 136, 12),
      typeflag: text(header, 156, 1),
      magic: header.subarray(257, 263).toString('latin1'),
      version: header.subarray(263, 265).toString('latin1'),
      checksum: { stored: octal(header, 148, 8), computed },
      content: Buffer.from(archive.subarray(offset + BLOCK, offset + BLOCK + size)),
    });
    offset += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
  }
  let trailingZeroBlocks = 0;
  for (; offset + BLOCK <= archive.length; offset += BLOCK) {
    if (!archive.subarray(offset, offset + BLOCK).every((byte) => byte === 0)) break;
    trailingZeroBlocks += 1;
  }
  return { entries, trailingZeroBlocks, totalBytes: archive.length };
}

export const readTarGz = (file: Buffer) => readTar(gunzipSync(file));

/** The archive's files by name, as UTF-8 text. */
export function filesOf(file: Buffer): Record<string, string> {
  return Object.fromEntries(readTarGz(file).entries.map((entry) => [entry.name, entry.content.toString('utf8')]));
}
