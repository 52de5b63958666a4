/** One autocannon measurement: a warm-up of the same load, then the measured run; req/s and latency percentiles. */
import autocannon from 'autocannon';
import { readCpuMs } from './cpu.js';

export interface LoadSpec {
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  /** A fixed JSON body, or a function giving each request's body (unique names…). */
  body?: unknown;
  makeBody?: () => unknown;
  connections: number;
  /** The server process answering: its CPU time per request is reported when given. */
  pid?: number;
}

export interface Measurement {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  /** Answers outside 2xx, plus socket errors and timeouts: a scenario with any is not a clean figure. */
  bad: number;
  statusCodes: string;
  /** CPU time of the answering process per request (µs), when its pid was given and /proc is readable. */
  cpuUs?: number;
}

function options(spec: LoadSpec, durationS: number): autocannon.Options {
  const headers = { ...spec.headers, ...(spec.body !== undefined || spec.makeBody ? { 'content-type': 'application/json' } : {}) };
  const base: autocannon.Options = {
    url: spec.url,
    method: spec.method ?? 'GET',
    headers,
    connections: spec.connections,
    duration: durationS,
    body: spec.body === undefined ? undefined : JSON.stringify(spec.body),
  };
  const makeBody = spec.makeBody;
  if (!makeBody) return base;
  return { ...base, requests: [{ setupRequest: (request) => ({ ...request, body: JSON.stringify(makeBody()) }) }] };
}

const load = (opts: autocannon.Options) =>
  new Promise<autocannon.Result>((resolve, reject) => {
    autocannon(opts, (error, result) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(result)));
  });

type Run = autocannon.Result & { cpuMs?: number };

/** One autocannon run, with the CPU the answering process used meanwhile. */
async function run(spec: LoadSpec, durationS: number): Promise<Run> {
  const before = spec.pid === undefined ? undefined : readCpuMs(spec.pid);
  const result: Run = await load(options(spec, durationS));
  const after = spec.pid === undefined ? undefined : readCpuMs(spec.pid);
  if (before !== undefined && after !== undefined) result.cpuMs = after - before;
  return result;
}

const cpuPerRequest = (runs: Run[]) => {
  const requests = runs.reduce((sum, r) => sum + r.requests.total, 0);
  if (requests === 0 || runs.some((r) => r.cpuMs === undefined)) return undefined;
  return (runs.reduce((sum, r) => sum + r.cpuMs!, 0) * 1000) / requests;
};

export function summarise(result: Run): Measurement {
  const codes = Object.entries(result.statusCodeStats ?? {})
    .map(([code, stats]) => `${code}×${stats.count ?? 0}`)
    .join(' ');
  return {
    rps: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
    bad: result.non2xx + result.errors + result.timeouts,
    statusCodes: codes,
    cpuUs: cpuPerRequest([result]),
  };
}

/** Warm-up (not recorded), then `durationS` seconds measured. */
export async function measure(spec: LoadSpec, durationS: number, warmupS: number): Promise<Measurement> {
  if (warmupS > 0) await run(spec, warmupS);
  return summarise(await run(spec, durationS));
}

/** Several loads at once (no warm-up): e.g. GET /projects while logins flood. Same order as `specs`. */
export async function measureTogether(specs: LoadSpec[], durationS: number): Promise<Measurement[]> {
  const results = await Promise.all(specs.map((spec) => run(spec, durationS)));
  return results.map(summarise);
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN;
};

/**
 * Loads measured in alternation (a, b, c, a, b, c…: `rounds` rounds sharing `durationS` each), so that other load on a
 * busy machine weighs on all alike and their ratios stay meaningful: req/s over all rounds, p50 and p99 the median
 * of the rounds'. Same order as `specs`.
 */
export async function measureAlternating(specs: LoadSpec[], durationS: number, warmupS: number, rounds: number): Promise<Measurement[]> {
  if (warmupS > 0) for (const spec of specs) await run(spec, warmupS);
  const roundS = Math.max(1, durationS / rounds);
  const results = specs.map(() => [] as Run[]);
  for (let round = 0; round < rounds; round++) {
    for (const [index, spec] of specs.entries()) results[index]!.push(await run(spec, roundS));
  }
  return results.map((list) => {
    const parts = list.map(summarise);
    const requests = list.reduce((sum, r) => sum + r.requests.total, 0);
    return {
      rps: requests / list.reduce((sum, r) => sum + r.duration, 0),
      p50: median(parts.map((p) => p.p50)),
      p99: median(parts.map((p) => p.p99)),
      requests,
      bad: parts.reduce((sum, p) => sum + p.bad, 0),
      statusCodes: [...new Set(parts.map((p) => p.statusCodes))].join(' '),
      cpuUs: cpuPerRequest(list),
    };
  });
}
