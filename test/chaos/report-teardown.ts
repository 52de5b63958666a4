/**
 * vitest.chaos.config.ts's global setup: nothing before the chaos suite; after it (passed or failed), RELIABILITY.md
 * is regenerated from the scenarios' figures (scripts/reliability-report.ts).
 */
import { writeReliabilityReport } from '../../scripts/reliability-report.js';

export default function setup(): () => void {
  return () => {
    console.log(`\nreliability report: ${writeReliabilityReport()}`);
  };
}
