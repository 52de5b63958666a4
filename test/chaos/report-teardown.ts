/**
 * vitest.chaos.config.ts's global setup: before the chaos suite, the previous run's figures are removed (the report
 * shows one run); after it (passed or failed), RELIABILITY.md is regenerated from this run's figures
 * (scripts/reliability-report.ts).
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeReliabilityReport } from '../../scripts/reliability-report.js';
import { CHAOS_ARTIFACTS_DIR } from './record.js';

export default function setup(): () => void {
  mkdirSync(CHAOS_ARTIFACTS_DIR, { recursive: true });
  for (const file of readdirSync(CHAOS_ARTIFACTS_DIR, { withFileTypes: true })) {
    if (file.isFile() && file.name.endsWith('.json')) rmSync(join(CHAOS_ARTIFACTS_DIR, file.name));
  }
  return () => {
    console.log(`\nreliability report: ${writeReliabilityReport()}`);
  };
}
