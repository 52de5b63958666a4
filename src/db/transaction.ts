/**
 * Transactions written once for both databases, as generator functions ("transaction scripts"): the script yields each
 * query it wants run and gets its rows back, `const rows = yield* step(tx.update(…).returning())`.
 *
 * Why generators: better-sqlite3 runs a transaction as one synchronous call, and an `async` function inside it would
 * commit at its first `await`, with whatever other requests run meanwhile mixed into the transaction. A generator lets
 * the SQLite runner drive every query synchronously inside `BEGIN IMMEDIATE … COMMIT` (nothing else runs in between),
 * while the PostgreSQL runner awaits each query inside Drizzle's transaction on one reserved connection.
 *
 * Rules for scripts: build every query from the `tx` given (on PostgreSQL it is bound to the transaction's connection);
 * yield only queries that return rows (selects, and writes with `.returning()`); do no other I/O and no waiting.
 *
 * Queries that do not depend on one another's rows can go together, `const [a, b] = yield* steps(queryA, queryB)`:
 * they run in the order given, each after the one before has finished (on PostgreSQL the transaction's connection
 * runs them one by one, in the order they were sent), but on PostgreSQL they are sent without waiting for one
 * another's answers (postgres.js writes those started in one turn of the event loop together, and keeps up to
 * `max_pipeline` + 1 in flight on a connection: two with client.ts's transaction pool), instead of one round trip
 * each. A round trip is what a step costs there: the job engine's finish took eight (BEGIN, six statements, COMMIT),
 * and the writes to the loopback socket, each waking PostgreSQL's backend, were the largest item of a worker's CPU
 * profile.
 */
import type { AppDb } from './client.js';

/** A query of the script, yielded to the runner, which sends back its rows. */
export type Query<T> = PromiseLike<T>;

/** Queries yielded together (see `steps`); not a thenable, so that the runners tell it from a query. */
class Batch {
  constructor(readonly queries: readonly Query<unknown>[]) {}
}

/** What a script yields: one query, or several to be sent together. */
export type Step = Query<unknown> | Batch;

export type TransactionScript<R> = (tx: AppDb) => Generator<Step, R, unknown>;

/** Runs one query of a script and gives back its rows, typed: `const rows = yield* step(query)`. */
export function* step<T>(query: Query<T>): Generator<Query<unknown>, T, unknown> {
  // The runner sends back exactly what the yielded query resolves to.
  return (yield query) as T;
}

/**
 * Runs several queries of a script in the order given and gives back their rows, in that order:
 * `const [a, b] = yield* steps(queryA, queryB)`. On PostgreSQL they are sent together (see the top of this file); a
 * query that fails fails the step, after the others sent with it have answered.
 */
export function* steps<const T extends readonly Query<unknown>[]>(...queries: T): Generator<Step, { -readonly [K in keyof T]: Awaited<T[K]> }, unknown> {
  type Rows = { -readonly [K in keyof T]: Awaited<T[K]> };
  if (queries.length === 0) return [] as unknown as Rows;
  // The runner sends back each query's rows, in the order of the queries.
  return (yield new Batch(queries)) as Rows;
}

/** Drives a script, each yielded query run by `run` (those of a batch one after the other); returns its result. */
export function driveSync<R>(script: Generator<Step, R, unknown>, run: (query: Query<unknown>) => unknown): R {
  let next = script.next();
  while (!next.done) {
    const value = next.value;
    next = script.next(value instanceof Batch ? value.queries.map(run) : run(value));
  }
  return next.value;
}

export async function driveAsync<R>(script: Generator<Step, R, unknown>): Promise<R> {
  let next = script.next();
  while (!next.done) {
    const value = next.value;
    next = script.next(value instanceof Batch ? await all(value.queries) : await value);
  }
  return next.value;
}

/**
 * Every query's rows, the queries started in the order given (each `then` is called in that order, and postgres.js
 * sends its queries in the order they are started). When one fails, the error is thrown once every one has answered:
 * the runner's ROLLBACK then goes out on a connection with nothing of the batch still in flight.
 */
async function all(queries: readonly Query<unknown>[]): Promise<unknown[]> {
  const results = await Promise.allSettled(queries);
  const failed = results.find((result) => result.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((result) => (result as PromiseFulfilledResult<unknown>).value);
}

/**
 * Runs a Drizzle better-sqlite3 query synchronously: its builders have `all()` (rows), where the PostgreSQL-typed
 * `AppDb` they are cast to (see client.ts) shows only `then`.
 */
export function allSync(query: Query<unknown>): unknown {
  const rows = query as unknown as { all?: () => unknown };
  if (typeof rows.all !== 'function') throw new TypeError('a SQLite transaction script yielded something that is not a query');
  return rows.all();
}
