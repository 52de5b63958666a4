import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

/**
 * The signing key earlier versions used when JWT_SECRET was unset: public (it is in this file and was in
 * .env.example), so refused everywhere outside NODE_ENV=test.
 */
export const PUBLIC_DEVELOPMENT_JWT_SECRET = 'usine-development-secret-do-not-use-in-production';
/** The fixed key of NODE_ENV=test without JWT_SECRET, so that tests can sign tokens of their own. */
export const TEST_JWT_SECRET = 'usine-test-secret-for-node-env-test-only';
export const DEFAULT_ADMIN_PASSWORD = 'admin123';

const LogLevel = Type.Union(
  ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)),
);

/** Every environment variable Usine reads, with its default. `.env.example` mirrors this list. */
export const EnvSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], {
    default: 'development',
  }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 5000 }),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  DATABASE_URL: Type.Optional(Type.String({ minLength: 1 })),
  DB_URL: Type.Optional(Type.String({ minLength: 1, description: "The seed's name for DATABASE_URL" })),
  /**
   * HS256 key of access tokens; required (32+ bytes) in production. Unset elsewhere: generated at random, once per
   * SQLite database (kept in `<database>.jwt-secret`, mode 0600) or per process on PostgreSQL and :memory:
   * (src/auth/jwt-secret.ts); NODE_ENV=test uses TEST_JWT_SECRET.
   */
  JWT_SECRET: Type.Optional(Type.String({ minLength: 1 })),
  JWT_ISSUER: Type.String({ minLength: 1, default: 'usine' }),
  JWT_AUDIENCE: Type.String({ minLength: 1, default: 'usine-api' }),
  ACCESS_TOKEN_TTL: Type.Integer({ minimum: 30, maximum: 86_400, default: 1800 }),
  REFRESH_TOKEN_TTL: Type.Integer({ minimum: 60, maximum: 90 * 86_400, default: 7 * 86_400 }),
  /**
   * Seconds between two background purges of refresh tokens that expired (plugins/app/refresh-token-purge.ts); each
   * purge deletes at most REFRESH_TOKEN_PURGE_BATCH rows per statement and ten statements. 0 turns the purge off.
   */
  REFRESH_TOKEN_PURGE_INTERVAL_S: Type.Integer({ minimum: 0, maximum: 86_400, default: 600 }),
  /** Rows one purge statement deletes at most, so that a large backlog never holds a long write. */
  REFRESH_TOKEN_PURGE_BATCH: Type.Integer({ minimum: 1, maximum: 100_000, default: 1000 }),
  ADMIN_USERNAME: Type.String({ minLength: 1, maxLength: 64, default: 'admin' }),
  ADMIN_PASSWORD: Type.String({ minLength: 1, default: DEFAULT_ADMIN_PASSWORD }),
  BUILD_FAIL_RATE: Type.Number({ minimum: 0, maximum: 1, default: 0.5 }),
  /** Build workers in this process, one job each at a time; 0 runs none (an API-only replica: jobs wait for another process). */
  BUILD_CONCURRENCY: Type.Integer({ minimum: 0, maximum: 64, default: 4 }),
  /** Wall time per simulated second: 1 = real time, 0.1 = ten times faster, 0 = instant (the seed's behaviour). */
  BUILD_TIME_SCALE: Type.Number({ minimum: 0, maximum: 100, default: 1 }),
  /** Any text: runs become reproducible (the same project, build number, job name and attempt draw the same duration and outcome). */
  BUILD_SEED: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  /** Seconds a worker's claim on a running job lasts without renewal; past it another process takes the job over. */
  BUILD_LEASE_S: Type.Number({ minimum: 1, maximum: 3600, default: 30 }),
  /** Claims of one job (first run plus take-overs after lost leases) before it is failed instead. */
  BUILD_MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 20, default: 3 }),
  /** Queued builds one project may have; a trigger beyond answers 429. */
  BUILD_QUEUE_LIMIT: Type.Integer({ minimum: 1, maximum: 100_000, default: 100 }),
  /** On shutdown, seconds running jobs get to finish before they are handed back to the queue. */
  BUILD_DRAIN_S: Type.Number({ minimum: 0, maximum: 8, default: 5 }),
  /** How long an Idempotency-Key on a trigger is remembered, in seconds (24 h). */
  IDEMPOTENCY_TTL_S: Type.Integer({ minimum: 1, maximum: 7 * 86_400, default: 86_400 }),
  /** Seconds between keep-alive comments on a live log stream. */
  SSE_KEEPALIVE_S: Type.Number({ minimum: 0.05, maximum: 300, default: 15 }),
  /** Live log streams one user may hold open in this process; one more answers 429 (each replica counts its own). */
  SSE_MAX_STREAMS_PER_USER: Type.Integer({ minimum: 1, maximum: 100_000, default: 50 }),
  /**
   * Live log streams this process holds open for all users together (each one a socket and a subscription); one
   * more answers 429. Per replica: N replicas serve up to N times as many.
   */
  SSE_MAX_STREAMS: Type.Integer({ minimum: 1, maximum: 100_000, default: 1000 }),
  /**
   * Days the event log (`GET /events`) keeps an event, and webhooks their finished deliveries; older ones are purged
   * in the background, in bounded batches.
   */
  EVENTS_RETENTION_DAYS: Type.Number({ minimum: 0.001, maximum: 3650, default: 7 }),
  /** Seconds between two purges of events older than EVENTS_RETENTION_DAYS; 0 turns the purge off. */
  EVENTS_PURGE_INTERVAL_S: Type.Integer({ minimum: 0, maximum: 86_400, default: 600 }),
  /** Webhook deliveries this process sends at once (its delivery workers); 0: this process sends none. */
  WEBHOOK_CONCURRENCY: Type.Integer({ minimum: 0, maximum: 100, default: 4 }),
  /** Seconds a webhook receiver has to answer a delivery, connection included. */
  WEBHOOK_TIMEOUT_S: Type.Number({ minimum: 0.1, maximum: 60, default: 10 }),
  /** First wait before a failed delivery is tried again, in seconds; each retry waits twice as long (with jitter). */
  WEBHOOK_RETRY_BASE_S: Type.Number({ minimum: 0.01, maximum: 3600, default: 10 }),
  /**
   * Lets webhooks reach loopback, private, link-local and other internal addresses: development and tests only. Off,
   * a hook whose host is or resolves to one is refused (400), and checked again on the address actually connected to.
   */
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: Type.Boolean({ default: false }),
  /** Seconds postgres.js waits for a new connection to the database before giving up (PostgreSQL only). */
  DATABASE_CONNECT_TIMEOUT_S: Type.Number({ minimum: 0.5, maximum: 60, default: 5 }),
  /**
   * Connections this process may open to PostgreSQL (PostgreSQL only). Replicas add up: keep their sum near what the
   * database's cores serve well, rather than each replica keeping ten.
   */
  DATABASE_POOL_MAX: Type.Integer({ minimum: 2, maximum: 100, default: 10 }),
  /**
   * How often, in ms, the database is pinged in the background. While a ping fails (or a query fails for want of a
   * connection) the database counts as unavailable: requests that need it answer 503 at once instead of waiting.
   */
  DATABASE_PING_INTERVAL_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 1000 }),
  /** A ping not answered within this many ms counts as failed. */
  DATABASE_PING_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 2000 }),
  /**
   * A request to a route that needs the database, still unanswered after this many seconds, gets a 503 (and the
   * database a ping at once): a query stuck on a connection that no longer leads anywhere (a network partition) does
   * not hold its client. 0 = no bound. Streams (live logs) count only until their headers are sent; the time a request
   * body takes to arrive does not count (a slow body is the client's: HTTP_REQUEST_TIMEOUT_S answers it with a 408).
   */
  DATABASE_REQUEST_TIMEOUT_S: Type.Number({ minimum: 0, maximum: 300, default: 10 }),
  LOG_LEVEL: Type.Union(LogLevel.anyOf, { default: 'info' }),
  BODY_LIMIT: Type.Integer({ minimum: 1024, maximum: 10 * 1024 * 1024, default: 1024 * 1024 }),
  /** Seconds a connection may stay idle (no byte in or out) before it is closed. */
  HTTP_CONNECTION_TIMEOUT_S: Type.Number({ minimum: 1, maximum: 3600, default: 60 }),
  /** Seconds a client has to send a request's headers (slow-loris defence); at most HTTP_REQUEST_TIMEOUT_S. */
  HTTP_HEADERS_TIMEOUT_S: Type.Number({ minimum: 1, maximum: 3600, default: 10 }),
  /** Seconds a client has to send a whole request, body included. */
  HTTP_REQUEST_TIMEOUT_S: Type.Number({ minimum: 1, maximum: 3600, default: 30 }),
  /**
   * Seconds an idle keep-alive connection is kept open between requests; longer than the idle timeout of the load
   * balancer in front (often 60 s), so that the balancer, not Usine, closes it.
   */
  HTTP_KEEP_ALIVE_TIMEOUT_S: Type.Number({ minimum: 1, maximum: 3600, default: 72 }),
  /**
   * Comma-separated origins allowed by CORS (`https://app.example.com,http://localhost:3000`), or `*` for any
   * origin without credentials; empty means no cross-origin access (no CORS headers at all).
   */
  CORS_ORIGINS: Type.String({
    default: '',
    pattern: '^\\s*(?:\\*|https?://[^/,\\s]+(?:\\s*,\\s*https?://[^/,\\s]+)*)?\\s*$',
  }),
  /**
   * Which proxies to believe about the client address (X-Forwarded-For), so rate limits apply per real client:
   * empty or `false` (direct connections), `true` (any), a hop count (`1`), or addresses/CIDRs (`10.0.0.0/8,127.0.0.1`).
   */
  TRUST_PROXY: Type.String({ default: '', pattern: '^(?:|true|false|\\d{1,2}|[\\w.:/]+(?:\\s*,\\s*[\\w.:/]+)*)$' }),
  RATE_LIMIT_MAX: Type.Integer({ minimum: 1, default: 300 }),
  RATE_LIMIT_WINDOW_S: Type.Integer({ minimum: 1, maximum: 86_400, default: 60 }),
  /** `POST /login` attempts per client IP per RATE_LIMIT_LOGIN_WINDOW_S (429 beyond). */
  RATE_LIMIT_LOGIN_IP_MAX: Type.Integer({ minimum: 1, default: 20 }),
  /**
   * `POST /login` attempts on one username from one client IP per window (429 beyond); also the attempts on a
   * username from all IPs together after which each further one is delayed (never refused: plugins/app/login-throttle.ts).
   */
  RATE_LIMIT_LOGIN_USER_MAX: Type.Integer({ minimum: 1, default: 10 }),
  RATE_LIMIT_LOGIN_WINDOW_S: Type.Integer({ minimum: 1, maximum: 86_400, default: 300 }),
  /** Longest delay, in ms, of a login attempt on a username tried too often from everywhere; 0 = no delay. */
  RATE_LIMIT_LOGIN_DELAY_MAX_MS: Type.Integer({ minimum: 0, maximum: 30_000, default: 5000 }),
  /** When set (redis://host:port), rate-limit counters live in Redis and are shared by every replica. */
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  /** Prefix of every rate-limit key in Redis, so several deployments (or test runs) can share one Redis. */
  RATE_LIMIT_NAMESPACE: Type.String({ minLength: 1, maxLength: 100, default: 'usine:rate-limit:' }),
  /** Serve `GET /metrics` (Prometheus text); `false` leaves the route out entirely. */
  METRICS_ENABLED: Type.Boolean({ default: true }),
  /**
   * When set, `GET /metrics` answers only requests with `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise) and
   * also serves the series that reveal the Node version; unset, the scrape is open and leaves them out. At least 16
   * characters (`openssl rand -hex 32`).
   */
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16, maxLength: 1024 })),
  /** Load shedding (@fastify/under-pressure): 503 while the mean event loop delay exceeds this many ms; 0 = off. */
  UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ minimum: 0, default: 1000 }),
  /** 503 while the V8 heap in use exceeds this many MiB; 0 (the default) = off. */
  UNDER_PRESSURE_MAX_HEAP_USED_MB: Type.Integer({ minimum: 0, default: 0 }),
  /** 503 while the resident set size exceeds this many MiB; 0 (the default) = off. */
  UNDER_PRESSURE_MAX_RSS_MB: Type.Integer({ minimum: 0, default: 0 }),
  /** How often the figures above are sampled, in ms. */
  UNDER_PRESSURE_SAMPLE_INTERVAL_MS: Type.Integer({ minimum: 10, maximum: 60_000, default: 1000 }),
  /** `Retry-After` (seconds) sent with a shed request's 503. */
  UNDER_PRESSURE_RETRY_AFTER_S: Type.Integer({ minimum: 1, maximum: 3600, default: 5 }),
  /**
   * How long authentication may reuse "this user exists, with this role, in this live session" without asking the
   * database, in ms; 0 asks on every request. Changes made through this process end a reused answer at once; other
   * processes' changes reach it within 50 ms on SQLite, by notification on PostgreSQL (milliseconds): this bounds the
   * time only if that notification is lost.
   */
  AUTH_CACHE_TTL_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 2000 }),
  /**
   * Nice value (1–19) given to libuv's thread pool, where argon2 hashes passwords, so that a login flood cannot take
   * the cores other requests need (Linux; see src/threadpool-priority.ts); 0 leaves the pool's priority alone.
   */
  THREAD_POOL_NICE: Type.Integer({ minimum: 0, maximum: 19, default: 10 }),
  /**
   * On SIGTERM, ms to keep serving while `/health/ready` already answers 503, before the listener closes, so load
   * balancers stop routing here first. The whole shutdown must fit in 10 s.
   */
  SHUTDOWN_DELAY_MS: Type.Integer({ minimum: 0, maximum: 8000, default: 0 }),
});

