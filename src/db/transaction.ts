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
 */
import type { AppDb } from './client.js';

/** A query of the script, yielded to the runner, which sends back its rows. */
export type Query<T> = PromiseLike<T>;

export type TransactionScript<R> = (tx: AppDb) => Generator<Query<unknown>, R, unknown>;

/** Runs one query of a script and gives back its rows, typed: `const rows = yield* step(query)`. */
export function* step<T>(query: Query<T>): Generator<Query<unknown>, T, unknown> {
  // The runner sends back exactly what the yielded query resolves to.
  return (yield query) as T;
}

/** Drives a script, each yielded query run by `run`; returns the script's result. */
export function driveSync<R>(script: Generator<Query<unknown>, R, unknown>, run: (query: Query<unknown>) => unknown): R {
  let next = script.next();
  while (!next.done) next = script.next(run(next.value));
  return next.value;
}

export async function driveAsync<R>(script: Generator<Query<unknown>, R, unknown>): Promise<R> {
  let next = script.next();
  while (!next.done) next = script.next(await next.value);
  return next.value;
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
