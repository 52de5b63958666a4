import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

/**
 * scripts/patch-postgres.mjs (npm's postinstall) guards postgres.js's `nextWrite` against a closed socket: without it,
 * a transaction's ROLLBACK on a dropped connection kills the process from a timer (the chaos suite's database outage
 * shows it). This checks that the files Node loads are the guarded ones, for both module systems.
 */
describe('postgres.js as installed', () => {
  it('has the guard against writing on a closed socket in the files Node loads', () => {
    const require = createRequire(import.meta.url);
    const cjsEntry = require.resolve('postgres');
    const esmEntry = cjsEntry.replace(/cjs[\\/]src[\\/]index\.js$/, 'src/index.js');
    for (const entry of [cjsEntry, esmEntry]) {
      const connection = readFileSync(entry.replace(/index\.js$/, 'connection.js'), 'utf8');
      expect(connection, entry).toContain('usine: guard against a closed socket');
      expect(connection).toMatch(/function nextWrite\(fn\) \{\n\s+if \(socket === null\)/);
    }
  });
});
