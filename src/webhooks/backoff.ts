/**
 * When a failed webhook delivery is tried again: exponential backoff with jitter, at most an hour a wait, never sooner
 * than the receiver's own `Retry-After`, and only for failures that another try can cure.
 */

/** No single wait is longer than this, whatever the attempt count or the receiver's `Retry-After`. */
export const MAX_DELAY_MS = 3600 * 1000;

/**
 * Retries stop once the next attempt would fall more than this after the delivery was created (the caller applies
 * it: it knows when the delivery was created).
 */
export const RETRY_WINDOW_MS = 24 * 3600 * 1000;

/** How far a wait strays from its nominal value, either way: ±20 %. */
const JITTER = 0.2;

export interface BackoffInput {
  /** Attempts made so far, the failed one included (≥ 1). */
  attempt: number;
  /** The first wait, in seconds; each further one doubles it. */
  baseS: number;
  /** The raw `Retry-After` header of the failed attempt's response, if it had one. */
  retryAfter?: string | undefined;
  /** A number in [0, 1), as from Math.random (its default); injected by tests. */
  random?: () => number;
  /** The current time, for a `Retry-After` given as a date (default Date.now()); injected by tests. */
  nowMs?: number;
}

/**
 * The wait in ms before the next attempt: `baseS * 2^(attempt - 1)` seconds, jittered by ±20 %, capped at an hour.
 *
 * The jitter is proportional ("equal"-style, not full jitter): full jitter draws anywhere in [0, nominal], so a
 * receiver that just failed could be hit again almost at once, and the schedule shown to users would mean little. ±20 %
 * is enough to spread the deliveries that failed together (a receiver outage fails all of them in the same minute)
 * over a window that widens with the wait. Near the cap the range is clipped at the hour, not the draw: the waits stay
 * spread over [80 %, 100 %] of the hour instead of piling up on exactly one hour.
 *
 * A `Retry-After` (delta-seconds or an HTTP-date) is a floor: the wait is at least that, still within the hour.
 */
export function nextAttemptDelayMs(input: BackoffInput): number {
  const { attempt, baseS } = input;
  if (!Number.isInteger(attempt) || attempt < 1) throw new RangeError(`attempt must be an integer ≥ 1, got ${attempt}`);
  if (!Number.isFinite(baseS) || baseS < 0) throw new RangeError(`baseS must be a finite number ≥ 0, got ${baseS}`);
  const random = input.random ?? Math.random;
  // 2^(attempt - 1) is bounded before the multiplication: 0 s * Infinity would be NaN.
  const nominalMs = Math.min(baseS * 1000 * 2 ** Math.min(attempt - 1, 64), MAX_DELAY_MS);
  const low = nominalMs * (1 - JITTER);
  const high = Math.min(nominalMs * (1 + JITTER), MAX_DELAY_MS);
  const jittered = low + clampUnit(random()) * (high - low);
  const floorMs = retryAfterMs(input.retryAfter, input.nowMs ?? Date.now()) ?? 0;
  return Math.round(Math.min(Math.max(jittered, floorMs), MAX_DELAY_MS));
}

/** A misbehaving `random` must not push a wait outside its range. */
function clampUnit(value: number): number {
  return Number.isFinite(value) ? Math.min(Math.max(value, 0), 1) : 0;
}

const DELTA_SECONDS = /^-?\d+$/;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH = `(${MONTHS.join('|')})`;
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
// The three forms RFC 9110 (section 5.6.7) obliges a recipient to accept. Date.parse is not used: V8 also reads
// garbage ("1", "soon 5") as some date, which would turn a broken header into an arbitrary wait.
/** IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`. */
const IMF_FIXDATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`);
/** Obsolete RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`. */
const RFC_850 = new RegExp(`^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`);
/** Obsolete asctime: `Sun Nov  6 08:49:37 1994` (a single-digit day is padded with a space). */
const ASCTIME = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`);

/**
 * The wait a `Retry-After` value asks for, in ms (0 for a negative delay or a past date), or undefined when there is
 * none or it cannot be read. Anything large is left to the caller's cap.
 */
export function retryAfterMs(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (DELTA_SECONDS.test(text)) return Math.max(0, Number(text) * 1000);
  const dateMs = httpDateMs(text, nowMs);
  return dateMs === undefined ? undefined : Math.max(0, dateMs - nowMs);
}

function httpDateMs(text: string, nowMs: number): number | undefined {
  let match = IMF_FIXDATE.exec(text);
  if (match) return utc(match[3]!, match[2]!, match[1]!, match[4]!, match[5]!, match[6]!);
  match = RFC_850.exec(text);
  if (match) {
    // A two-digit year more than 50 years in the future is in the past century (RFC 9110, section 5.6.7).
    const twoDigits = Number(match[3]);
    const currentYear = new Date(nowMs).getUTCFullYear();
    let year = Math.floor(currentYear / 100) * 100 + twoDigits;
    if (year > currentYear + 50) year -= 100;
    return utc(String(year), match[2]!, match[1]!, match[4]!, match[5]!, match[6]!);
  }
  match = ASCTIME.exec(text);
  if (match) return utc(match[6]!, match[1]!, match[2]!.trim(), match[3]!, match[4]!, match[5]!);
  return undefined;
}

/** The instant of a calendar date, or undefined for one that does not exist (31 Feb, 25:00). */
function utc(year: string, month: string, day: string, hours: string, minutes: string, seconds: string): number | undefined {
  const [y, mo, d, h, mi, s] = [Number(year), MONTHS.indexOf(month), Number(day), Number(hours), Number(minutes), Number(seconds)];
  // Seconds up to 60: a leap second is a valid HTTP-date and lands on the next minute, which is close enough.
  if (h > 23 || mi > 59 || s > 60) return undefined;
  // Date.UTC rolls 31 Feb over into March: such a date is garbage, not 3 March.
  if (d < 1 || new Date(Date.UTC(y, mo, d)).getUTCDate() !== d) return undefined;
  return Date.UTC(y, mo, d, h, mi, s);
}

export interface AttemptOutcome {
  status?: number | undefined;
  error?: string | undefined;
}

/**
 * Whether a failed attempt is worth another one. No status (a network error, a timeout, a refused address), a 5xx or
 * a 429 (the receiver is down or overloaded, which passes): yes. A 2xx is a success, nothing to retry. Anything else,
 * 3xx included (redirects are not followed, so a redirect is a failure) and 4xx: the receiver rejects this delivery
 * as it is, and the same bytes would be rejected again.
 */
export function shouldRetry(outcome: AttemptOutcome): boolean {
  const { status } = outcome;
  if (status === undefined) return true;
  return status === 429 || (status >= 500 && status <= 599);
}
