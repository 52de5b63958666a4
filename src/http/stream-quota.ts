/**
 * How many long-lived responses (live log streams) this process holds open, per user and in all, so that one viewer
 * cannot hold every socket, subscription and timer the process has. Counted in memory: each replica counts its own
 * streams, so the caps are per replica (N replicas hold up to N times as many).
 */

export interface StreamLimits {
  /** Streams one user may hold open at once. */
  perUser: number;
  /** Streams the process holds open at once, all users together. */
  total: number;
}

/** A stream's place in the count, given back by `release()`: once, however many times it is called. */
export interface StreamSlot {
  release(): void;
}

/** Why a stream was refused: the user's cap or the process's, and that cap. */
export interface StreamRefusal {
  refused: 'user' | 'process';
  limit: number;
}

export class StreamQuota {
  readonly limits: StreamLimits;
  #total = 0;
  readonly #byUser = new Map<number, number>();

  constructor(limits: StreamLimits) {
    this.limits = limits;
  }

  /** Streams open in this process. */
  get open(): number {
    return this.#total;
  }

  /** Streams `userId` holds open in this process. */
  openBy(userId: number): number {
    return this.#byUser.get(userId) ?? 0;
  }

  /**
   * Takes a slot for one more stream of `userId`, or says which cap it would exceed. The user's cap is checked first:
   * a user at their own cap learns that, whatever the process's count.
   */
  acquire(userId: number): StreamSlot | StreamRefusal {
    const held = this.openBy(userId);
    if (held >= this.limits.perUser) return { refused: 'user', limit: this.limits.perUser };
    if (this.#total >= this.limits.total) return { refused: 'process', limit: this.limits.total };
    this.#byUser.set(userId, held + 1);
    this.#total++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.#total--;
        const left = this.openBy(userId) - 1;
        // No entry for a user with nothing open: the map stays as small as the set of users streaming now.
        if (left > 0) this.#byUser.set(userId, left);
        else this.#byUser.delete(userId);
      },
    };
  }
}

export const isRefusal = (result: StreamSlot | StreamRefusal): result is StreamRefusal => 'refused' in result;
