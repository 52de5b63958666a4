import type { Role } from '../repositories/users.js';

/** The caller of an access token as the database last said: the user exists, has this role, the session is live. */
export interface ActiveCaller {
  id: number;
  username: string;
  role: Role;
}

export interface CallerCacheOptions {
  /** The database lookup (user exists, role, session family not revoked). */
  load(userId: number, familyId: string): Promise<ActiveCaller | undefined>;
  /** Longest time an answer is reused, in ms; 0 turns the cache off (every request asks the database). */
  ttlMs: number;
  /** Most (user, session) pairs kept; the oldest is dropped beyond. */
  maxEntries?: number;
  /**
   * A cheap read of a counter the database moves whenever a cached answer may be stale (SQLite: the `auth_version`
   * row, bumped by triggers on any connection); read at most every `versionCheckMs`. Absent on PostgreSQL, where the
   * database notifies instead and `invalidate()` is called.
   */
  version?(): number;
  /**
   * How long a read of `version()` is trusted, in ms (0: read on every lookup). Each read is a statement of its own
   * (on SQLite, a read transaction): as costly as the lookup it saves on a fast route.
   */
  versionCheckMs?: number;
  now?(): number;
}

interface Entry {
  caller: ActiveCaller;
  expiresAt: number;
}

/**
 * Authentication's per-request question ("does this user still exist, with which role, and is this session still
 * live?") answered from memory, with the guarantees of asking the database every time:
 * - a change made through this process's repositories (user deleted or demoted, logout, reuse detection, password
 *   change) calls `invalidate()` before its request answers: the next request asks the database again;
 * - on SQLite, `version()` is read at most every `versionCheckMs`, so a change made by any other connection
 *   (another process, the sqlite3 shell) or by raw SQL in this process is seen within that time (`checkVersion()`:
 *   at once);
 * - on PostgreSQL, triggers NOTIFY `usine_auth` on such changes and every process invalidates when it hears it
 *   (milliseconds); `sync()` waits until every change committed before it has been heard. If the listening
 *   connection drops, notifications sent meanwhile are lost: `ttlMs` bounds how long an answer can outlive them.
 * A lookup that started before an invalidation never stores its (possibly stale) answer.
 * Only positive answers are kept: a refused token asks the database each time.
 */
export class CallerCache {
  readonly #options: CallerCacheOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;
  readonly #now: () => number;
  /** Moves on every invalidation: a lookup stores its answer only if it did not move meanwhile. */
  #generation = 0;
  #version: number | undefined;
  /** When `version()` was last read (this.#now()); -Infinity: read on the next lookup. */
  #versionReadAt = -Infinity;
  /** False until the source of invalidations is live (PostgreSQL: LISTEN established), and after close(). */
  #enabled: boolean;

  constructor(options: CallerCacheOptions, { enabled = true }: { enabled?: boolean } = {}) {
    this.#options = options;
    this.#maxEntries = options.maxEntries ?? 10_000;
    this.#now = options.now ?? Date.now;
    this.#enabled = enabled && options.ttlMs > 0;
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  /** Turns caching on (once invalidations can be heard) or off (the cache is emptied). */
  setEnabled(enabled: boolean): void {
    this.invalidate();
    this.#enabled = enabled && this.#options.ttlMs > 0;
  }

  /** How many answers are held (for tests and metrics). */
  get size(): number {
    return this.#entries.size;
  }

  /** Forgets every answer, and any lookup in flight will not store its own. */
  invalidate(): void {
    this.#generation++;
    this.#entries.clear();
  }

  /** Reads `version()` now and forgets everything if it moved since the last read. */
  checkVersion(now = this.#now()): void {
    if (!this.#options.version) return;
    const version = this.#options.version();
    this.#versionReadAt = now;
    if (version !== this.#version) {
      this.invalidate();
      this.#version = version;
    }
  }

  /**
   * The answer held for this (user, session), without asking the database: undefined when there is none (or it is
   * stale), and then `find()` asks. Synchronous, so that the common case costs no promise.
   */
  cached(userId: number, familyId: string): ActiveCaller | undefined {
    if (!this.#enabled) return undefined;
    const now = this.#now();
    if (this.#options.version && now - this.#versionReadAt >= (this.#options.versionCheckMs ?? 0)) this.checkVersion(now);
    const key = `${userId}:${familyId}`;
    const hit = this.#entries.get(key);
    if (!hit) return undefined;
    if (hit.expiresAt > now) return hit.caller;
    this.#entries.delete(key);
    return undefined;
  }

  async find(userId: number, familyId: string): Promise<ActiveCaller | undefined> {
    const hit = this.cached(userId, familyId);
    if (hit) return hit;
    if (!this.#enabled) return this.#options.load(userId, familyId);
    const now = this.#now();
    const key = `${userId}:${familyId}`;
    const generation = this.#generation;
    const caller = await this.#options.load(userId, familyId);
    if (caller && generation === this.#generation && this.#enabled) {
      if (this.#entries.size >= this.#maxEntries) {
        const oldest = this.#entries.keys().next();
        if (!oldest.done) this.#entries.delete(oldest.value);
      }
      this.#entries.set(key, { caller, expiresAt: now + this.#options.ttlMs });
    }
    return caller;
  }
}
