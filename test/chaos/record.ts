/**
 * Chaos figures writer, shared by every chaos scenario (owned by the outage/overload/crash helper; used by all).
 *
 * Each scenario calls `recordScenario({...})` (alias `record`) once it has its figures; the file goes to
 * `test/artifacts/chaos/<scenario>.<db>.json` and `scripts/reliability-report.ts` turns all of them into
 * RELIABILITY.md. Shape: `{ scenario, db, what, happened, ok?, figures: { requests, 5xx, lost, ... } }`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where every chaos scenario leaves its figures (read by the RELIABILITY.md generator). */
export const CHAOS_ARTIFACTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'artifacts', 'chaos');

export interface ChaosRecord {
  /** Short kebab-case name; also the file name (suffixed with the database). */
  scenario: string;
  /** `sqlite` or `pg` (or `-` for a scenario that does not depend on the database). */
  db: 'sqlite' | 'pg' | '-';
  /** What was done, in one or two sentences. */
  what: string;
  /** What happened, in one or two sentences (the verdict, any failure spelled out). */
  happened: string;
  /** Did the scenario meet its bar (its test passes)? The report shows it; absent shows as not stated. */
  ok?: boolean;
  /** Counts: `requests`, `5xx`, `lost` first (the report's columns), then anything else (numbers; strings allowed). */
  figures: Record<string, number | string | boolean | null>;
}

/**
 * Writes `test/artifacts/chaos/<scenario>.<db>.json` (and returns its path). One file per scenario and database, so
 * the sqlite and pg projects never write the same file.
 */
export function recordScenario(entry: ChaosRecord): string {
  mkdirSync(CHAOS_ARTIFACTS_DIR, { recursive: true });
  const safe = (text: string) => text.replace(/[^A-Za-z0-9_-]+/g, '-');
  const path = join(CHAOS_ARTIFACTS_DIR, `${safe(entry.scenario)}.${entry.db === '-' ? 'any' : entry.db}.json`);
  writeFileSync(path, `${JSON.stringify({ ...entry, recorded_at: new Date().toISOString() }, null, 2)}\n`);
  return path;
}

/** Same as recordScenario. */
export const record = recordScenario;

/** A small counter for request outcomes, to fill `figures` with. */
export class RequestTally {
  requests = 0;
  fiveXX = 0;
  non503FiveXX = 0;
  errors = 0;
  readonly byStatus: Record<string, number> = {};

  add(status: number | 'error'): void {
    this.requests += 1;
    const key = String(status);
    this.byStatus[key] = (this.byStatus[key] ?? 0) + 1;
    if (status === 'error') this.errors += 1;
    else if (status >= 500) {
      this.fiveXX += 1;
      if (status !== 503) this.non503FiveXX += 1;
    }
  }
}

export interface Probe {
  /** HTTP status, or 0 when no answer came (connection refused or reset, or the bound ran out). */
  status: number;
  ms: number;
  startedAt: number;
  contentType: string;
  retryAfter: string | null;
  /** Parsed JSON body when there was one, else the text. */
  body: unknown;
  /** Why no answer came, when status is 0. */
  error?: string;
  timedOut: boolean;
}

/** One request bounded by `timeoutMs`: never throws, reports what came back (or did not) and how long it took. */
export async function probe(url: string, init: RequestInit = {}, timeoutMs = 10_000): Promise<Probe> {
  const startedAt = Date.now();
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return {
      status: response.status,
      ms: Date.now() - startedAt,
      startedAt,
      contentType: response.headers.get('content-type') ?? '',
      retryAfter: response.headers.get('retry-after'),
      body,
      timedOut: false,
    };
  } catch (error) {
    const err = error as Error & { cause?: { code?: string } };
    const timedOut = err.name === 'TimeoutError' || err.name === 'AbortError';
    return {
      status: 0,
      ms: Date.now() - startedAt,
      startedAt,
      contentType: '',
      retryAfter: null,
      body: undefined,
      error: timedOut ? `no answer within ${timeoutMs} ms` : `${err.message}${err.cause?.code ? ` (${err.cause.code})` : ''}`,
      timedOut,
    };
  }
}

/** True when `p` is a 503 `service_unavailable` problem (RFC 9457 body, problem+json). */
export function isUnavailableProblem(p: Probe): boolean {
  const body = p.body as { status?: unknown; error?: unknown; title?: unknown } | undefined;
  return (
    p.status === 503 &&
    p.contentType.startsWith('application/problem+json') &&
    typeof body === 'object' &&
    body !== null &&
    body.status === 503 &&
    body.error === 'service_unavailable' &&
    typeof body.title === 'string'
  );
}
