import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { packArtifact, slugify, type ArtifactInput } from '../../src/builds/artifact.js';
import { filesOf, readTarGz } from './untar.js';

const NOW = new Date('2026-11-24T17:32:09.123Z');

function input(overrides: Partial<ArtifactInput> = {}): ArtifactInput {
  return {
    build: {
      id: 42,
      number: 7,
      branch: 'feature/été',
      commit_sha: '3f786850e387550fdab836ed7e6dc881de23001b',
      triggered_by: 'admin',
      retry_of: 41,
      created_at: new Date('2026-11-24T17:32:00.000Z'),
      started_at: new Date('2026-11-24T17:32:01.500Z'),
    },
    project: { id: 3, name: 'DemoProj', repo: 'https://github.com/demo/repo' },
    duration_s: 4.37,
    log: '[usine] checkout\n[usine] install ✓\n[usine] test\n',
    builtBy: 'host-1:1234:worker-0',
    now: NOW,
    ...overrides,
  };
}

describe('packArtifact', () => {
  const artifact = packArtifact(input());

  it('names the file after the project slug and build number, as gzip', () => {
    expect(artifact.name).toBe('demoproj-7.tar.gz');
    expect(artifact.content_type).toBe('application/gzip');
    expect(artifact.content.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
  });

  it('gives the size and the sha256 of the .tar.gz bytes', () => {
    expect(artifact.size_bytes).toBe(artifact.content.length);
    expect(artifact.sha256).toBe(createHash('sha256').update(artifact.content).digest('hex'));
    expect(artifact.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('writes valid ustar headers: checksum, mode 0644, mtime, sizes, two zero blocks at the end', () => {
    const archive = readTarGz(artifact.content);
    expect(archive.entries.map((entry) => entry.name)).toEqual(['build-info.json', 'build.log']);
    for (const entry of archive.entries) {
      expect(entry.checksum.stored).toBe(entry.checksum.computed);
      expect(entry.mode).toBe(0o644);
      expect(entry.typeflag).toBe('0');
      expect(entry.magic).toBe('ustar\0');
      expect(entry.version).toBe('00');
      expect(entry.mtime).toBe(Math.floor(NOW.getTime() / 1000));
      expect(entry.size).toBe(entry.content.length);
    }
    expect(archive.trailingZeroBlocks).toBeGreaterThanOrEqual(2);
    expect(archive.totalBytes % 512).toBe(0);
  });

  it('holds build-info.json (pretty JSON) and the log byte for byte', () => {
    const files = filesOf(artifact.content);
    expect(files['build.log']).toBe(input().log);
    const infoText = files['build-info.json'] ?? '';
    expect(infoText).toContain('\n  "project": {');
    expect(JSON.parse(infoText)).toEqual({
      project: { id: 3, name: 'DemoProj', repo: 'https://github.com/demo/repo' },
      build: {
        id: 42,
        number: 7,
        branch: 'feature/été',
        commit_sha: '3f786850e387550fdab836ed7e6dc881de23001b',
        triggered_by: 'admin',
        retry_of: 41,
        created_at: '2026-11-24T17:32:00.000Z',
        started_at: '2026-11-24T17:32:01.500Z',
      },
      duration_s: 4.37,
      built_by: 'host-1:1234:worker-0',
      packaged_at: '2026-11-24T17:32:09.123Z',
    });
  });

  it('writes null for a build that has no start time or retry, and handles an empty log', () => {
    const base = input();
    const files = filesOf(packArtifact(input({ build: { ...base.build, started_at: null, retry_of: null, triggered_by: null }, log: '' })).content);
    const info = JSON.parse(files['build-info.json'] ?? '{}') as { build: Record<string, unknown> };
    expect(info.build).toMatchObject({ started_at: null, retry_of: null, triggered_by: null });
    expect(files['build.log']).toBe('');
  });

  it('pads contents that fill whole blocks or spill over one', () => {
    for (const size of [511, 512, 513, 1024, 5000]) {
      const log = 'x'.repeat(size - 1) + '\n';
      const archive = readTarGz(packArtifact(input({ log })).content);
      expect(archive.entries[1]?.content.toString()).toBe(log);
      expect(archive.trailingZeroBlocks).toBeGreaterThanOrEqual(2);
    }
  });

  it('is the same bytes for the same input', () => {
    expect(packArtifact(input()).sha256).toBe(artifact.sha256);
    expect(packArtifact(input({ log: 'other\n' })).sha256).not.toBe(artifact.sha256);
  });

  describe('read by the system tar', () => {
    const dir = mkdtempSync(join(tmpdir(), 'usine-artifact-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('lists and extracts both files with their content, mode and mtime', () => {
      const file = join(dir, artifact.name);
      writeFileSync(file, artifact.content);
      const listing = execFileSync('tar', ['-tzf', file], { encoding: 'utf8' });
      expect(listing.trim().split('\n')).toEqual(['build-info.json', 'build.log']);
      const verbose = execFileSync('tar', ['-tvzf', file], { encoding: 'utf8' });
      for (const line of verbose.trim().split('\n')) expect(line).toMatch(/^-rw-r--r-- 0\/0 /);
      const out = join(dir, 'out');
      mkdirSync(out);
      execFileSync('tar', ['-xzf', file, '-C', out, '--no-same-owner'], { stdio: ['ignore', 'pipe', 'pipe'] });
      expect(readFileSync(join(out, 'build.log'), 'utf8')).toBe(input().log);
      expect(JSON.parse(readFileSync(join(out, 'build-info.json'), 'utf8'))).toMatchObject({ build: { number: 7 } });
      const stat = statSync(join(out, 'build.log'));
      expect(stat.mtime.getTime()).toBe(Math.floor(NOW.getTime() / 1000) * 1000);
    });
  });
});

describe('slugify', () => {
  it.each([
    ['DemoProj', 'demoproj'],
    ['My Project (v2)', 'my-project-v2'],
    ['  --Hello__World--  ', 'hello__world'],
    ['a   b///c', 'a-b-c'],
    ['Café Crème', 'cafe-creme'],
    ['release.2026', 'release.2026'],
    ['.hidden.', 'hidden'],
    ['../../etc/passwd', 'etc-passwd'],
    ['日本語', 'project'],
    ['!!!', 'project'],
    ['', 'project'],
    ['a--b', 'a-b'],
  ])('%j → %j', (name, slug) => {
    expect(slugify(name)).toBe(slug);
  });

  it('keeps only [a-z0-9._-], at most 100 characters', () => {
    const slug = slugify(`${'Ab#'.repeat(80)}`);
    expect(slug).toMatch(/^[a-z0-9._-]+$/);
    expect(slug.length).toBeLessThanOrEqual(100);
    expect(slug).not.toMatch(/^[-.]|[-.]$/);
  });

  it('names the artifact from the slug', () => {
    const { name } = packArtifact(input({ project: { id: 1, name: 'Ünïcode Répo!', repo: 'https://x.test/r' } }));
    expect(name).toBe('unicode-repo-7.tar.gz');
  });
});
