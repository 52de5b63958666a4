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

function parseEvent(payload: string): BuildEvent | undefined {
  try {
    const event = JSON.parse(payload) as BuildEvent;
    return typeof event?.build_id === 'number' && (event.type === 'queued' || event.type === 'changed') ? event : undefined;
  } catch {
    return undefined;
  }
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
    const event = parseEvent(payload);
    if (event) local.emit(event);
  });
  return {
    publish(event) {
      notifications.notify(CHANNEL, JSON.stringify(event)).catch((error: unknown) => {
        onError(error);
        local.emit(event);
      });
    },
    subscribe: local.subscribe,
    async close() {
      local.clear();
      await listening.unlisten().catch(onError);
    },
  };
}
