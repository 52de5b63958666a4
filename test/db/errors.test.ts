import { describe, expect, it } from 'vitest';
import { isConnectionFailure, isDatabaseUnavailable, isUniqueViolation } from '../../src/db/errors.js';

/** An error with a driver's `code`, wrapped the way Drizzle wraps a failed query (DrizzleQueryError.cause). */
function wrapped(code: string): Error {
  const driverError = Object.assign(new Error(`driver error ${code}`), { code });
  return new Error('Failed query: select 1', { cause: driverError });
}

describe('database error classification', () => {
  it('takes socket errors and SQLSTATE class 08 for an outage, looking through the cause chain', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOTCONN', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', '08006', '08003', '08001', '57P01', '57P03']) {
      expect(isConnectionFailure(wrapped(code)), code).toBe(true);
      expect(isDatabaseUnavailable(wrapped(code)), code).toBe(true);
    }
  });

  it('does not take a query’s own failure for an outage', () => {
    for (const code of ['23505', '22P02', '42P01', '40P01']) {
      expect(isConnectionFailure(wrapped(code)), code).toBe(false);
      expect(isDatabaseUnavailable(wrapped(code)), code).toBe(false);
    }
    expect(isUniqueViolation(wrapped('23505'))).toBe(true);
  });
});
