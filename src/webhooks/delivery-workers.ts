import type { LookupFunction } from 'node:net';
import type { AttemptVerdict, ClaimedDelivery, HooksRepository } from '../repositories/hooks.js';
import { nextAttemptDelayMs, shouldRetry } from './backoff.js';
import { sendWebhook, type SendOutcome } from './send.js';
import { webhookHeaders } from './signature.js';

export interface DeliveryWorkersOptions {
  hooks: Pick<HooksRepository, 'claim' | 'record' | 'reclaimExpired' | 'fanOut'>;
  /** Deliveries sent at once. */
  concurrency: number;
  /** Names this process's workers in leases (`<host>:<pid>:<random>`). */
  owner: string;
  timeoutMs: number;
  retryBaseS: number;
  userAgent: string;
  /** The SSRF guard: resolves and refuses internal addresses (src/webhooks/ssrf.ts). */
  lookup: LookupFunction;
  refuseLiteral: (url: URL) => string | undefined;
  /** An idle worker looks for due deliveries at least this often (retries come due with no one waking it). */
  pollMs: number;
  log: { warn(obj: object, msg: string): void };
}

/**
 * A claim's lease: twice the longest attempt (the receiver's deadline) and two seconds for the database writes around
 * it; a replica killed mid-delivery leaves it to be taken over that much later (22 s with the default 10 s deadline).
 */
export const leaseMsFor = (timeoutMs: number) => 2 * timeoutMs + 2000;

const isSuccess = (outcome: SendOutcome) => outcome.status !== undefined && outcome.status >= 200 && outcome.status < 300;

/** What one attempt's outcome means for its delivery: done, try again later (how much later), or given up. */
export function verdictOf(outcome: SendOutcome, attempt: number, retryBaseS: number): AttemptVerdict {
  if (isSuccess(outcome)) return { kind: 'succeeded' };
  if (!shouldRetry(outcome)) return { kind: 'failed' };
  return { kind: 'retry', delayMs: nextAttemptDelayMs({ attempt, baseS: retryBaseS, retryAfter: outcome.headers?.['retry-after'] }) };
}

/**
 * This process's webhook deliveries: up to `concurrency` in flight, each claimed (src/repositories/hooks.ts), signed
 * with its hook's secrets, POSTed through the SSRF guard, and its attempt and verdict recorded. It also runs the
 * fan-out (events → deliveries) when woken. No Fastify types.
 */
export class DeliveryWorkers {
  readonly #options: DeliveryWorkersOptions;
  #loop: Promise<void> | undefined;
  readonly #sleepers = new Set<() => void>();
  #stopped = true;
  #housekeeping: NodeJS.Timeout | undefined;
  #fanningOut: Promise<void> | undefined;
  #fanOutAgain = false;

  constructor(options: DeliveryWorkersOptions) {
    this.#options = options;
  }

  start(): void {
    if (this.#options.concurrency === 0) return;
    this.#stopped = false;
    // Once per poll for the whole process, not per worker: leases left by a killed replica go back to the queue, and
    // events whose wake-up was lost fan out.
    this.#housekeeping = setInterval(() => {
      this.#options.hooks.reclaimExpired().then(
        (reclaimed) => reclaimed > 0 && this.wake(),
        (error: unknown) => this.#options.log.warn({ err: error }, 'could not reclaim expired webhook deliveries'),
      );
      this.eventsLogged();
    }, this.#options.pollMs);
    this.#housekeeping.unref();
    this.eventsLogged();
    this.#loop = this.#claimLoop();
  }

  /** The event log grew: make its deliveries, then wake the workers. */
  eventsLogged(): void {
    if (this.#stopped) return;
    if (this.#fanningOut) {
      this.#fanOutAgain = true;
      return;
    }
    this.#fanningOut = (async () => {
      do {
        this.#fanOutAgain = false;
        let made = 0;
        for (;;) {
          const batch = await this.#options.hooks.fanOut();
          made += batch.made;
          if (!batch.more) break;
        }
        if (made > 0) this.wake();
      } while (this.#fanOutAgain && !this.#stopped);
    })()
      .catch((error: unknown) => this.#options.log.warn({ err: error }, 'could not make webhook deliveries from the event log'))
      .finally(() => {
        this.#fanningOut = undefined;
      });
  }

  /** Deliveries are due: idle workers look at once. */
  wake(): void {
    for (const wake of [...this.#sleepers]) wake();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#sleepers.add(done);
    });
  }

  /**
   * One loop claims, one delivery at a time (one database connection, whatever the concurrency), and hands each to a
   * sender while fewer than `concurrency` are in flight; idle, it sleeps until woken or `pollMs` passes.
   */
  async #claimLoop(): Promise<void> {
    const { hooks, owner, timeoutMs, pollMs, concurrency, log } = this.#options;
    const inFlight = new Set<Promise<void>>();
    while (!this.#stopped) {
      if (inFlight.size >= concurrency) {
        await Promise.race(inFlight);
        continue;
      }
      let delivery: ClaimedDelivery | undefined;
      try {
        delivery = await hooks.claim(owner, leaseMsFor(timeoutMs));
      } catch (error) {
        log.warn({ err: error }, 'could not claim a webhook delivery');
      }
      if (!delivery) {
        await this.#sleep(pollMs);
        continue;
      }
      const claimed = delivery;
      const sending: Promise<void> = this.#deliver(claimed)
        // Its lease expires and another attempt follows: at least once.
        .catch((error: unknown) => log.warn({ err: error, delivery: claimed.id }, 'could not record a webhook delivery attempt'))
        .finally(() => {
          inFlight.delete(sending);
          // A hook's next delivery may be claimed now that this one is over.
          this.wake();
        });
      inFlight.add(sending);
    }
    await Promise.all(inFlight);
  }

  async #deliver(delivery: ClaimedDelivery): Promise<void> {
    const { hooks, owner, timeoutMs, retryBaseS, userAgent, lookup, refuseLiteral } = this.#options;
    const headers = webhookHeaders({
      msgId: delivery.message_id,
      timestampS: Math.floor(Date.now() / 1000),
      body: delivery.body,
      secrets: delivery.secrets,
      eventType: delivery.event_type,
      userAgent,
    });
    const outcome = await sendWebhook({ url: delivery.url, headers, body: delivery.body, timeoutMs, lookup, refuseLiteral });
    await hooks.record(
      delivery,
      owner,
      {
        request_headers: headers,
        response_status: outcome.status ?? null,
        response_headers: outcome.headers ?? null,
        response_body: outcome.body ?? null,
        error: outcome.error ?? null,
        duration_ms: Math.round(outcome.durationMs),
      },
      verdictOf(outcome, delivery.attempts, retryBaseS),
    );
  }

  /** Stops claiming; deliveries under way finish (each bounded by the receiver's deadline). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#housekeeping);
    this.wake();
    await this.#loop;
    await this.#fanningOut;
  }
}
