import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Notifications } from '../db/client.js';
import type { JobStatus } from '../pipelines/progress.js';
import type { BuildStatusValue } from '../schemas/build.js';

/**
 * What happens to builds, as every process hears it. Events carry no log text: a listener that wants the new lines
 * reads them from the database from the byte offset it already has, so a missed or merged event loses nothing.
 *
 * - `queued`: a build waits; idle workers wake up and try to claim.
 * - `changed`: a build's log grew or its status moved (to running, a terminal status, or back to queued).
 * - `job`: a job's status moved: the worker running a job that is canceled stops it.
 * - `logged`: the event log (src/events/event-log.ts) grew: another replica's streams and fan-out read what is new.
 */
export type BuildEvent =
  | { type: 'queued'; build_id: number }
  | { type: 'changed'; build_id: number; status: BuildStatusValue }
  | { type: 'job'; job_id: number; build_id: number; status: JobStatus }
  | { type: 'logged' };

export type BuildEventListener = (event: BuildEvent) => void;

export interface BuildEventBus {
  publish(event: BuildEvent): void;
  /** Returns the function that unsubscribes. */
  subscribe(listener: BuildEventListener): () => void;
  close(): Promise<void>;
}

const CHANNEL = 'usine_build_events';

function localEmitter() {
  const emitter = new EventEmitter();
  // One listener per SSE client and per worker: there is no leak to warn about.
  emitter.setMaxListeners(0);
  return {
    emit: (event: BuildEvent) => emitter.emit('event', event),
    subscribe(listener: BuildEventListener) {
      emitter.on('event', listener);
      return () => void emitter.off('event', listener);
    },
    clear: () => void emitter.removeAllListeners(),
  };
}

/** One process (SQLite): events stay in memory. */
export function createLocalEventBus(): BuildEventBus {
  const local = localEmitter();
  return {
    publish: (event) => local.emit(event),
    subscribe: local.subscribe,
    close: async () => local.clear(),
  };
}

const isEvent = (event: unknown): event is BuildEvent =>
  typeof event === 'object' &&
  event !== null &&
  ((event as BuildEvent).type === 'logged' || typeof (event as { build_id?: unknown }).build_id === 'number') &&
  ((event as BuildEvent).type === 'logged' ||
    (event as BuildEvent).type === 'queued' ||
    (event as BuildEvent).type === 'changed' ||
    ((event as BuildEvent).type === 'job' && typeof (event as { job_id?: unknown }).job_id === 'number'));

/** A NOTIFY payload: the sending process's tag, and the events it published since its previous NOTIFY. */
interface Envelope {
  from: string;
  events: unknown[];
}

const isEnvelope = (parsed: unknown): parsed is Envelope =>
  typeof parsed === 'object' && parsed !== null && Array.isArray((parsed as Envelope).events);

/** The events a payload carries (an envelope, or, from older processes, an array of events or one event). */
export function parseEvents(payload: string): BuildEvent[] {
  try {
    const parsed = JSON.parse(payload) as unknown;
    const events = isEnvelope(parsed) ? parsed.events : Array.isArray(parsed) ? parsed : [parsed];
    return events.filter(isEvent);
  } catch {
    return [];
  }
}

/** PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; batches stay well under. */
const MAX_PAYLOAD_BYTES = 7000;

/** Splits events into envelopes from `from`, each under MAX_PAYLOAD_BYTES (an event is some 60 bytes). */
export function batchPayloads(from: string, events: BuildEvent[]): string[] {
  const head = `{"from":${JSON.stringify(from)},"events":[`;
  const payloads: string[] = [];
  let batch: string[] = [];
  let size = head.length + 2;
  for (const event of events) {
    const json = JSON.stringify(event);
    if (batch.length > 0 && size + json.length + 1 > MAX_PAYLOAD_BYTES) {
      payloads.push(`${head}${batch.join(',')}]}`);
      batch = [];
      size = head.length + 2;
    }
    batch.push(json);
    size += json.length + 1;
  }
  if (batch.length > 0) payloads.push(`${head}${batch.join(',')}]}`);
  return payloads;
}

/**
 * Under load, a process sends at most one NOTIFY per this many milliseconds. Every NOTIFY wakes every listening
 * process (and a PostgreSQL backend for each), so their number, not the events they carry, is what costs; idle, an
 * event still leaves at once. 50 ms is below what a person watching a log notices, and three processes draining
 * builds on two cores ran 6–21 % faster than one with it, against 6–7 % with 10 ms (BENCHMARKS.md).
 */
export const NOTIFY_INTERVAL_MS = 50;

/**
 * Several processes (PostgreSQL): an event reaches this process's subscribers at once, and the others by NOTIFY.
 * Each process tags its NOTIFYs and skips its own when LISTEN hands them back, so every event is delivered exactly
 * once in each process. A failed NOTIFY is reported; listeners elsewhere fall back on their periodic checks.
 */
export async function createPgEventBus(
  notifications: Notifications,
  onError: (error: unknown) => void,
  { intervalMs = NOTIFY_INTERVAL_MS }: { intervalMs?: number } = {},
): Promise<BuildEventBus> {
  const local = localEmitter();
  const tag = randomBytes(6).toString('hex');
  const ownPrefix = `{"from":"${tag}"`;
  const listening = await notifications.listen(CHANNEL, (payload) => {
    if (payload.startsWith(ownPrefix)) return;
    for (const event of parseEvents(payload)) local.emit(event);
  });
  // Events go out batched: those published in the same turn of the event loop, while the previous NOTIFY was on
  // its way, or less than intervalMs after it, travel in one NOTIFY (at BUILD_TIME_SCALE=0 a worker pool publishes a
  // thousand events a second).
  let pending: BuildEvent[] = [];
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;
  let lastSentAt = -Infinity;
  let closed = false;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0) return;
    const payloads = batchPayloads(tag, pending);
    pending = [];
    lastSentAt = performance.now();
    inFlight = Promise.all(payloads.map((payload) => notifications.notify(CHANNEL, payload).catch(onError))).then(() => {
      inFlight = undefined;
      schedule();
    });
  };
  function schedule() {
    if (timer || inFlight || pending.length === 0) return;
    if (closed) return flush();
    timer = setTimeout(flush, Math.max(0, lastSentAt + intervalMs - performance.now()));
  }
  return {
    publish(event) {
      local.emit(event);
      pending.push(event);
      schedule();
    },
    subscribe: local.subscribe,
    async close() {
      // What is still waiting goes out now (other processes may need it: builds handed back at shutdown), without
      // waiting for it: the database pool's own end lets queries in flight finish.
      local.clear();
      closed = true;
      if (!inFlight) flush();
      await listening.unlisten().catch(onError);
    },
  };
}
