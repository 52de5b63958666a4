import { setTimeout as sleep } from 'node:timers/promises';
import { isDeadlock } from './errors.js';

/** Runs beyond the first: a deadlock seldom repeats once the transaction that won has committed. */
const RETRIES = 4;

/**
 * Runs `work` (a transaction, or a statement that locks rows of several tables) again when PostgreSQL failed it to
 * break a deadlock: a cycle of transactions each waiting on a lock another holds. Every write takes its locks in the
 * same order where it can (a job before its build, a build before its project); a few cannot (deleting a project locks
 * its row, then its builds', which a finishing build locks the other way round), and PostgreSQL settles those by
 * failing one of them, which wrote nothing: running it again after the others is what it expects of its clients.
 * `work` must be safe to run again from the start (a transaction script is: it does no other I/O).
 */
export async function retryingDeadlocks<T>(work: () => Promise<T>): Promise<T> {
  for (let retry = 0; ; retry++) {
    try {
      return await work();
    } catch (error) {
      if (retry >= RETRIES || !isDeadlock(error)) throw error;
      // A few milliseconds, more each time and never in step with the other side, for the winner to commit.
      await sleep((retry + 1) * (2 + Math.random() * 8));
    }
  }
}
