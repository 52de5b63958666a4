import { and, asc, count, desc, eq, gt, inArray, lt, ne, sql } from 'drizzle-orm';
import type { BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import type { AppDb, Database } from '../db/client.js';
import { isForeignKeyViolation, isUniqueViolation } from '../db/errors.js';
import { step, steps } from '../db/transaction.js';
import type { EventRow } from './events.js';
import { hookMatches } from '../webhooks/patterns.js';
import { newMessageId } from '../webhooks/signature.js';
import { RETRY_WINDOW_MS } from '../webhooks/backoff.js';

/** After this many failed attempts in a row, a hook is disabled (a success in between starts the count again). */
export const DISABLE_AFTER_FAILURES = 20;
/** Events read by one fan-out transaction; a fuller batch runs again at once. */
const FAN_OUT_BATCH = 500;

export interface NewHook {
  project_id: number;
  url: string;
  events: string[];
  description: string;
  active: boolean;
  secret: string;
}

export interface HookChanges {
  url?: string;
  events?: string[];
  description?: string;
  active?: boolean;
}

/** What a delivery worker needs to send one claimed delivery. */
export interface ClaimedDelivery {
  id: number;
  hook_id: number;
  message_id: string;
  event_type: string;
  body: string;
  attempts: number;
  url: string;
  secrets: string[];
}

/** How an attempt ended, as the worker decided it. */
export type AttemptVerdict = { kind: 'succeeded' } | { kind: 'retry'; delayMs: number } | { kind: 'failed' };

export interface AttemptRecord {
  request_headers: Record<string, string>;
  response_status: number | null;
  response_headers: Record<string, string> | null;
  response_body: string | null;
  error: string | null;
  duration_ms: number;
}

/** A delivery's body, as the Standard Webhooks specification shapes it. */
export const deliveryBody = (type: string, timestamp: Date, data: unknown): string =>
  JSON.stringify({ type, timestamp: timestamp.toISOString(), data });

/**
 * Webhooks and their deliveries (migration 0015). Deliveries are rows, made from the event log by the fan-out in the
 * order of the log, and claimed by delivery workers of any replica as jobs are: a lease, taken over when it expires
 * (a replica killed mid-delivery loses nothing: the delivery is sent again, with the same `webhook-id`). At most one
 * delivery of a hook is in flight at a time — a partial unique index says so, whatever the replicas race.
 */
export function createHooksRepository(database: Database) {
  const { db, tables, dialect, now, nowPlus } = database;
  const { hooks, deliveries, delivery_attempts: attempts, events, event_marks } = tables;

  const hookColumns = {
    id: hooks.id,
    project_id: hooks.project_id,
    url: hooks.url,
    events: hooks.events,
    description: hooks.description,
    active: hooks.active,
    disabled_reason: hooks.disabled_reason,
    consecutive_failures: hooks.consecutive_failures,
    previous_secret_expires_at: hooks.previous_secret_expires_at,
    created_at: hooks.created_at,
    updated_at: hooks.updated_at,
  };
  const deliveryColumns = {
    id: deliveries.id,
    hook_id: deliveries.hook_id,
    event_id: deliveries.event_id,
    event_type: deliveries.event_type,
    message_id: deliveries.message_id,
    status: deliveries.status,
    attempts: deliveries.attempts,
    next_attempt_at: deliveries.next_attempt_at,
    retry_until: deliveries.retry_until,
    last_attempt_at: deliveries.last_attempt_at,
    last_status_code: deliveries.last_status_code,
    last_error: deliveries.last_error,
    created_at: deliveries.created_at,
  };
  const ofHook = (projectId: number, hookId: number) => and(eq(hooks.id, hookId), eq(hooks.project_id, projectId));
  const find = async (projectId: number, hookId: number) => {
    const [row] = await db.select(hookColumns).from(hooks).where(ofHook(projectId, hookId));
    return row;
  };

  return {
    /** Undefined when the project does not exist. */
    async create(hook: NewHook) {
      try {
        const [row] = await db.insert(hooks).values(hook).returning(hookColumns);
        return row;
      } catch (error) {
        if (isForeignKeyViolation(error)) return undefined;
        throw error;
      }
    },

    list: (projectId: number) => db.select(hookColumns).from(hooks).where(eq(hooks.project_id, projectId)).orderBy(asc(hooks.id)),

    find,

    /** Re-enabling (`active: true`) also forgets the failures and the reason it was disabled for. */
    async update(projectId: number, hookId: number, changes: HookChanges) {
      const reenable = changes.active === true ? { consecutive_failures: 0, disabled_reason: null } : {};
      const [row] = await db
        .update(hooks)
        .set({ ...changes, ...reenable, updated_at: new Date() })
        .where(ofHook(projectId, hookId))
        .returning(hookColumns);
      return row;
    },

    async delete(projectId: number, hookId: number): Promise<boolean> {
      const rows = await db.delete(hooks).where(ofHook(projectId, hookId)).returning({ id: hooks.id });
      return rows.length > 0;
    },

    /** A new secret; the one it replaces keeps signing, alongside, until `previousUntil`. */
    async rotateSecret(projectId: number, hookId: number, secret: string, previousUntil: Date) {
      const [row] = await db
        .update(hooks)
        .set({ previous_secret: sql`${hooks.secret}`, previous_secret_expires_at: previousUntil, secret, updated_at: new Date() })
        .where(ofHook(projectId, hookId))
        .returning(hookColumns);
      return row;
    },

    /**
     * Makes the deliveries of the events logged since the last fan-out, for the active hooks that want them, and moves
     * the `webhooks` mark past those events, in one transaction: each event fans out exactly once, whichever replica
     * does it. PostgreSQL: the mark's row is locked (a replica that finds it locked leaves the work to its holder and
     * answers 0). Returns how many deliveries it made and whether it read a full batch (then it should run again).
     */
    async fanOut(): Promise<{ made: number; more: boolean }> {
      // Idle, one statement on a pooled connection: is anything logged beyond the mark? Only then a transaction.
      const [behind] = await db
        .select({ behind: sql<boolean>`${event_marks.value} < coalesce((select max(${events.id}) from ${events}), 0)` })
        .from(event_marks)
        .where(eq(event_marks.name, 'webhooks'));
      if (!behind?.behind) return { made: 0, more: false };
      return database.transaction(function* (tx) {
        const markQuery = tx.select({ value: event_marks.value }).from(event_marks).where(eq(event_marks.name, 'webhooks'));
        const [mark] = yield* step(dialect === 'pg' ? markQuery.for('update', { skipLocked: true }) : markQuery);
        if (!mark) return { made: 0, more: false };
        const batch = (yield* step(
          tx
            .select({ id: events.id, type: events.type, project_id: events.project_id, created_at: events.created_at, data: events.data })
            .from(events)
            .where(gt(events.id, mark.value))
            .orderBy(asc(events.id))
            .limit(FAN_OUT_BATCH),
        )) as Pick<EventRow, 'id' | 'type' | 'project_id' | 'created_at' | 'data'>[];
        if (batch.length === 0) return { made: 0, more: false };
        const projectIds = [...new Set(batch.flatMap((event) => (event.project_id === null ? [] : [event.project_id])))];
        const candidates =
          projectIds.length === 0
            ? []
            : yield* step(
                tx
                  .select({ id: hooks.id, project_id: hooks.project_id, events: hooks.events, created_at: hooks.created_at })
                  .from(hooks)
                  .where(and(inArray(hooks.project_id, projectIds), eq(hooks.active, true))),
              );
        const rows = batch.flatMap((event) =>
          candidates
            // A hook receives what happened once it existed: not the project's creation that came before it, say.
            .filter((hook) => hook.project_id === event.project_id && hook.created_at <= event.created_at && hookMatches(hook.events, event.type))
            .map((hook) => ({
              hook_id: hook.id,
              event_id: Number(event.id),
              event_type: event.type,
              message_id: newMessageId(),
              body: deliveryBody(event.type, event.created_at, event.data),
              next_attempt_at: now(),
              retry_until: nowPlus(RETRY_WINDOW_MS),
            })),
        );
        const last = Number(batch[batch.length - 1]!.id);
        const [made] = yield* steps(
          rows.length === 0 ? tx.select({ id: sql<number>`0` }).from(event_marks).limit(0) : tx.insert(deliveries).values(rows).returning({ id: deliveries.id }),
          tx.update(event_marks).set({ value: last }).where(eq(event_marks.name, 'webhooks')).returning({ value: event_marks.value }),
        );
        return { made: made.length, more: batch.length === FAN_OUT_BATCH };
      });
    },

    /** A `ping` delivery to the hook (whatever events it wants): undefined when there is no such hook. */
    async ping(projectId: number, hookId: number) {
      const hook = await find(projectId, hookId);
      if (!hook) return undefined;
      const [row] = await db
        .insert(deliveries)
        .values({
          hook_id: hookId,
          event_type: 'ping',
          message_id: newMessageId(),
          body: deliveryBody('ping', new Date(), { hook_id: hookId, project_id: projectId, url: hook.url, events: hook.events }),
          next_attempt_at: now(),
          retry_until: nowPlus(RETRY_WINDOW_MS),
        })
        .returning(deliveryColumns);
      return row;
    },

    /**
     * Claims the delivery due first among active hooks with none in flight, for `leaseMs`, in one statement; undefined
     * when there is none (or another worker took that hook's turn at the same instant: the unique index refused it).
     */
    async claim(owner: string, leaseMs: number): Promise<ClaimedDelivery | undefined> {
      // Raw: Drizzle cannot say `for update of d skip locked` on a subquery inside an UPDATE's WHERE.
      const statement = sql`
        update ${deliveries} set "status" = 'delivering', "lease_owner" = ${owner}, "lease_expires_at" = ${nowPlus(leaseMs)},
          "attempts" = "attempts" + 1
        where "id" = (
          select d."id" from ${deliveries} d join ${hooks} h on h."id" = d."hook_id" and h."active"
          where d."status" = 'pending' and d."next_attempt_at" <= ${now()}
            and not exists (select 1 from ${deliveries} busy where busy."hook_id" = d."hook_id" and busy."status" = 'delivering')
          order by d."next_attempt_at", d."id" limit 1
          ${dialect === 'pg' ? sql`for update of d skip locked` : sql``})
        returning "id", "hook_id", "message_id", "event_type", "body", "attempts",
          (select h."url" from ${hooks} h where h."id" = "hook_id") as "url",
          (select h."secret" from ${hooks} h where h."id" = "hook_id") as "secret",
          (select case when h."previous_secret_expires_at" > ${now()} then h."previous_secret" end from ${hooks} h where h."id" = "hook_id") as "previous"`;
      let claimed:
        | (Pick<ClaimedDelivery, 'id' | 'hook_id' | 'message_id' | 'event_type' | 'body' | 'attempts' | 'url'> & { secret: string; previous: string | null })
        | undefined;
      try {
        const rows = (dialect === 'pg' ? [...(await db.execute(statement))] : (db as unknown as BetterSQLite3Database).all(statement)) as typeof claimed[];
        claimed = rows[0];
      } catch (error) {
        if (isUniqueViolation(error)) return undefined;
        throw error;
      }
      if (!claimed) return undefined;
      const { secret, previous, ...rest } = claimed;
      return { ...rest, secrets: previous ? [secret, previous] : [secret] };
    },

    /**
     * Deliveries whose worker stopped renewing (a replica killed mid-delivery) go back to the queue, where they were:
     * their `next_attempt_at` is kept, so they go before their hook's later deliveries. Returns how many.
     */
    async reclaimExpired(): Promise<number> {
      const rows = await db
        .update(deliveries)
        .set({ status: 'pending', lease_owner: null, lease_expires_at: null })
        .where(and(eq(deliveries.status, 'delivering'), lt(deliveries.lease_expires_at, now())))
        .returning({ id: deliveries.id });
      return rows.length;
    },

    /**
     * Records an attempt and its consequences atomically (PostgreSQL: one statement; SQLite: one transaction): the attempt's row, the delivery's new state (a retry
     * past its window fails it), and the hook's run of failures — the 20th in a row disables it, with the reason, which
     * logs `hook.disabled` (a trigger). Only the worker that holds the lease writes the delivery's state.
     */
    async record(delivery: ClaimedDelivery, owner: string, record: AttemptRecord, verdict: AttemptVerdict): Promise<void> {
      const { id, hook_id: hookId, attempts: attempt } = delivery;
      const failed = verdict.kind !== 'succeeded';
      const nextAt = verdict.kind === 'retry' ? nowPlus(verdict.delayMs) : null;
      const status =
        verdict.kind === 'retry'
          ? sql`case when ${nowPlus(verdict.delayMs)} > ${deliveries.retry_until} then 'failed' else 'pending' end`
          : verdict.kind;
      const reason = `${DISABLE_AFTER_FAILURES} failed attempts in a row; the last: ${record.response_status === null ? record.error : `HTTP ${record.response_status}`}`;
      const writes = (tx: AppDb) => ({
        attempt: tx.insert(attempts).values({ delivery_id: id, attempt, ...record }).returning({ id: attempts.id }),
        delivery: tx
          .update(deliveries)
          .set({
            status,
            next_attempt_at: nextAt,
            last_attempt_at: now(),
            last_status_code: record.response_status,
            last_error: record.error,
            lease_owner: null,
            lease_expires_at: null,
          })
          .where(and(eq(deliveries.id, id), eq(deliveries.lease_owner, owner)))
          .returning({ id: deliveries.id }),
        hook: failed
          ? tx
              .update(hooks)
              .set({
                consecutive_failures: sql`${hooks.consecutive_failures} + 1`,
                active: sql`case when ${hooks.consecutive_failures} + 1 >= ${DISABLE_AFTER_FAILURES} then false else ${hooks.active} end`,
                disabled_reason: sql`case when ${hooks.active} and ${hooks.consecutive_failures} + 1 >= ${DISABLE_AFTER_FAILURES} then ${reason} else ${hooks.disabled_reason} end`,
                updated_at: sql`case when ${hooks.active} and ${hooks.consecutive_failures} + 1 >= ${DISABLE_AFTER_FAILURES} then ${now()} else ${hooks.updated_at} end`,
              })
              .where(eq(hooks.id, hookId))
              .returning({ id: hooks.id })
          : // A success ends a run of failures; the usual case, no run, writes nothing.
            tx
              .update(hooks)
              .set({ consecutive_failures: 0 })
              .where(and(eq(hooks.id, hookId), ne(hooks.consecutive_failures, 0)))
              .returning({ id: hooks.id }),
      });
      if (dialect === 'pg') {
        // One statement, its own transaction: data-modifying CTEs all run, whatever the outer select reads. A round
        // trip instead of four (BEGIN, the writes, COMMIT), and no connection of the transaction pool.
        const { attempt: insert, delivery: update, hook } = writes(db);
        const recorded = db.$with('recorded').as(insert);
        const released = db.$with('released').as(update);
        const counted = db.$with('counted').as(hook);
        await db.with(recorded, released, counted).select({ id: recorded.id }).from(recorded);
        return;
      }
      await database.transaction(function* (tx) {
        const { attempt: insert, delivery: update, hook } = writes(tx);
        yield* steps(insert, update, hook);
      });
    },

    /**
     * Deletes up to `limit` of the oldest finished deliveries (succeeded or failed) made before `cutoff`, their attempts
     * with them: the history is kept as long as the events. A pending or in-flight delivery stays. Returns how many.
     */
    async purgeFinished(cutoff: Date, limit: number): Promise<number> {
      const doomed = db
        .select({ id: deliveries.id })
        .from(deliveries)
        .where(and(inArray(deliveries.status, ['succeeded', 'failed']), lt(deliveries.created_at, cutoff)))
        .orderBy(asc(deliveries.id))
        .limit(limit);
      const rows = await db
        .delete(deliveries)
        .where(sql`${deliveries.id} in (select id from (${doomed}) as doomed)`)
        .returning({ id: deliveries.id });
      return rows.length;
    },

    /** A page of a hook's deliveries, newest first, and how many it has; undefined when there is no such hook. */
    async deliveries(projectId: number, hookId: number, page: number, perPage: number) {
      if (!(await find(projectId, hookId))) return undefined;
      const [items, [total]] = await Promise.all([
        db
          .select(deliveryColumns)
          .from(deliveries)
          .where(eq(deliveries.hook_id, hookId))
          .orderBy(desc(deliveries.id))
          .limit(perPage)
          .offset((page - 1) * perPage),
        db.select({ total: count() }).from(deliveries).where(eq(deliveries.hook_id, hookId)),
      ]);
      return { items, total: Number(total?.total ?? 0) };
    },

    /** One delivery with its body and every attempt (oldest first); undefined when it is not this hook's. */
    async delivery(projectId: number, hookId: number, deliveryId: number) {
      if (!(await find(projectId, hookId))) return undefined;
      const [row] = await db
        .select({ ...deliveryColumns, body: deliveries.body })
        .from(deliveries)
        .where(and(eq(deliveries.id, deliveryId), eq(deliveries.hook_id, hookId)));
      if (!row) return undefined;
      const tries = await db
        .select({
          attempt: attempts.attempt,
          request_headers: attempts.request_headers,
          response_status: attempts.response_status,
          response_headers: attempts.response_headers,
          response_body: attempts.response_body,
          error: attempts.error,
          duration_ms: attempts.duration_ms,
          created_at: attempts.created_at,
        })
        .from(attempts)
        .where(eq(attempts.delivery_id, deliveryId))
        .orderBy(asc(attempts.id));
      return { ...row, attempts_made: tries };
    },

    /**
     * Sends a delivery again (same `webhook-id`), with a new 24-hour window: one statement, refused while it is in
     * flight. Undefined when it is not this hook's; 'in_flight' when it is being delivered.
     */
    async redeliver(projectId: number, hookId: number, deliveryId: number) {
      if (!(await find(projectId, hookId))) return undefined;
      const [row] = await db
        .update(deliveries)
        .set({ status: 'pending', next_attempt_at: now(), retry_until: nowPlus(RETRY_WINDOW_MS) })
        .where(and(eq(deliveries.id, deliveryId), eq(deliveries.hook_id, hookId), sql`${deliveries.status} <> 'delivering'`))
        .returning(deliveryColumns);
      if (row) return row;
      const [exists] = await db.select({ id: deliveries.id }).from(deliveries).where(and(eq(deliveries.id, deliveryId), eq(deliveries.hook_id, hookId)));
      return exists ? ('in_flight' as const) : undefined;
    },
  };
}

export type HooksRepository = ReturnType<typeof createHooksRepository>;
