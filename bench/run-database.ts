/**
 * Everything measured on one database: a scratch database is migrated and seeded, the Usine server and the baseline
 * server start on it, the HTTP scenarios run one after the other (then logins flooding GET /projects, then the live
 * log streams) while the Usine server's RSS is sampled; the servers stop and the database is dropped.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { apiClient, describeServers, loginAdmin, queueFigures, stopServer, type ServerProcess } from '../test/processes.js';
import { cancelQueued, migrate, scratchDatabase, seed, type Seeded } from './database.js';
import { measure, measureAlternating, measureTogether, type Measurement } from './load.js';
import { selected, type BenchOptions, type Dialect } from './options.js';
import { sampleRss } from './rss.js';
import { deepPage, PER_PAGE, SCENARIOS, type Context, type Scenario } from './scenarios.js';
import { BENCH_TIME_SCALE, startApp, startBaseline } from './servers.js';
import { followBuilds, type StreamStats } from './sse.js';

export interface ScenarioResult extends Measurement {
  name: string;
  title: string;
  minimal?: string;
  /** Largest RSS of the Usine server during this scenario (MB); undefined for baseline scenarios. */
  rssMb?: number;
}

export interface FloodResult {
  quietP99?: number;
  projects: Measurement;
  login: Measurement;
}

export interface DatabaseResults {
  dialect: Dialect;
  seeded: Seeded;
  scenarios: ScenarioResult[];
  flood?: FloodResult;
  sse?: StreamStats & { rssMb: number };
  /** Largest RSS of the Usine server over the whole run on this database (MB). */
  maxRssMb: number;
}

const log = (text: string) => process.stdout.write(text);

async function waitQueueEmpty(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const queue = await queueFigures(url);
    if (!queue || queue.queued + queue.running === 0) return;
    await sleep(200);
  }
}

const fmt = (m: Measurement) =>
  `${m.rps.toFixed(0)} req/s, p50 ${m.p50} ms, p99 ${m.p99} ms${m.cpuUs === undefined ? '' : `, ${m.cpuUs.toFixed(0)} µs CPU/req`}${m.bad > 0 ? `, ${m.bad} bad (${m.statusCodes})` : ''}`;

