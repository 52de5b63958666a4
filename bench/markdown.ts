/** BENCHMARKS.md, one `## ` section at a time: a section is replaced in place or added; the others are kept as they are. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../test/processes.js';

export const BENCHMARKS_FILE = join(repoRoot, 'BENCHMARKS.md');

export const readBenchmarks = () => (existsSync(BENCHMARKS_FILE) ? readFileSync(BENCHMARKS_FILE, 'utf8') : '# Benchmarks\n');

/** The text of section `heading` (its heading line included), or undefined. */
export function getSection(text: string, heading: string): string | undefined {
  const start = text.indexOf(`\n${heading}\n`);
  if (start === -1) return undefined;
  const rest = text.slice(start + 1);
  const next = rest.slice(heading.length).search(/^## /m);
  return next === -1 ? rest : rest.slice(0, heading.length + next);
}

/**
 * Replaces section `heading` with `body` (which starts with the heading), or inserts it before the section `before`
 * (when given and present) or at the end.
 */
export function upsertSection(text: string, heading: string, body: string, before?: string): string {
  const block = `${body.trimEnd()}\n\n`;
  const current = getSection(text, heading);
  if (current !== undefined) return text.replace(current, () => block);
  const anchor = before ? getSection(text, before) : undefined;
  if (anchor !== undefined) return text.replace(anchor, () => `${block}${anchor}`);
  return `${text.trimEnd()}\n\n${block}`;
}

/** Replaces the lines between `# Benchmarks` and the first `## ` section. */
export function setIntro(text: string, intro: string): string {
  const first = text.search(/^## /m);
  return `# Benchmarks\n\n${intro.trimEnd()}\n\n${first === -1 ? '' : text.slice(first)}`;
}

export function writeBenchmarks(text: string): void {
  writeFileSync(BENCHMARKS_FILE, `${text.trimEnd()}\n`);
}
