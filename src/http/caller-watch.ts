/**
 * Re-checks the callers of long-lived responses (live log streams), which authentication saw only once, when they
 * opened: a stream whose session was revoked (logout, password change, refresh-token reuse) or whose user was deleted
 * hears it within one sweep and ends.
 *
 * One timer for the whole process, not one per stream, and one check per distinct (user, session) per sweep, however
 * many streams share it. A check asks the caller cache (src/auth/caller-cache.ts), so while nothing changed it costs a
 * map lookup; after a change anywhere (the cache is invalidated: by this process's own repositories, by PostgreSQL
 * notifications from other replicas, by SQLite's version counter) the next sweep asks the database again and sees it.
 * Polling rather than listening to the cache's invalidations: it needs nothing from the cache, and it still works when
 * an invalidation is lost (the cache's time to live then bounds the delay) or the cache is off.
 */

/** Why a caller's access ended (`token_expired`: the access token the stream was opened with, see routes/build-logs). */
export type AccessEndReason = 'session_revoked' | 'user_deleted' | 'token_expired';

export interface WatchedCaller {
  id: number;
  /** The session (refresh-token family) the access token belongs to. */
  familyId: string;
}

/** The caller of a long-lived response: its session, and when the access token it was opened with expires (ms). */
export interface StreamCaller extends WatchedCaller {
  expiresAt: number;
}

export interface CallerWatchOptions {
  /** Is this session of this user still live? */
  isLive(userId: number, familyId: string): Promise<boolean>;
  /** Why a session is no longer live: asked once for each session found dead. */
  reason(userId: number): Promise<AccessEndReason>;
  /** Milliseconds between sweeps. */
  intervalMs: number;
  /** A check that failed (the database is down): the streams stay open and the next sweep tries again. */
  onError(error: unknown): void;
  /** Sessions checked at once during a sweep: a burst after an invalidation does not take the whole pool. */
  concurrency?: number;
}

type Ended = (reason: AccessEndReason) => void;

interface Session {
  caller: WatchedCaller;
  listeners: Set<Ended>;
}

export class CallerWatch {
  readonly #options: CallerWatchOptions;
  readonly #sessions = new Map<string, Session>();
  #timer: NodeJS.Timeout | undefined;
  #sweep: Promise<void> | undefined;

  constructor(options: CallerWatchOptions) {
    this.#options = options;
  }

  /** Sessions being watched (for tests). */
  get size(): number {
    return this.#sessions.size;
  }

  /**
   * Calls `onEnded` (once) when `caller`'s session is found dead; returns the function that stops watching. The
   * timer runs only while something is watched.
   */
  watch(caller: WatchedCaller, onEnded: Ended): () => void {
    const key = `${caller.id}:${caller.familyId}`;
    let session = this.#sessions.get(key);
    if (!session) {
      session = { caller, listeners: new Set() };
      this.#sessions.set(key, session);
    }
    let called = false;
    const listener: Ended = (reason) => {
      if (called) return;
      called = true;
      onEnded(reason);
    };
    session.listeners.add(listener);
    this.#start();
    const watched = session;
    return () => {
      watched.listeners.delete(listener);
      if (watched.listeners.size === 0 && this.#sessions.get(key) === watched) this.#sessions.delete(key);
      if (this.#sessions.size === 0) this.#stop();
    };
  }

  /**
   * Calls `onEnded` (once) when `caller`'s access ends: its session found dead (`watch`), or the access token the
   * response was opened with expiring (`token_expired`) — it was checked once, when the response began, and a request
   * made with it then would be refused; the client goes on with a fresh token. Returns the function that stops both.
   */
  untilAccessEnds(caller: StreamCaller, onEnded: Ended): () => void {
    const unwatch = this.watch(caller, onEnded);
    // A timer longer than 2^31 - 1 ms would fire at once: such a token outlives any stream that a restart ends.
    const expiry = setTimeout(() => onEnded('token_expired'), Math.min(2 ** 31 - 1, Math.max(0, caller.expiresAt - Date.now())));
    return () => {
      unwatch();
      clearTimeout(expiry);
    };
  }

  /** Checks every watched session now (a sweep already under way is joined, not doubled). */
  sweep(): Promise<void> {
    this.#sweep ??= this.#sweepAll().finally(() => {
      this.#sweep = undefined;
    });
    return this.#sweep;
  }

  close(): void {
    this.#stop();
    this.#sessions.clear();
  }

  #start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.sweep(), this.#options.intervalMs);
    // Streams keep the process busy on their own; the watch must not keep it alive after they are gone.
    this.#timer.unref();
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #sweepAll(): Promise<void> {
    const queue = [...this.#sessions.values()];
    const worker = async () => {
      for (let session = queue.shift(); session; session = queue.shift()) await this.#check(session);
    };
    await Promise.all(Array.from({ length: Math.max(1, this.#options.concurrency ?? 4) }, worker));
  }

  async #check(session: Session): Promise<void> {
    if (session.listeners.size === 0) return;
    const { id, familyId } = session.caller;
    try {
      if (await this.#options.isLive(id, familyId)) return;
      const reason = await this.#options.reason(id);
      for (const listener of [...session.listeners]) listener(reason);
    } catch (error) {
      this.#options.onError(error);
    }
  }
}