export async function runDatabase(dialect: Dialect, options: BenchOptions): Promise<DatabaseResults> {
  const database = await scratchDatabase(dialect);
  const servers: ServerProcess[] = [];
  try {
    log(`[${dialect}] migrate + seed ${options.projects} projects, ${options.bigBuilds} builds in one project… `);
    await migrate(database.url);
    const seeded = await seed(database, options.projects, options.bigBuilds);
    log(`${seeded.seedSeconds.toFixed(1)} s\n`);
    const app = await startApp(database.url, `bench-${dialect}`, { dist: options.dist });
    servers.push(app);
    const baseline = await startBaseline(database.url);
    servers.push(baseline);
    const rss = sampleRss(app.pid);

    const token = await loginAdmin(app.url);
    const api = apiClient(app.url, token);
    const triggerProject = await api.expect<{ id: number }>(201, 'POST', '/projects', { name: 'bench-trigger', repo: 'https://github.com/bench/trigger' });
    const streamProject = await api.expect<{ id: number }>(201, 'POST', '/projects', { name: 'bench-streams', repo: 'https://github.com/bench/streams' });
    const context: Context = {
      appUrl: app.url,
      baselineUrl: baseline.url,
      token,
      projectId: seeded.bigProjectId + 1,
      bigProjectId: seeded.bigProjectId,
      bigBuilds: seeded.bigBuilds,
      triggerProjectId: triggerProject.id,
      connections: options.connections,
    };

    // The cursor to the last page: the `next_cursor` of the page before it (absent when the API has no cursors).
    const beforeLast = await api.expect<{ next_cursor?: string | null }>(
      200,
      'GET',
      `/projects/${seeded.bigProjectId}/builds?per_page=${PER_PAGE}&page=${deepPage(context) - 1}`,
    );
    context.deepCursor = beforeLast.next_cursor ?? undefined;

    const scenarios: ScenarioResult[] = [];
    const record = (scenario: Scenario, result: Measurement, rssMb: number) => {
      scenarios.push({
        ...result,
        name: scenario.name,
        title: scenario.title,
        minimal: scenario.minimal,
        rssMb: scenario.server === 'app' ? rssMb : undefined,
      });
      log(`[${dialect}] ${scenario.title}: ${fmt(result)}\n`);
    };
    const withPid = (scenario: Scenario) => ({ ...scenario.spec(context), pid: scenario.server === 'app' ? app.pid : baseline.pid });
    // A group (a read and its minimal route; the builds pages) runs in alternation: ratios within it stay fair.
    const wanted = (s: Scenario) => !s.skip?.(context) && (selected(options, s.name) || SCENARIOS.some((o) => o.minimal === s.name && selected(options, o.name)));
    const done = new Set<string>();
    for (const scenario of SCENARIOS) {
      if (done.has(scenario.name) || !wanted(scenario)) continue;
      const members = scenario.group ? SCENARIOS.filter((s) => s.group === scenario.group && wanted(s)) : [scenario];
      for (const member of members) done.add(member.name);
      rss.mark();
      const measured =
        members.length > 1
          ? await measureAlternating(members.map(withPid), options.durationS, options.warmupS, options.rounds)
          : [await measure(withPid(scenario), options.durationS, options.warmupS)];
      const rssMb = rss.maxSinceMark();
      members.forEach((member, index) => record(member, measured[index]!, rssMb));
      if (scenario.name === 'trigger-build') {
        const canceled = await cancelQueued(database.url);
        log(`[${dialect}]   canceled ${canceled} queued builds straight in the database\n`);
        await waitQueueEmpty(app.url);
      }
    }

    let flood: FloodResult | undefined;
    if (selected(options, 'login-flood')) {
      log(`[${dialect}] GET /projects while POST /login floods: `);
      const projects = SCENARIOS.find((s) => s.name === 'projects')!.spec(context);
      const login = SCENARIOS.find((s) => s.name === 'login')!.spec(context);
      // The quiet value is measured right before, on the same data (the write scenarios have added projects since
      // GET /projects was first measured, and its total counts them).
      const quiet = await measure(projects, options.durationS, options.warmupS);
      const [duringFlood, logins] = await measureTogether([projects, login], options.durationS);
      flood = { quietP99: quiet.p99, projects: duringFlood!, login: logins! };
      log(`quiet p99 ${quiet.p99} ms; `);
      log(`GET /projects ${fmt(duringFlood!)}; logins ${logins!.rps.toFixed(1)}/s\n`);
    }

    let sse: DatabaseResults['sse'];
    if (selected(options, 'sse')) {
      await waitQueueEmpty(app.url);
      log(`[${dialect}] ${options.sseClients} SSE clients on ${options.sseBuilds} running builds at a time: `);
      rss.mark();
      const deadline = Date.now() + (options.durationS + options.warmupS) * 1000;
      const stats = await followBuilds({
        baseUrl: app.url,
        token,
        projectId: streamProject.id,
        slots: options.sseBuilds,
        perSlot: Math.ceil(options.sseClients / options.sseBuilds),
        timeScale: BENCH_TIME_SCALE,
        until: () => Date.now() >= deadline,
      });
      sse = { ...stats, rssMb: rss.maxSinceMark() };
      log(
        `${stats.eventsPerS.toFixed(0)} events/s delivered, latency p50 ${stats.latencyP50.toFixed(0)} ms p99 ${stats.latencyP99.toFixed(0)} ms` +
          ` (${stats.builds} builds, ${stats.streams} streams, ${stats.failed} without end)\n`,
      );
    }

    rss.stop();
    return { dialect, seeded, scenarios, flood, sse, maxRssMb: rss.max() };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`[${dialect}] ${message}\n${describeServers(servers).slice(-8000)}`, { cause: error });
  } finally {
    await Promise.all(servers.map((server) => stopServer(server, 12_000)));
    await database.drop();
  }
}
