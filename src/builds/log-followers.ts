import { linesFrom } from './log-slice.js';
import type { BuildEventBus } from './events.js';
import type { AccessEndReason, CallerWatch, StreamCaller } from '../http/caller-watch.js';
import { SseStream } from '../http/sse.js';
import type { StreamSlot } from '../http/stream-quota.js';

/** A log as one read finds it: its owner's status then, and its bytes. */
export interface LogSnapshot {
  status: string;
  bytes: Buffer;
}

/** What is followed: a build's log or a job's, read the same way. */
export interface FollowedLog {
  /** Names the log among all followed ones (`build:1`, `job:7`): followers of one log share its reads. */
  key: string;
  /** The build whose `changed` events say the log may have grown (a job's log grows with its build's). */
  buildId: number;
  /** The log now; undefined once it is gone (deleted with its project). */
  read(): Promise<LogSnapshot | undefined>;
  /** Its owner is over: the log is complete, and the stream ends after it. */
  isFinal(status: string): boolean;
  /** What the stream says before it ends when the log is gone. */
  gone: string;
}

export interface Follower {
  /** The status when the request read it. */
  status: string;
  caller: StreamCaller;
  /** The stream's place in the quota, given back when the stream ends, for whatever reason. */
  slot: StreamSlot;
  log: { warn(obj: object, msg: string): void };
}

export interface LogFollowersOptions {
  events: BuildEventBus;
  callers: CallerWatch;
  keepAliveMs: number;
  retryMs: number;
  /** Each stream reads again this often even without an event (an event lost with a connection, say). */
  pollMs: number;
}

/**
 * Live log streams, of builds and of jobs: each follows one log from a byte offset as its owner runs, one SSE event per
 * line (`id:` the byte offset past it), until the owner is over (an `end` event with its status) or the caller's
 * access ends (an `end` event with a `reason`: session revoked, user deleted, access token expired). No Fastify types:
 * the routes hand it what to follow and send its stream.
 */
export class LogFollowers {
  readonly #options: LogFollowersOptions;
  /** Every open stream, ended on close so that shutdown does not wait for clients that never hang up. */
  readonly #open = new Set<SseStream>();
  /**
   * The log as the next read finds it, shared by every stream that asks before that read starts: a change event
   * reaches all of a log's followers at once, and one query (and one copy of the log's bytes) then serves them all
   * instead of one each. A read already under way is never joined: it may predate the change the caller was told of.
   */
  readonly #pendingReads = new Map<string, Promise<LogSnapshot | undefined>>();

  constructor(options: LogFollowersOptions) {
    this.#options = options;
  }

  #nextRead(source: FollowedLog): Promise<LogSnapshot | undefined> {
    let read = this.#pendingReads.get(source.key);
    if (!read) {
      read = Promise.resolve().then(() => {
        this.#pendingReads.delete(source.key);
        return source.read();
      });
      this.#pendingReads.set(source.key, read);
    }
    return read;
  }

  /** Streams `source` from byte `from`, as it grows, until its owner is over or its caller's access ends. */
  follow(source: FollowedLog, from: number, { status, caller, slot, log }: Follower): SseStream {
    const { events, callers, keepAliveMs, retryMs, pollMs } = this.#options;
    const sse = new SseStream({ keepAliveMs, retryMs });
    let cursor = from;
    let lastStatus = status;
    let reading = false;
    let again = false;

    const pump = async () => {
      if (!sse.isOpen) return;
      // One read at a time: an event arriving during a read asks for one more, so no line is sent twice or missed.
      if (reading) {
        again = true;
        return;
      }
      reading = true;
      try {
        do {
          again = false;
          const snapshot = await this.#nextRead(source);
          if (!sse.isOpen) return;
          if (!snapshot) {
            // Deleted (with its project) while followed: nothing more will come.
            sse.comment(source.gone);
            sse.end();
            return;
          }
          const { bytes } = snapshot;
          lastStatus = snapshot.status;
          // A finished log is complete: a last line without a line feed may be sent too.
          const final = source.isFinal(snapshot.status);
          const { lines, next } = linesFrom(bytes, cursor, final);
          for (const line of lines) sse.send({ id: line.end, data: line.text });
          cursor = next;
          if (final) {
            sse.send({ event: 'end', id: bytes.length, data: JSON.stringify({ status: snapshot.status }) });
            sse.end();
            return;
          }
        } while (again);
      } catch (error) {
        // The database hiccuped: the stream stays open and the next event or poll tries again.
        log.warn({ err: error, log: source.key }, 'could not read a followed log');
      } finally {
        reading = false;
      }
    };

    const unsubscribe = events.subscribe((event) => {
      if (event.type === 'changed' && event.build_id === source.buildId) void pump();
    });
    const poll = setInterval(() => void pump(), pollMs);
    // Lines already sent stay sent; the `end` event says why nothing more comes, and `id:` where to resume.
    const accessEnded = (reason: AccessEndReason) => {
      if (!sse.isOpen) return;
      sse.send({ event: 'end', id: cursor, data: JSON.stringify({ status: lastStatus, reason }) });
      sse.end();
    };
    // The client resumes with a fresh token and `Last-Event-ID`.
    const stopWatching = callers.untilAccessEnds(caller, accessEnded);
    this.#open.add(sse);
    sse.onClose(() => {
      unsubscribe();
      stopWatching();
      clearInterval(poll);
      this.#open.delete(sse);
      slot.release();
    });
    // Subscribed first, then read: a change made in between is not lost.
    void pump();
    return sse;
  }

  /** Ends every open stream (shutdown), telling its client to reconnect. */
  closeAll(): void {
    this.#options.callers.close();
    for (const sse of this.#open) {
      sse.comment('server shutting down: reconnect to resume');
      sse.end();
    }
  }
}
