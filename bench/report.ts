/** Tables and target verdicts from the results, as Markdown (BENCHMARKS.md) and as plain console lines. */
import type { DatabaseResults, ScenarioResult } from './run-database.js';

const DB_NAMES = { sqlite: 'SQLite', pg: 'PostgreSQL' } as const;
export const dbName = (dialect: keyof typeof DB_NAMES) => DB_NAMES[dialect];

export const find = (results: DatabaseResults, name: string) => results.scenarios.find((s) => s.name === name);

/** req/s of `result` over req/s of the scenario `over`; undefined when either is missing. */
export function ratio(results: DatabaseResults, result: ScenarioResult, over: string | undefined): number | undefined {
  const base = over ? find(results, over) : undefined;
  return base && base.rps > 0 && base !== result ? result.rps / base.rps : undefined;
}

const x = (value: number | undefined) => (value === undefined ? '—' : `${value.toFixed(value < 0.1 ? 3 : 2)}×`);
const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;

export function scenarioTable(results: DatabaseResults): string {
  const header = ['Scenario', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', '× bare', '× minimal', 'max RSS MB', 'non-2xx/errors'];
  const rows = results.scenarios.map((s) => [
    s.title,
    s.rps.toFixed(s.rps < 100 ? 1 : 0),
    String(s.p50),
    String(s.p99),
    s.cpuUs === undefined ? '—' : s.cpuUs.toFixed(s.cpuUs < 10 ? 1 : 0),
    x(ratio(results, s, 'bare')),
    x(ratio(results, s, s.minimal)),
    s.rssMb === undefined ? '—' : s.rssMb.toFixed(0),
    s.bad === 0 ? '0' : `${s.bad} (${s.statusCodes})`,
  ]);
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function extrasLines(results: DatabaseResults): string[] {
  const lines: string[] = [];
  const { flood, sse } = results;
  if (flood) {
    lines.push(
      `Login flood: GET /projects p99 ${flood.projects.p99} ms (p50 ${flood.projects.p50} ms, ${flood.projects.rps.toFixed(0)} req/s) while ` +
        `POST /login ran at ${flood.login.rps.toFixed(1)} logins/s; quiet p99 ${flood.quietP99 ?? '—'} ms` +
        (flood.quietP99 ? ` (${(flood.projects.p99 / flood.quietP99).toFixed(2)}× quiet)` : ''),
    );
  }
  if (sse) {
    lines.push(
      `Live logs: ${sse.streams} SSE streams opened over ${sse.builds} builds in ${sse.seconds.toFixed(1)} s: ${sse.eventsPerS.toFixed(0)} events/s delivered, ` +
        `write-to-client latency p50 ${sse.latencyP50.toFixed(0)} ms, p99 ${sse.latencyP99.toFixed(0)} ms; ` +
        `${sse.failed} streams without their end event; max RSS ${sse.rssMb.toFixed(0)} MB`,
    );
  }
  lines.push(`Usine server max RSS over the whole run: ${results.maxRssMb.toFixed(0)} MB`);
  return lines;
}

export interface Verdict {
  target: string;
  measured: string;
  met: boolean | undefined;
}

const verdict = (target: string, measured: string, met: boolean | undefined): Verdict => ({ target, measured, met });

export function httpTargets(all: readonly DatabaseResults[], quick: boolean): Verdict[] {
  const verdicts: Verdict[] = [];
  for (const results of all) {
    const db = dbName(results.dialect);
    for (const name of ['projects', 'project', 'builds-first', 'builds-deep', 'status']) {
      const s = find(results, name);
      const r = s && ratio(results, s, s.minimal);
      if (s) verdicts.push(verdict(`${s.title} ≥ 0.85× its least-work route (${db})`, x(r), r === undefined ? undefined : r >= 0.85));
    }
    const first = find(results, 'builds-first');
    const deep = find(results, 'builds-deep');
    const cursor = find(results, 'builds-cursor');
    if (first && cursor) {
      const slower = first.rps / cursor.rps;
      verdicts.push(
        verdict(
          `Last builds page by cursor within 1.5× the first (${db})`,
          `${slower.toFixed(2)}× (p50 ${first.p50} vs ${cursor.p50} ms) on ${results.seeded.bigBuilds.toLocaleString('en-US')} builds`,
          quick ? undefined : slower <= 1.5,
        ),
      );
    }
    if (first && deep) {
      const slower = first.rps / deep.rps;
      const rows = results.seeded.bigBuilds.toLocaleString('en-US');
      verdicts.push(
        verdict(
          `Last builds page on 1,000,000 builds within 1.5× the first (${db})`,
          `${slower.toFixed(2)}× (req/s first ÷ last; p50 ${first.p50} vs ${deep.p50} ms) on ${rows} builds`,
          quick ? undefined : slower <= 1.5,
        ),
      );
    }
    const login = find(results, 'login');
    if (login) verdicts.push(verdict(`≥ 80 logins/s (${db})`, `${login.rps.toFixed(1)}/s`, login.rps >= 80));
    if (results.flood?.quietP99) {
      const times = results.flood.projects.p99 / results.flood.quietP99;
      verdicts.push(
        verdict(
          `GET /projects p99 under login flood ≤ 2× quiet (${db})`,
          `${results.flood.projects.p99} vs ${results.flood.quietP99} ms (${times.toFixed(2)}×)`,
          times <= 2,
        ),
      );
    }
  }
  if (all.length > 0) {
    const max = Math.max(...all.map((results) => results.maxRssMb));
    verdicts.push(verdict('Server RSS < 150 MB under the benchmark', `${max.toFixed(0)} MB max`, max < 150));
  }
  return verdicts;
}

/**
 * The four-step engine's drain before the job engine (BENCHMARKS.md, issue #16's baseline): builds/s on PostgreSQL
 * with one process and with three, and on SQLite. A job may cost at most PER_JOB_SLACK times what such a build did.
 */
export const OLD_BUILD_DRAIN = { pg: 1130, pg3: 1270, sqlite: 2553 } as const;
export const PER_JOB_SLACK = 1.2;
/** Drained builds/s of the four-job default pipeline on PostgreSQL, one process (issue #16). */
export const BUILDS_PER_S_TARGET = 250;
const DEFAULT_PIPELINE_JOBS = 4;

/**
 * From the "## Build throughput" section (bench/builds.ts): drained jobs/s against the old builds/s (one process and
 * three on PostgreSQL, SQLite), builds/s of the default pipeline, and three processes against one.
 */
export function buildTargets(section: string | undefined): Verdict[] {
  const cells = (row: string | undefined) => row?.split('|').slice(1, -1).map((cell) => cell.trim());
  const rows = section?.split('\n') ?? [];
  const header = cells(rows.find((text) => text.startsWith('| Set-up')));
  const rate = (label: string, name: string) => {
    const column = header?.indexOf(name) ?? -1;
    const value = column < 0 ? undefined : cells(rows.find((text) => text.startsWith(`| ${label}`)))?.[column];
    return value === undefined || !Number.isFinite(Number(value)) ? undefined : Number(value);
  };
  const jobs = (label: string) => rate(label, 'Drain: jobs/s');
  const perJob = (target: string, measured: number | undefined, old: number) => {
    const least = Math.ceil(old / PER_JOB_SLACK);
    return verdict(
      `${target}: time per job ≤ ${PER_JOB_SLACK}× the old time per build (≥ ${least.toLocaleString('en-US')} jobs/s, drain)`,
      measured === undefined ? 'not measured' : `${measured}/s (${old.toLocaleString('en-US')} ÷ ${measured} = ${(old / measured).toFixed(2)}×)`,
      measured === undefined ? undefined : measured >= least,
    );
  };
  // The four-step engine measured on the same machine in the same session, when the run had it: "0.90× (539 builds/s)".
  const sameMachine = (label: string) => {
    const column = header?.indexOf('Drain: ÷ old time per build, same machine') ?? -1;
    const cell = column < 0 ? undefined : cells(rows.find((text) => text.startsWith(`| ${label}`)))?.[column];
    const old = cell && /\(([\d.]+) builds\/s\)/.exec(cell)?.[1];
    return old ? Number(old) : undefined;
  };
  const perJobSameMachine = (target: string, measured: number | undefined, old: number | undefined) =>
    old === undefined
      ? []
      : [
          verdict(
            `${target}: time per job ≤ ${PER_JOB_SLACK}× the old time per build, both measured on this machine (≥ ${Math.ceil(old / PER_JOB_SLACK).toLocaleString('en-US')} jobs/s, drain)`,
            measured === undefined ? 'not measured' : `${measured}/s (${old.toLocaleString('en-US')} ÷ ${measured} = ${(old / measured).toFixed(2)}×)`,
            measured === undefined ? undefined : measured >= Math.ceil(old / PER_JOB_SLACK),
          ),
        ];
  const builds = rate('(a)', 'Drain: builds/s');
  const one = jobs('(a)');
  const three = jobs('(b)');
  return [
    perJob('PostgreSQL, one process', one, OLD_BUILD_DRAIN.pg),
    ...perJobSameMachine('PostgreSQL, one process', one, sameMachine('(a)')),
    perJob('PostgreSQL, three processes', three, OLD_BUILD_DRAIN.pg),
    ...perJobSameMachine('PostgreSQL, three processes', three, sameMachine('(b)')),
    perJob('SQLite', jobs('(c)'), OLD_BUILD_DRAIN.sqlite),
    ...perJobSameMachine('SQLite', jobs('(c)'), sameMachine('(c)')),
    verdict(
      `≥ ${BUILDS_PER_S_TARGET} builds/s of the ${DEFAULT_PIPELINE_JOBS}-job default pipeline on PostgreSQL, one process (drain)`,
      builds === undefined || one === undefined
        ? 'not measured'
        : `${builds}/s (were every build to run all ${DEFAULT_PIPELINE_JOBS} jobs: ${one} ÷ ${DEFAULT_PIPELINE_JOBS} = ${Math.floor(one / DEFAULT_PIPELINE_JOBS)}/s)`,
      builds === undefined ? undefined : builds >= BUILDS_PER_S_TARGET,
    ),
    verdict(
      'More jobs/s with three processes than with one (PostgreSQL)',
      three === undefined || one === undefined ? 'not measured' : `${three}/s vs ${one}/s`,
      three === undefined || one === undefined ? undefined : three > one,
    ),
  ];
}

/** From the "## Soak" section (bench/soak.ts); only a full-length soak counts. */
export function soakTargets(section: string | undefined): Verdict[] {
  const growth = section && /^- Growth: (-?[\d.]+) %/m.exec(section)?.[1];
  const max = section && /^- Max: ([\d.]+) MB/m.exec(section)?.[1];
  const full = section ? /^- Full length: yes/m.test(section) : false;
  const note = full ? '' : ' (short run)';
  return [
    verdict('Soak (5 min, 1,000 SSE streams): RSS < 150 MB', max ? `max ${max} MB${note}` : 'not measured', max && full ? Number(max) < 150 : undefined),
    verdict('Soak (5 min, 1,000 SSE streams): RSS growth ≤ 10 %', growth ? `${growth} % (end vs start)${note}` : 'not measured', growth && full ? Number(growth) <= 10 : undefined),
  ];
}

export function verdictTable(verdicts: readonly Verdict[]): string {
  const header = ['Target', 'Measured', 'Met?'];
  const rows = verdicts.map((v) => [v.target, v.measured, v.met === undefined ? 'n/a' : v.met ? 'met' : '**not met**']);
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}
