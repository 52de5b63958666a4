/* global console, process -- a plain Node script, run by npm before anything is built */
/**
 * postinstall: guards one function of postgres.js 3.4.x (porsager/postgres#1154, #1208; the guard PRs #1168 and #1209
 * are not released). When a connection's socket closes while a write is scheduled for the next turn of the event loop
 * (`setImmediate(nextWrite)`), or when a query is sent on it afterwards — a transaction's ROLLBACK after its connection
 * dropped, which the job engine's transactions hit during a database outage — `nextWrite` reads `socket.write` of a
 * null socket and throws from a timer: an uncaught exception that kills the process. The guard drops the pending
 * bytes instead (the connection is gone; its queries have failed with CONNECTION_CLOSED) and resets the write state, so
 * that the connection writes again once it reconnects. `npm run test:chaos`'s database outage is the test of record;
 * test/db/postgres-patch.test.ts checks that the guard is in place.
 *
 * Idempotent. Fails the install if the function is neither as released nor guarded (a new postgres.js version: check
 * whether it still needs the guard, then update or remove this script).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MARKER = 'usine: guard against a closed socket';
const ORIGINAL = `  function nextWrite(fn) {
    const x = socket.write(chunk, fn)`;
const GUARDED = `  function nextWrite(fn) {
    if (socket === null) { // ${MARKER} (scripts/patch-postgres.mjs)
      nextWriteTimer !== null && clearImmediate(nextWriteTimer)
      chunk = nextWriteTimer = null
      return false
    }
    const x = socket.write(chunk, fn)`;

const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', 'postgres');
const files = ['src', 'cjs/src', 'cf/src'].map((dir) => join(root, dir, 'connection.js')).filter((file) => existsSync(file));
if (files.length === 0) {
  console.error('patch-postgres: node_modules/postgres not found');
  process.exit(1);
}
for (const file of files) {
  const text = readFileSync(file, 'utf8');
  if (text.includes(MARKER)) continue;
  if (!text.includes(ORIGINAL)) {
    console.error(`patch-postgres: ${file} has no nextWrite as postgres.js 3.4.9 wrote it: review scripts/patch-postgres.mjs`);
    process.exit(1);
  }
  writeFileSync(file, text.replace(ORIGINAL, GUARDED));
  console.log(`patch-postgres: guarded nextWrite in ${file}`);
}
