import { EventEmitter } from 'node:events';
import { withTimeout } from '../timeout.js';

export interface AvailabilityOptions {
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  /** ms between pings while the database answers; a quarter of it while it does not, to notice its return soon. */
  intervalMs: number;
  /** A ping not settled within this many ms counts as failed. */
  timeoutMs: number;
  onChange?(available: boolean, reason: string): void;
}

/**
 * Whether the database can be used right now, as a circuit breaker: a background ping (one at a time, bounded by a
 * timeout) keeps it up to date, and a query that failed for want of a connection triggers a ping at once. While it is open,
 * callers answer 503 without touching the database, so that nothing piles up in the driver's queue waiting for a
 * connection; the next successful ping closes it.
 */
export class DatabaseAvailability extends EventEmitter<{ change: [available: boolean] }> {
  private up = true;
  private timer?: NodeJS.Timeout;
  private pinging = false;
  private stopped = false;

  constructor(private readonly options: AvailabilityOptions) {
    super();
  }

  get available(): boolean {
    return this.up;
  }

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** A query failed for want of a connection: ping at once rather than at the next tick (one lost connection is no outage). */
  suspect(): void {
    if (this.stopped) return;
    void this.check().then(() => {
      if (!this.stopped) this.schedule();
    });
  }

  /** Pings now (unless a ping is already under way) and resolves with the resulting availability. */
  async check(): Promise<boolean> {
    if (this.pinging) return this.up;
    this.pinging = true;
    try {
      await withTimeout(this.options.ping(), this.options.timeoutMs);
      this.set(true, 'the database answered');
    } catch (error) {
      this.set(false, error instanceof Error ? error.message : String(error));
    } finally {
      this.pinging = false;
    }
    return this.up;
  }

  private schedule(): void {
    clearTimeout(this.timer);
    const delay = this.up ? this.options.intervalMs : Math.max(50, Math.round(this.options.intervalMs / 4));
    this.timer = setTimeout(() => {
      void this.check().then(() => {
        if (!this.stopped) this.schedule();
      });
    }, delay);
    this.timer.unref();
  }

  private set(available: boolean, reason: string): void {
    if (available === this.up) return;
    this.up = available;
    this.options.onChange?.(available, reason);
    this.emit('change', available);
  }
}
