/* global process */
// Test-only preload for the outage chaos scenario (test/chaos/outage.pg.chaos.ts), loaded with NODE_OPTIONS=--import=….
// It changes nothing: it only reports, on stderr, every unhandled rejection and uncaught exception with what is known
// of the promise (postgres.js queries carry their SQL in `strings`), so that a crash during the outage can be traced.
import { inspect } from 'node:util';

process.on('unhandledRejection', (reason, promise) => {
  const sqlText = Array.isArray(promise?.strings) ? promise.strings.join('?') : undefined;
  process.stderr.write(
    `[chaos-diagnostics] unhandledRejection: ${reason?.code ?? ''} ${reason?.message ?? reason}; promise ${promise?.constructor?.name}` +
      `${sqlText ? ` with SQL ${JSON.stringify(sqlText.slice(0, 300))}` : ''}; ${inspect(promise, { depth: 0 }).slice(0, 400)}\n`,
  );
});
process.on('uncaughtExceptionMonitor', (error, origin) => {
  process.stderr.write(`[chaos-diagnostics] ${origin}: ${error?.code ?? ''} ${error?.stack ?? error}\n`);
});
