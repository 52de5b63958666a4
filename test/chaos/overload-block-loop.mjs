/* global process, setTimeout */
// Test-only preload for the overload chaos scenario (test/chaos/overload.sqlite.chaos.ts), loaded into a real server with
// NODE_OPTIONS=--import=<this file>. On SIGWINCH it blocks the event loop for CHAOS_BLOCK_MS (default 4000 ms):
// busy loops of CHAOS_BLOCK_SLICE_MS (default 150 ms) with only a few milliseconds between them, so requests still
// get through between slices but the event loop delay stays far over any sane threshold. Nothing else changes.
const blockMs = Number(process.env.CHAOS_BLOCK_MS ?? 4000);
const sliceMs = Number(process.env.CHAOS_BLOCK_SLICE_MS ?? 150);

process.on('SIGWINCH', () => {
  const until = Date.now() + blockMs;
  process.stderr.write(`[chaos] blocking the event loop for ${blockMs} ms\n`);
  const slice = () => {
    const end = Math.min(until, Date.now() + sliceMs);
    while (Date.now() < end) {
      // busy: nothing else runs
    }
    if (Date.now() < until) setTimeout(slice, 2);
    else process.stderr.write('[chaos] event loop unblocked\n');
  };
  slice();
});
