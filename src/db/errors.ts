/**
 * Both drivers report constraint violations differently, and Drizzle wraps them (DrizzleQueryError.cause):
 * these helpers look through the whole cause chain.
 */
function causes(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let current = error; current instanceof Error && chain.length < 5; current = current.cause) chain.push(current);
  return chain;
}

function hasCode(error: unknown, codes: readonly string[]): boolean {
  return causes(error).some((e) => {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' && codes.includes(code);
  });
}

export const isUniqueViolation = (error: unknown) => hasCode(error, ['23505', 'SQLITE_CONSTRAINT_UNIQUE']);

export const isForeignKeyViolation = (error: unknown) => hasCode(error, ['23503', 'SQLITE_CONSTRAINT_FOREIGNKEY']);

/** better-sqlite3 has no error code for a closed handle (e.g. a request racing the shutdown). */
const isClosedSqliteHandle = (error: unknown) =>
  causes(error).some((e) => e instanceof TypeError && e.message === 'The database connection is not open');

/** PostgreSQL could not be reached, or dropped the connection: the sign of an outage, not of a busy database. */
const CONNECTION_FAILURES = [
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE', // written to a socket the server had just closed
  'ENOTCONN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN', // the database's host name could not be resolved for now
  'ETIMEDOUT',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  // SQLSTATE class 08, connection exception: the connection, not the query, failed.
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
];

export const isConnectionFailure = (error: unknown) => hasCode(error, CONNECTION_FAILURES);

/** Connection-level failures: the database is down, unreachable, closing or busy, not the request's fault. */
export const isDatabaseUnavailable = (error: unknown) =>
  isClosedSqliteHandle(error) ||
  hasCode(error, [...CONNECTION_FAILURES, 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'SQLITE_BUSY']);

/**
 * PostgreSQL broke a cycle of transactions waiting on one another's locks by failing this one (40P01): nothing it did
 * was kept, and running it again is safe (src/db/deadlocks.ts).
 */
export const isDeadlock = (error: unknown) => hasCode(error, ['40P01']);

export const isNotNullViolation = (error: unknown) => hasCode(error, ['23502', 'SQLITE_CONSTRAINT_NOTNULL']);

/** PostgreSQL refused a character its text type cannot hold (NUL, or bytes invalid in the database encoding). */
export const isUnstorableText = (error: unknown) => hasCode(error, ['22021', '22P05']);
