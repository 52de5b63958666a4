import { describe, expect, it } from 'vitest';
import { MAX_DELAY_MS, RETRY_WINDOW_MS, nextAttemptDelayMs, retryAfterMs, shouldRetry } from '../../src/webhooks/backoff.js';

const HOUR_MS = 3600 * 1000;
// Random draws at the bottom, middle and top of [0, 1).
const low = () => 0;
const middle = () => 0.5;
const high = () => 0.999_999_999;
const NOW_MS = Date.UTC(2024, 0, 15, 12, 0, 0);

describe('nextAttemptDelayMs', () => {
  it('doubles with every attempt from baseS (draws in the middle of the jitter range)', () => {
    const delays = [1, 2, 3, 4, 5].map((attempt) => nextAttemptDelayMs({ attempt, baseS: 30, random: middle }));
    expect(delays).toEqual([30_000, 60_000, 120_000, 240_000, 480_000]);
  });

  it('strays at most 20 % either way, and spans that whole range', () => {
    for (const attempt of [1, 3, 6]) {
      const nominal = 10_000 * 2 ** (attempt - 1);
      expect(nextAttemptDelayMs({ attempt, baseS: 10, random: low })).toBe(nominal * 0.8);
      expect(nextAttemptDelayMs({ attempt, baseS: 10, random: high })).toBe(nominal * 1.2);
      for (let draw = 0; draw < 200; draw++) {
        const delay = nextAttemptDelayMs({ attempt, baseS: 10 });
        expect(delay).toBeGreaterThanOrEqual(nominal * 0.8);
        expect(delay).toBeLessThanOrEqual(nominal * 1.2);
      }
    }
  });

  it('spreads deliveries that failed together', () => {
    const delays = new Set(Array.from({ length: 100 }, () => nextAttemptDelayMs({ attempt: 4, baseS: 60 })));
    expect(delays.size).toBeGreaterThan(50);
  });

  it('never waits more than an hour, yet stays spread below the cap instead of piling up on it', () => {
    expect(MAX_DELAY_MS).toBe(HOUR_MS);
    for (const attempt of [8, 12, 30, 200, 5000]) {
      expect(nextAttemptDelayMs({ attempt, baseS: 60, random: high })).toBe(HOUR_MS);
      expect(nextAttemptDelayMs({ attempt, baseS: 60, random: low })).toBe(HOUR_MS * 0.8);
      expect(nextAttemptDelayMs({ attempt, baseS: 60, random: middle })).toBe(HOUR_MS * 0.9);
    }
    // Just below the cap, the upper part of the jitter range is clipped at the hour.
    expect(nextAttemptDelayMs({ attempt: 1, baseS: 3400, random: high })).toBe(HOUR_MS);
    expect(nextAttemptDelayMs({ attempt: 1, baseS: 3400, random: low })).toBe(3400_000 * 0.8);
  });

  it('waits at least a Retry-After in delta-seconds, and still at most an hour', () => {
    expect(nextAttemptDelayMs({ attempt: 1, baseS: 10, retryAfter: '120', random: high })).toBe(120_000);
    // A Retry-After shorter than the backoff changes nothing.
    expect(nextAttemptDelayMs({ attempt: 5, baseS: 10, retryAfter: '1', random: middle })).toBe(160_000);
    expect(nextAttemptDelayMs({ attempt: 1, baseS: 10, retryAfter: ' 300 ', random: low })).toBe(300_000);
    expect(nextAttemptDelayMs({ attempt: 1, baseS: 10, retryAfter: '86400', random: low })).toBe(HOUR_MS);
    expect(nextAttemptDelayMs({ attempt: 1, baseS: 10, retryAfter: '99999999999999999999999', random: low })).toBe(HOUR_MS);
  });

  it('waits at least until a Retry-After HTTP-date, in any of the three formats', () => {
    const inTenMinutes = 'Mon, 15 Jan 2024 12:10:00 GMT';
    expect(nextAttemptDelayMs({ attempt: 1, baseS: 10, retryAfter: inTenMinutes, random: low, nowMs: NOW_MS })).toBe(600_000);
    expect(retryAfterMs('Monday, 15-Jan-24 12:10:00 GMT', NOW_MS)).toBe(600_000);
    expect(retryAfterMs('Mon Jan 15 12:10:00 2024', NOW_MS)).toBe(600_000);
    expect(retryAfterMs('Mon Jan  1 00:00:30 2024', Date.UTC(2024, 0, 1))).toBe(30_000);
    const tomorrow = 'Tue, 16 Jan 2024 12:00:00 GMT';
    expect(nextAttemptDelayMs({ attempt: 1, baseS: 10, retryAfter: tomorrow, random: low, nowMs: NOW_MS })).toBe(HOUR_MS);
  });

  it('counts a negative delay or a past date as no wait at all', () => {
    expect(retryAfterMs('-30', NOW_MS)).toBe(0);
    expect(retryAfterMs('Mon, 15 Jan 2024 11:00:00 GMT', NOW_MS)).toBe(0);
    expect(nextAttemptDelayMs({ attempt: 2, baseS: 10, retryAfter: '-30', random: low, nowMs: NOW_MS })).toBe(16_000);
    const past = 'Sun, 06 Nov 1994 08:49:37 GMT';
    expect(nextAttemptDelayMs({ attempt: 2, baseS: 10, retryAfter: past, random: low, nowMs: NOW_MS })).toBe(16_000);
  });

  it('ignores a garbage Retry-After, even what Date.parse would read as some date', () => {
    for (const garbage of ['', 'soon', '1.5', '5 minutes', '0x10', '1e3', 'Mon, 15 Jan 2024', '2024-01-15T12:10:00Z',
      'Mon, 31 Feb 2024 12:00:00 GMT', 'Mon, 15 Jan 2024 25:00:00 GMT', 'Mon, 15 Foo 2024 12:10:00 GMT', 'soon 5']) {
      expect(retryAfterMs(garbage, NOW_MS), garbage).toBeUndefined();
      expect(nextAttemptDelayMs({ attempt: 1, baseS: 10, retryAfter: garbage, random: low, nowMs: NOW_MS }), garbage).toBe(8_000);
    }
    expect(retryAfterMs(undefined, NOW_MS)).toBeUndefined();
  });

  it('keeps a broken random source within range and refuses a nonsensical attempt', () => {
    expect(nextAttemptDelayMs({ attempt: 1, baseS: 10, random: () => 7 })).toBe(12_000);
    expect(nextAttemptDelayMs({ attempt: 1, baseS: 10, random: () => Number.NaN })).toBe(8_000);
    expect(nextAttemptDelayMs({ attempt: 3, baseS: 0, random: middle })).toBe(0);
    expect(() => nextAttemptDelayMs({ attempt: 0, baseS: 10 })).toThrow(RangeError);
    expect(() => nextAttemptDelayMs({ attempt: 1.5, baseS: 10 })).toThrow(RangeError);
    expect(() => nextAttemptDelayMs({ attempt: 1, baseS: -1 })).toThrow(RangeError);
  });
});

