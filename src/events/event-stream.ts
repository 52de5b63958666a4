import type { AccessEndReason, CallerWatch, StreamCaller } from '../http/caller-watch.js';
import { SseStream } from '../http/sse.js';
import type { StreamSlot } from '../http/stream-quota.js';
import type { EventFilter, EventRow } from '../repositories/events.js';
import type { EventLog } from './event-log.js';

/** Events read at once by a stream catching up; it reads again until it has caught up. */
const READ_BATCH = 500;

export interface EventStreamsOptions {
  log: Pick<EventLog, 'subscribe'>;
  /** Events after `after` that pass `filter`, oldest first, at most `limit`. */
  read(after: number, filter: EventFilter, limit: number): Promise<EventRow[]>;
  callers: CallerWatch;
  keepAliveMs: number;
  retryMs: number;
  /** Each stream reads again this often even without a wake-up. */
  pollMs: number;
}

export interface EventSubscriber {
  /** Stream the events after this id. */
  from: number;
  filter: EventFilter;
  caller: StreamCaller;
  slot: StreamSlot;
  log: { warn(obj: object, msg: string): void };
}

/**
 * Live event streams (`GET /events` with `Accept: text/event-stream`): each follows the durable log from an id, as
 * the log grows, until its caller's access ends (an `end` event with a `reason`, as log streams do). What a stream
 * sends comes from the database, never from memory, so a reconnect (`Last-Event-ID`), to this replica or another,
 * misses nothing and repeats nothing. No Fastify types: the route hands it what to follow and sends its stream.
 */
export class EventStreams {
  readonly #options: EventStreamsOptions;
  readonly #open = new Set<SseStream>();
  /** Streams at the same place with the same filter (most of them, at the head of the log) share one read. */
  readonly #pendingReads = new Map<string, Promise<EventRow[]>>();

  constructor(options: EventStreamsOptions) {
    this.#options = options;
  }

  /** Streams open in this process. */
  get size(): number {
    return this.#open.size;
  }

  #nextRead(after: number, filter: EventFilter): Promise<EventRow[]> {
    const key = `${after}|${filter.projectId ?? ''}|${filter.typePrefix ?? ''}`;
    let read = this.#pendingReads.get(key);
    if (!read) {
      read = Promise.resolve().then(() => {
        this.#pendingReads.delete(key);
        return this.#options.read(after, filter, READ_BATCH);
      });
      this.#pendingReads.set(key, read);
    }
    return read;
  }

  follow({ from, filter, caller, slot, log }: EventSubscriber): SseStream {
    const { keepAliveMs, retryMs, pollMs, callers } = this.#options;
    const sse = new SseStream({ keepAliveMs, retryMs });
    let cursor = from;
    let reading = false;
    let again = false;

    const pump = async () => {
      if (!sse.isOpen) return;
      // One read at a time: a wake-up during a read asks for one more, so no event is sent twice or missed.
      if (reading) {
        again = true;
        return;
      }
      reading = true;
      try {
        do {
          again = false;
          const events = await this.#nextRead(cursor, filter);
          if (!sse.isOpen) return;
          // `id:` what `Last-Event-ID` resumes from, `event:` the type, `data:` the event as the pages show it.
          for (const event of events) sse.send({ id: event.id, event: event.type, data: JSON.stringify(event) });
          if (events.length > 0) cursor = events[events.length - 1]!.id;
          if (events.length === READ_BATCH) again = true;
        } while (again && sse.isOpen);
      } catch (error) {
        // The database hiccuped: the stream stays open and the next wake-up or poll tries again.
        log.warn({ err: error }, 'could not read the event log for a stream');
      } finally {
        reading = false;
      }
    };

    const unsubscribe = this.#options.log.subscribe((newestId) => {
      if (newestId > cursor) void pump();
    });
    const poll = setInterval(() => void pump(), pollMs);
    const accessEnded = (reason: AccessEndReason) => {
      if (!sse.isOpen) return;
      sse.send({ event: 'end', id: cursor, data: JSON.stringify({ reason }) });
      sse.end();
    };
    const stopWatching = callers.untilAccessEnds(caller, accessEnded);
    this.#open.add(sse);
    sse.onClose(() => {
      unsubscribe();
      stopWatching();
      clearInterval(poll);
      this.#open.delete(sse);
      slot.release();
    });
    // Subscribed first, then read: an event logged in between is not lost.
    void pump();
    return sse;
  }

  /** Ends every open stream (shutdown), telling its client to reconnect. */
  closeAll(): void {
    for (const sse of this.#open) {
      sse.comment('server shutting down: reconnect to resume');
      sse.end();
    }
  }
}
