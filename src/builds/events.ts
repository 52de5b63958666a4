import { EventEmitter } from 'node:events';
import type { Notifications } from '../db/client.js';
import type { BuildStatusValue } from '../schemas/build.js';

/**
 * What happens to builds, as every process hears it. Events carry no log text: a listener that wants the new lines
 * reads them from the database from the byte offset it already has, so a missed or merged event loses nothing.
 *
 * - `queued`: a build waits; idle workers wake up and try to claim.
 * - `changed`: a build's log grew or its status moved (to running, a terminal status, or back to queued).
 */
export type BuildEvent =
  | { type: 'queued'; build_id: number }
  | { type: 'changed'; build_id: number; status: BuildStatusValue };

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
  typeof (event as BuildEvent).build_id === 'number' &&
  ((event as BuildEvent).type === 'queued' || (event as BuildEvent).type === 'changed');

/** A payload is one event or an array of events (those published in the same turn of the event loop). */
export function parseEvents(payload: string): BuildEvent[] {
  try {
    const parsed = JSON.parse(payload) as unknown;
    return (Array.isArray(parsed) ? parsed : [parsed]).filter(isEvent);
  } catch {
    return [];
  }
}

/** PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; batches stay well under. */
const MAX_PAYLOAD_BYTES = 7000;

/** Splits events into JSON-array payloads under MAX_PAYLOAD_BYTES (an event is some 60 bytes). */
export function batchPayloads(events: BuildEvent[]): string[] {
  const payloads: string[] = [];
  let batch: string[] = [];
  let size = 2;
  for (const event of events) {
    const json = JSON.stringify(event);
    if (batch.length > 0 && size + json.length + 1 > MAX_PAYLOAD_BYTES) {
      payloads.push(`[${batch.join(',')}]`);
      batch = [];
      size = 2;
    }
    batch.push(json);
    size += json.length + 1;
  }
  if (batch.length > 0) payloads.push(`[${batch.join(',')}]`);
  return payloads;
}

/**
 * Several processes (PostgreSQL): events travel by NOTIFY and come back to every listening process, this one
 * included, so each event is delivered locally exactly once, from LISTEN. If NOTIFY fails the event is still delivered
 * here (listeners elsewhere fall back on their periodic checks).
 */
export async function createPgEventBus(
  notifications: Notifications,
  onError: (error: unknown) => void,
): Promise<BuildEventBus> {
  const local = localEmitter();
  const listening = await notifications.listen(CHANNEL, (payload) => {
    for (const event of parseEvents(payload)) local.emit(event);
  });
  // Events go out batched: those published in the same turn of the event loop, and those published while the
  // previous NOTIFY was on its way, travel in one NOTIFY (one statement, and one wake-up of every listening process,
  // instead of one per event). Idle, an event leaves at once; at BUILD_TIME_SCALE=0 a worker pool publishes a thousand
  // events a second, and every process hears each NOTIFY.
  let pending: BuildEvent[] = [];
  let scheduled = false;
  let sending = false;
  const send = (payload: string) =>
    notifications.notify(CHANNEL, payload).catch((error: unknown) => {
      onError(error);
      for (const event of parseEvents(payload)) local.emit(event);
    });
  const flush = () => {
    scheduled = false;
    if (sending || pending.length === 0) return;
    const events = pending;
    pending = [];
    sending = true;
    void Promise.all(batchPayloads(events).map(send)).then(() => {
      sending = false;
      flush();
    });
  };
  return {
    publish(event) {
      pending.push(event);
      if (!scheduled && !sending) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    subscribe: local.subscribe,
    async close() {
      local.clear();
      await listening.unlisten().catch(onError);
    },
  };
}
