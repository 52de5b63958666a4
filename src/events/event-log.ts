import type { EventsRepository } from '../repositories/events.js';

/** Rows a sequencing transaction gives ids to; a fuller batch runs again at once. */
const SEQUENCE_BATCH = 1000;

export interface EventLogOptions {
  events: Pick<EventsRepository, 'sequence' | 'newestId'>;
  /** Tells the other replicas that the log grew (they then tell their own listeners); absent with one process. */
  announce?: () => void;
  /** Runs at least this often even when nothing woke it (a write whose wake-up was lost, say). */
  intervalMs: number;
  /** Under load, runs at most once per this many milliseconds: each run is a transaction and a read. */
  minGapMs: number;
  onError(error: unknown): void;
}

/**
 * This process's view of the event log's head. Anything that may have written events wakes it (an engine event, a
 * write request answered, another replica's announcement); a run then gives ids to committed rows (PostgreSQL's
 * sequencer, src/repositories/events.ts) and, when the newest id grew, tells its listeners (live event streams,
 * webhooks' fan-out), which read what is new from the database. Runs never overlap, and wake-ups during one
 * ask for exactly one more. No Fastify types.
 */
export class EventLog {
  readonly #options: EventLogOptions;
  readonly #listeners = new Set<(newestId: number) => void>();
  #newest = 0;
  #running: Promise<void> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #gapTimer: NodeJS.Timeout | undefined;
  #lastRunAt = -Infinity;
  #stopped = true;

  constructor(options: EventLogOptions) {
    this.#options = options;
  }

  /** The newest id this process has seen. */
  get newestId(): number {
    return this.#newest;
  }

  /** Calls `listener` with the newest id whenever it grows; returns the function that stops listening. */
  subscribe(listener: (newestId: number) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  start(): void {
    this.#stopped = false;
    this.#timer = setInterval(() => this.wake(), this.#options.intervalMs);
    this.#timer.unref();
    this.wake();
  }

  /** Something may have written events: sequence and look (soon, coalesced with other wake-ups). */
  wake(): void {
    if (this.#stopped) return;
    if (this.#running || this.#gapTimer) {
      this.#again = true;
      return;
    }
    const wait = this.#lastRunAt + this.#options.minGapMs - performance.now();
    if (wait > 0) {
      this.#gapTimer = setTimeout(() => {
        this.#gapTimer = undefined;
        this.#run();
      }, wait);
      return;
    }
    this.#run();
  }

  #run(): void {
    this.#lastRunAt = performance.now();
    this.#again = false;
    this.#running = this.#cycle()
      .catch((error: unknown) => this.#options.onError(error))
      .finally(() => {
        this.#running = undefined;
        if (this.#again) this.wake();
      });
  }

  async #cycle(): Promise<void> {
    const { events, announce } = this.#options;
    let sequenced = 0;
    for (;;) {
      const count = await events.sequence(SEQUENCE_BATCH);
      sequenced += count;
      if (count < SEQUENCE_BATCH) break;
    }
    const newest = await events.newestId();
    if (newest <= this.#newest) return;
    this.#newest = newest;
    if (sequenced > 0) announce?.();
    for (const listener of this.#listeners) listener(newest);
  }

  /** Stops the timers; a run under way finishes. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#gapTimer);
    this.#gapTimer = undefined;
    await this.#running;
    this.#listeners.clear();
  }
}