type Env = Static<typeof EnvSchema>;

export type DatabaseConfig = { dialect: 'sqlite'; path: string } | { dialect: 'pg'; url: string };

export interface Config extends Omit<Env, 'DATABASE_URL' | 'DB_URL'> {
  database: DatabaseConfig;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export const DEFAULT_DATABASE_URL = 'sqlite:./data/usine.db';

/**
 * Accepts `sqlite:<path>`, `sqlite://<path>`, `sqlite:///<path>` (the seed's SQLAlchemy form),
 * `:memory:`, and `postgres://` / `postgresql://` / `postgresql+psycopg2://` URLs.
 */
export function parseDatabaseUrl(url: string): DatabaseConfig {
  if (url === ':memory:' || url === 'sqlite::memory:') return { dialect: 'sqlite', path: ':memory:' };
  const sqlite = /^sqlite:(?:\/\/\/?)?(.+)$/.exec(url);
  if (sqlite?.[1]) return { dialect: 'sqlite', path: sqlite[1] };
  const pg = /^postgres(?:ql)?(?:\+\w+)?:\/\/(.+)$/.exec(url);
  if (pg?.[1]) return { dialect: 'pg', url: `postgres://${pg[1]}` };
  // Only the scheme is echoed: the rest may hold a password.
  const scheme = /^[\w+.-]*:/.exec(url)?.[0] ?? '(no scheme)';
  throw new ConfigError(
    `DATABASE_URL (or DB_URL): a "${scheme}" URL is neither sqlite:<path> nor postgres://user@host:port/db`,
  );
}

function describeErrors(env: unknown): string {
  return [...Value.Errors(EnvSchema, env)]
    .map((error) => `${error.path.slice(1) || '(root)'}: ${error.message}`)
    .join('; ');
}

const INTEGER_TEXT = /^[+-]?\d+$/;
const NUMBER_TEXT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$/i;

/**
 * Value.Convert is lenient with numeric text (`PORT=50.5` → 50, `PORT=5e3` → 5, `0x10` → 16): a numeric
 * variable that is not plain decimal text is put back as the raw string, so the schema check names it.
 */
function refuseLenientNumbers(env: Record<string, unknown>, raw: Record<string, unknown>): void {
  for (const [key, schema] of Object.entries(EnvSchema.properties)) {
    const type = (schema as { type?: unknown }).type;
    const pattern = type === 'integer' ? INTEGER_TEXT : type === 'number' ? NUMBER_TEXT : undefined;
    const text = raw[key];
    if (pattern && typeof text === 'string' && text !== '' && !pattern.test(text.trim())) env[key] = text;
  }
}

/** Reads and validates the environment once; throws a ConfigError naming every bad variable. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const known = Object.fromEntries(
    Object.keys(EnvSchema.properties)
      .filter((key) => source[key] !== undefined && source[key] !== '')
      .map((key) => [key, source[key]]),
  );
  const env = Value.Convert(EnvSchema, Value.Default(EnvSchema, known));
  refuseLenientNumbers(env as Record<string, unknown>, source);
  if (!Value.Check(EnvSchema, env)) {
    throw new ConfigError(`Invalid environment: ${describeErrors(env)}`);
  }
  const { DATABASE_URL, DB_URL, ...rest } = env;
  const config: Config = { ...rest, database: parseDatabaseUrl(DATABASE_URL ?? DB_URL ?? DEFAULT_DATABASE_URL) };
  if (config.JWT_SECRET === undefined && config.NODE_ENV === 'test') config.JWT_SECRET = TEST_JWT_SECRET;
  assertJwtSecretNotPublic(config);
  assertShutdownFits(config);
  assertTimeoutsConsistent(config);
  assertProductionSafe(config);
  return config;
}

/** The not-ready delay and the build drain both happen inside main.ts's 10 s shutdown, with a second to close. */
function assertShutdownFits(config: Config): void {
  if (config.SHUTDOWN_DELAY_MS + config.BUILD_DRAIN_S * 1000 > 9000) {
    throw new ConfigError(
      `SHUTDOWN_DELAY_MS (${config.SHUTDOWN_DELAY_MS} ms) + BUILD_DRAIN_S (${config.BUILD_DRAIN_S} s) must not exceed 9 s: shutdown is bounded to 10 s`,
    );
  }
}

/** Timeouts that would defeat each other: headers after the whole request, a live log stream cut while idle. */
function assertTimeoutsConsistent(config: Config): void {
  const problems: string[] = [];
  if (config.HTTP_HEADERS_TIMEOUT_S > config.HTTP_REQUEST_TIMEOUT_S) {
    problems.push(`HTTP_HEADERS_TIMEOUT_S (${config.HTTP_HEADERS_TIMEOUT_S} s) must not exceed HTTP_REQUEST_TIMEOUT_S (${config.HTTP_REQUEST_TIMEOUT_S} s)`);
  }
  if (config.SSE_KEEPALIVE_S >= config.HTTP_CONNECTION_TIMEOUT_S) {
    problems.push(
      `SSE_KEEPALIVE_S (${config.SSE_KEEPALIVE_S} s) must be shorter than HTTP_CONNECTION_TIMEOUT_S (${config.HTTP_CONNECTION_TIMEOUT_S} s), or idle log streams are cut`,
    );
  }
  if (problems.length > 0) throw new ConfigError(`Inconsistent timeouts: ${problems.join('; ')}`);
}

/** The old public development key (still in many copies of .env.example) signs nothing outside tests. */
function assertJwtSecretNotPublic(config: Config): void {
  if (config.NODE_ENV === 'test' || config.JWT_SECRET !== PUBLIC_DEVELOPMENT_JWT_SECRET) return;
  throw new ConfigError(
    'JWT_SECRET: the public development value is refused (anyone can sign tokens with it); remove the line to have a ' +
      'secret generated for this database, or set your own (e.g. `openssl rand -hex 32`)',
  );
}

function assertProductionSafe(config: Config): void {
  if (config.NODE_ENV !== 'production') return;
  const problems: string[] = [];
  if (config.JWT_SECRET === undefined || Buffer.byteLength(config.JWT_SECRET) < 32) {
    problems.push('JWT_SECRET: must be set to a secret of at least 32 bytes in production');
  }
  if (config.ADMIN_PASSWORD === DEFAULT_ADMIN_PASSWORD) {
    problems.push('ADMIN_PASSWORD: the default admin password is refused in production');
  }
  if (problems.length > 0) throw new ConfigError(`Unsafe production configuration: ${problems.join('; ')}`);
}
