/**
 * bench/ratios.svg, written by hand: a horizontal bar chart of each scenario's req/s as a ratio — to the minimal route
 * (GET /projects, GET /projects/:id, with the 0.85 target line) and to the bare route (everything) — per database.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../test/processes.js';
import { dbName, ratio } from './report.js';
import type { DatabaseResults } from './run-database.js';

export const CHART_FILE = join(repoRoot, 'bench', 'ratios.svg');

interface Bar {
  label: string;
  value: number;
  color: string;
}

const COLORS = { sqlite: '#3b7dd8', pg: '#2f9e6e' } as const;
const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function bars(all: readonly DatabaseResults[]): { minimal: Bar[]; bare: Bar[] } {
  const minimal: Bar[] = [];
  const bare: Bar[] = [];
  for (const results of all) {
    const color = COLORS[results.dialect];
    for (const s of results.scenarios) {
      const label = `${s.title.replace(/ \(baseline[^)]*\)/, '')} — ${dbName(results.dialect)}`;
      const toMinimal = ratio(results, s, s.minimal);
      if (toMinimal !== undefined) minimal.push({ label, value: toMinimal, color });
      const toBare = ratio(results, s, 'bare');
      if (toBare !== undefined) bare.push({ label, value: toBare, color });
    }
  }
  return { minimal, bare };
}

export function renderChart(all: readonly DatabaseResults[], subtitle: string): string {
  const { minimal, bare } = bars(all);
  const width = 900;
  const labelWidth = 420;
  const barWidth = 380;
  const row = 20;
  const scaleMax = Math.max(1, ...minimal.map((b) => b.value), ...bare.map((b) => b.value));
  const px = (value: number) => (value / scaleMax) * barWidth;
  const parts: string[] = [];
  let y = 56;

  const group = (title: string, items: Bar[], target?: number) => {
    if (items.length === 0) return;
    parts.push(`<text x="10" y="${y}" font-weight="bold">${escape(title)}</text>`);
    y += 10;
    const top = y;
    for (const item of items) {
      const w = Math.max(1, px(item.value));
      parts.push(
        `<text x="${labelWidth - 8}" y="${y + 14}" text-anchor="end">${escape(item.label)}</text>`,
        `<rect x="${labelWidth}" y="${y + 3}" width="${w.toFixed(1)}" height="${row - 6}" fill="${item.color}"/>`,
        `<text x="${labelWidth + w + 5}" y="${y + 14}">${item.value.toFixed(item.value < 0.1 ? 3 : 2)}×</text>`,
      );
      y += row;
    }
    const one = labelWidth + px(1);
    parts.push(`<line x1="${one}" y1="${top}" x2="${one}" y2="${y}" stroke="#888"/>`, `<text x="${one + 3}" y="${top - 2}" fill="#888">1×</text>`);
    if (target !== undefined) {
      const tx = labelWidth + px(target);
      parts.push(
        `<line x1="${tx}" y1="${top}" x2="${tx}" y2="${y}" stroke="#d33" stroke-dasharray="4 3"/>`,
        `<text x="${tx}" y="${y + 12}" fill="#d33" text-anchor="middle">target ${target}×</text>`,
      );
      y += 14;
    }
    y += 24;
  };

  group('req/s ÷ the minimal route (JWT + raw driver query, same database)', minimal, 0.85);
  group('req/s ÷ the bare Fastify route (a constant)', bare);
  const legend = all
    .map((results, index) => {
      const lx = 10 + index * 140;
      return `<rect x="${lx}" y="${y - 10}" width="12" height="12" fill="${COLORS[results.dialect]}"/><text x="${lx + 18}" y="${y}">${dbName(results.dialect)}</text>`;
    })
    .join('');
  const height = y + 16;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="22" font-size="16" font-weight="bold">Usine: throughput as a ratio to the baselines</text>
<text x="10" y="40" fill="#555">${escape(subtitle)}</text>
${parts.join('\n')}
${legend}
</svg>
`;
}

export function writeChart(all: readonly DatabaseResults[], subtitle: string): string {
  writeFileSync(CHART_FILE, renderChart(all, subtitle));
  return CHART_FILE;
}