describe('shouldRetry', () => {
  it('retries what another try can cure: no answer, a 5xx, a 429', () => {
    expect(shouldRetry({ error: 'connect ECONNREFUSED 127.0.0.1:9' })).toBe(true);
    expect(shouldRetry({ error: 'timed out after 10 s' })).toBe(true);
    expect(shouldRetry({})).toBe(true);
    for (const status of [429, 500, 502, 503, 504, 599]) expect(shouldRetry({ status }), String(status)).toBe(true);
  });

  it('does not retry a success, a redirect (never followed) or another client error', () => {
    for (const status of [200, 201, 202, 204, 299]) expect(shouldRetry({ status }), String(status)).toBe(false);
    for (const status of [301, 302, 307, 308, 400, 401, 403, 404, 410, 413, 422]) {
      expect(shouldRetry({ status }), String(status)).toBe(false);
    }
  });

  it('decides on the status when the receiver answered, even if the body then broke off', () => {
    expect(shouldRetry({ status: 200, error: 'timed out after 10 s' })).toBe(false);
    expect(shouldRetry({ status: 503, error: 'response body: aborted' })).toBe(true);
  });
});

describe('RETRY_WINDOW_MS', () => {
  it('is a day', () => {
    expect(RETRY_WINDOW_MS).toBe(86_400_000);
  });
});
