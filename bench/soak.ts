/**
 * `npm run soak`: one Usine process for `--minutes` (default 5) with 1,000 SSE log streams open (50 builds at a time,
 * 20 listeners each, every build followed to its end and replaced by a new one) and a steady mixed load of reads
 * (GET /projects, /projects/:id, /projects/:id/builds, /status at a fixed total rate). The server's RSS is sampled
 * every few seconds; the figures at start (after the warm-up), max, end and the growth go to stdout and to the
 * "## Soak" section of BENCHMARKS.md (targets: RSS < 150 MB, growth ≤ 10 %).
 *
 *   node --import tsx bench/soak.ts [--minutes=5] [--short] [--db=sqlite|pg] [--streams=1000] [--rate=200] [--tsx] [--write|--no-write]
 *
 * --short: 1 minute after a 10 s warm-up, sampled every second (to try it); not written unless --write.
 */
import autocannon from 'autocannon';
import { setTimeout as sleep } from 'node:timers/promises';
import { apiClient, loginAdmin, stopServer, type ServerProcess } from '../test/processes.js';
import { migrate, scratchDatabase, seed } from './database.js';
import { describeMachine } from './machine.js';
import { readBenchmarks, upsertSection, writeBenchmarks } from './markdown.js';
import type { Dialect } from './options.js';
import { sampleRss } from './rss.js';
import { APP_NODE_FLAGS, APP_PROCESS_ENV, startApp } from './servers.js';
import { followBuilds } from './sse.js';

const args = process.argv.slice(2);
const value = (name: string) => args.find((arg) => arg.startsWith(`--${name}=`))?.split('=', 2)[1];
const has = (name: string) => args.includes(`--${name}`);
const short = has('short');
const minutes = Number(value('minutes') ?? (short ? 1 : 5));
const dialect = (value('db') ?? 'sqlite') as Dialect;
const streams = Number(value('streams') ?? 1000);
const rate = Number(value('rate') ?? 200);
const warmupS = short ? 10 : 30;
const sampleMs = short ? 1000 : 5000;
const PER_BUILD = 20;
const TIME_SCALE = 0.5;
const fullLength = minutes >= 5 && streams >= 1000;
const write = has('write') || (!has('no-write') && !short);
if (!['sqlite', 'pg'].includes(dialect)) throw new Error('--db must be sqlite or pg');

const database = await scratchDatabase(dialect);
let server: ServerProcess | undefined;
try {
  await migrate(database.url);
  const seeded = await seed(database, 200, 10_000);
  // Queued builds keep their streams open too: more builds in flight than workers is fine.
  server = await startApp(database.url, `soak-${dialect}`, { dist: !has('tsx'), env: { BUILD_TIME_SCALE: String(TIME_SCALE), BUILD_CONCURRENCY: '10' } });
  const token = await loginAdmin(server.url);
  const api = apiClient(server.url, token);
  const project = await api.expect<{ id: number }>(201, 'POST', '/projects', { name: 'soak-streams', repo: 'https://github.com/bench/soak' });

  const totalS = warmupS + minutes * 60;
  const endAt = Date.now() + totalS * 1000;
  console.log(`soak on ${dialect}: ${streams} SSE streams + ${rate} req/s of reads, ${warmupS} s warm-up then ${minutes} min`);
  const headers = { authorization: `Bearer ${token}` };
  const reads = autocannon({
    url: server.url,
    connections: 10,
    overallRate: rate,
    duration: totalS,
    requests: [
      { method: 'GET', path: '/projects', headers },
      { method: 'GET', path: `/projects/${seeded.bigProjectId + 1}`, headers },
      { method: 'GET', path: `/projects/${seeded.bigProjectId}/builds?page=3`, headers },
      { method: 'GET', path: '/status' },
    ],
  });
  const streaming = followBuilds({
    baseUrl: server.url,
    token,
    projectId: project.id,
    slots: Math.ceil(streams / PER_BUILD),
    perSlot: PER_BUILD,
    timeScale: TIME_SCALE,
    until: () => Date.now() >= endAt,
  });

  await sleep(warmupS * 1000);
  const rss = sampleRss(server.pid, sampleMs);
  const startMb = rss.last();
  console.log(`after warm-up: ${startMb.toFixed(1)} MB`);
  const progress = setInterval(() => console.log(`  ${((Date.now() - endAt) / 1000 + totalS - warmupS).toFixed(0)} s: ${rss.last().toFixed(1)} MB`), 30_000);
  const [readResult, streamStats] = await Promise.all([reads, streaming]);
  clearInterval(progress);
  rss.stop();
  const endMb = rss.last();
  const maxMb = rss.max();
  const growth = ((endMb - startMb) / startMb) * 100;
  const verdict = (met: boolean) => (fullLength ? (met ? 'met' : '**not met**') : 'n/a (short run)');
  const machine = await describeMachine([dialect]);
  const lines = [
    `- Start (after ${warmupS} s of warm-up): ${startMb.toFixed(1)} MB`,
    `- Max: ${maxMb.toFixed(1)} MB`,
    `- End: ${endMb.toFixed(1)} MB`,
    `- Growth: ${growth.toFixed(1)} % (end vs start)`,
    `- Targets: RSS < 150 MB ${verdict(maxMb < 150)}; growth ≤ 10 % ${verdict(growth <= 10)}`,
    `- Full length: ${fullLength ? 'yes' : 'no'} (${minutes} min, ${streams} streams)`,
    `- Server: ${has('tsx') ? 'src/ under tsx' : 'built dist/ (node dist/src/main.js)'}, with ${APP_NODE_FLAGS.join(' ') || 'no node flags'} and ` +
      `${Object.entries(APP_PROCESS_ENV).map(([name, value]) => `${name}=${value}`).join(' ') || 'no extra environment'} (bench/servers.ts)`,
    `- Load served: ${(readResult.requests.total / readResult.duration).toFixed(0)} reads/s (${readResult.non2xx + readResult.errors} non-2xx/errors), ` +
      `${streamStats.streams} SSE streams over ${streamStats.builds} builds, ${streamStats.eventsPerS.toFixed(0)} events/s, ` +
      `latency p50 ${streamStats.latencyP50.toFixed(0)} ms p99 ${streamStats.latencyP99.toFixed(0)} ms, ${streamStats.failed} streams without their end event`,
  ];
  console.log(lines.join('\n'));
  if (write) {
    const section = `## Soak

\`npm run soak\` (\`node --import tsx bench/soak.ts\`, \`--minutes=N\`, \`--short\` to try it): one Usine process on ${dialect === 'pg' ? 'PostgreSQL' : 'SQLite'}
(\`BUILD_TIME_SCALE=${TIME_SCALE}\`, 10 workers) with ${streams} SSE log streams open (${Math.ceil(streams / PER_BUILD)} builds at a time, ${PER_BUILD} listeners
each, each build followed to its end and replaced) and ${rate} req/s of reads (GET /projects, /projects/:id, /projects/:id/builds,
/status) for ${minutes} min after a ${warmupS} s warm-up; VmRSS of the server sampled every ${sampleMs / 1000} s.

${lines.join('\n')}

${machine.map((line) => `- ${line}`).join('\n')}`;
    writeBenchmarks(upsertSection(readBenchmarks(), '## Soak', section));
    console.log('Wrote the "## Soak" section of BENCHMARKS.md');
  }
} finally {
  if (server) await stopServer(server, 12_000);
  await database.drop();
}
process.exit(0);
