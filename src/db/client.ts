import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { sql, type AnyColumn, type SQL } from 'drizzle-orm';
import { drizzle as drizzleSqlite } from 'drizzle-orm/better-sqlite3';
import { drizzle as drizzlePg, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import type { DatabaseConfig } from '../config.js';
import * as pgSchema from './schema/pg.js';
import * as sqliteSchema from './schema/sqlite.js';
import { retryingDeadlocks } from './deadlocks.js';
import { allSync, driveAsync, driveSync, type TransactionScript } from './transaction.js';

/**
 * Repositories are written once, typed against the PostgreSQL flavour of Drizzle. Both schemas have the
 * same tables, columns and JS value types, and every query is awaited (better-sqlite3's query builders are
 * thenable), so the SQLite database and its tables are cast to that type here, and only here.
 */
export type AppDb = PostgresJsDatabase<typeof pgSchema>;
export type Tables = typeof pgSchema;

export interface Database {
  readonly dialect: DatabaseConfig['dialect'];
  readonly db: AppDb;
  readonly tables: Tables;
  /**
   * The database's clock as SQL, for timestamps that several processes compare (leases, started_at, finished_at):
   * `clock_timestamp()` on PostgreSQL (the moment the statement runs, not its transaction's start, so that a claim
   * never predates the insert it sees), milliseconds since the epoch on SQLite. `nowPlus(ms)` adds a duration.
   */
  now(): SQL;
  nowPlus(ms: number): SQL;
  /**
   * A value in lower case, as SQL, for case-insensitive matching beyond ASCII (`École` like `école`): PostgreSQL's
   * lower(), and on SQLite (whose lower() folds only ASCII) the connection's usine_lower(), which folds the same way
   * (see unicodeLower). Use it on both sides of a comparison.
   */
  lower(value: SQL | AnyColumn): SQL;
  /** PostgreSQL LISTEN/NOTIFY, for events between processes; absent on SQLite (one process owns the file's events). */
  readonly notifications?: Notifications;
  /**
   * Runs a transaction script (./transaction.ts) atomically: all its writes or none. SQLite: `BEGIN IMMEDIATE`, so
   * the script holds the write lock from its first read and no other writer interleaves; PostgreSQL: READ COMMITTED,
   * where a script that must see the latest committed rows locks what it depends on first (`SELECT … FOR UPDATE`).
   */
  transaction<R>(script: TransactionScript<R>): Promise<R>;
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface Notifications {
  /** Listens on a dedicated connection (re-established by the driver after a drop); resolves once listening. */
  listen(channel: string, onPayload: (payload: string) => void): Promise<{ unlisten(): Promise<void> }>;
  notify(channel: string, payload: string): Promise<void>;
}

export interface ConnectionOptions {
  /** Seconds to wait for a new PostgreSQL connection (default 5). */
  connectTimeoutS?: number;
  /** PostgreSQL: the most connections the pool opens. */
  poolMax?: number;
}

export function createDatabase(config: DatabaseConfig, options: ConnectionOptions = {}): Database {
  return config.dialect === 'pg' ? createPostgres(config.url, options) : createSqlite(config.path);
}

/**
 * Lower case as PostgreSQL's lower() gives it under a UTF-8 libc locale (C.UTF-8, en_US.UTF-8: the official image's
 * default): Unicode's simple case mapping, one character for one. JavaScript's toLowerCase() applies the full mapping,
 * which differs in two places: `İ` becomes `i` plus a combining dot, and a capital sigma ending a word becomes `ς`;
 * both are mapped first as the simple mapping does. Full case folding is not done on either database: `ß` stays `ß`,
 * so `STRASSE` does not find `Straße`. (PostgreSQL with the plain `C` locale lowers only ASCII; with ICU, as above
 * but with the full mapping.)
 */
export const unicodeLower = (text: string): string => text.replace(/[İΣ]/g, (char) => (char === 'İ' ? 'i' : 'σ')).toLowerCase();

/** Seconds before the n-th reconnection attempt after a failed one: quick, and never more than a second apart. */
const reconnectBackoff = (attempt: number) => Math.min(0.05 * 2 ** attempt, 1);

function createSqlite(path: string): Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const client = new BetterSqlite3(path);
  client.pragma('journal_mode = WAL');
  client.pragma('synchronous = NORMAL');
  client.pragma('foreign_keys = ON');
  client.pragma('busy_timeout = 5000');
  // Deterministic: SQLite computes it once for a constant argument (the pattern), and only where a query names it: a
  // list without `?q=` runs no JavaScript per row.
  client.function('usine_lower', { deterministic: true }, (value: unknown) => (typeof value === 'string' ? unicodeLower(value) : value));
  const db = drizzleSqlite(client, { schema: sqliteSchema });
  return {
    dialect: 'sqlite',
    db: db as unknown as AppDb,
    tables: sqliteSchema as unknown as Tables,
    now: () => sql`cast(unixepoch('subsec') * 1000 as integer)`,
    nowPlus: (ms) => sql`(cast(unixepoch('subsec') * 1000 as integer) + ${Math.round(ms)})`,
    lower: (value) => sql`usine_lower(${value})`,
    transaction: async (script) => {
      const appDb = db as unknown as AppDb;
      return client.transaction(() => driveSync(script(appDb), allSync)).immediate();
    },
    ping: async () => {
      db.run(sql`select 1`);
    },
    close: async () => {
      client.close();
    },
  };
}

/**
 * The client Drizzle is given: every query it sends is a prepared statement. postgres.js prepares one (a named
 * statement, parsed and planned by PostgreSQL once per connection, then only bound and run) only when asked, and Drizzle
 * asks only for the queries named with `.prepare(name)`: every other one was parsed and planned again at each run
 * (pg_stat_statements during the job engine's drain: the one-statement finish spent 0.29 ms planning for 0.35 ms
 * running, every time). postgres.js keeps a connection's statements by their text; Drizzle's texts are few (the
 * values are parameters).
 */
function preparing<T extends postgres.Sql | postgres.TransactionSql>(client: T): T {
  const unsafe: postgres.Sql['unsafe'] = (query, parameters, queryOptions) => client.unsafe(query, parameters, { ...queryOptions, prepare: true });
  // A transaction's queries go through the connection begin() gives its callback: that one is wrapped too.
  const begin = (...args: unknown[]) => {
    const callback = args.pop() as (sql: postgres.TransactionSql) => unknown;
    return (client as postgres.Sql).begin(...(args as [string]), (sql) => callback(preparing(sql)));
  };
  return new Proxy(client, {
    get: (target, key, receiver) => (key === 'unsafe' ? unsafe : key === 'begin' && 'begin' in target ? begin : Reflect.get(target, key, receiver)),
  });
}

/**
 * Connections for transactions, on top of DATABASE_POOL_MAX's for single statements: half as many, at least one. A
 * transaction holds its connection for a few statements: the build engine's, the event log's sequencer (a few a
 * second) and webhooks' fan-out.
 */
export const transactionPoolMax = (poolMax: number) => Math.max(1, Math.ceil(poolMax / 2));

/** postgres.js reads `max_pipeline` (queries sent ahead on a busy connection, 100 by default), but its types omit it. */
export type PostgresOptions = postgres.Options<Record<string, postgres.PostgresType>> & { max_pipeline?: number };

function createPostgres(url: string, { connectTimeoutS = 5, poolMax = 10 }: ConnectionOptions): Database {
  const options: PostgresOptions = {
    max: poolMax,
    connect_timeout: connectTimeoutS,
    idle_timeout: 60,
    // The driver's default backoff grows to 20 s between attempts, and queries queued meanwhile wait that long.
    backoff: reconnectBackoff,
    // No array column is read, and the array-type lookup that each new connection would run otherwise escapes as an
    // unhandled rejection (which ends the process) when the database drops the connection during it (postgres 3.4.9).
    fetch_types: false,
    // One query at a time per connection; the others wait in the driver's own queue for the next free one. With
    // pipelining on (the default), every query sent to an already busy connection leaves a hole in the driver's
    // queue of busy connections that is never reclaimed while the pool stays in use (postgres 3.4.9, src/queue.js):
    // each later query paid a scan of them, a sequential query costing 55 µs of CPU when fresh and 260 µs after
    // 520,000 queries at twice the pool's size. Throughput without pipelining was the same.
    max_pipeline: 0,
    onnotice: () => {},
    connection: { application_name: 'usine' },
  };
  const client = postgres(url, options);
  const db = drizzlePg(preparing(client), { schema: pgSchema });
  // Transactions get a pool of their own. postgres.js 3.4.9 claims a connection for a transaction (begin(), and
  // reserve() once no connection is idle) only where it may send a query ahead on it: with max_pipeline: 0, begin()
  // fails with UNSAFE_TRANSACTION and reserve() waits forever on a new connection. This pool's connections are either
  // idle or held by one transaction, so none is ever busy with another caller's query: the queue of busy connections
  // that pipelining wears out (above) is never used here.
  // Named apart (pg_stat_activity's application_name), so that an operator, and the pool tests, tell the two apart.
  const transactionOptions: PostgresOptions = {
    ...options,
    max: transactionPoolMax(poolMax),
    max_pipeline: 1,
    connection: { application_name: 'usine-transactions' },
  };
  const transactionClient = postgres(url, transactionOptions);
  const transactionDb = drizzlePg(preparing(transactionClient));
  return {
    dialect: 'pg',
    db,
    tables: pgSchema,
    now: () => sql`clock_timestamp()`,
    nowPlus: (ms) => sql`(clock_timestamp() + ${Math.round(ms)} * interval '1 millisecond')`,
    lower: (value) => sql`lower(${value})`,
    // Drizzle's transaction object is the same query builder, bound to the transaction's connection.
    // Run again when PostgreSQL failed it to break a deadlock (./deadlocks.ts): a script is safe to run again.
    transaction: (script) => retryingDeadlocks(() => transactionDb.transaction((tx) => driveAsync(script(tx as unknown as AppDb)))),
    notifications: {
      listen: async (channel, onPayload) => {
        const { unlisten } = await client.listen(channel, onPayload);
        return { unlisten };
      },
      notify: async (channel, payload) => {
        await client.notify(channel, payload);
      },
    },
    ping: async () => {
      await client`select 1`;
    },
    close: async () => {
      await Promise.all([client.end({ timeout: 5 }), transactionClient.end({ timeout: 5 })]);
    },
  };
}
