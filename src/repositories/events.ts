import { and, asc, desc, eq, gt, isNotNull, isNull, like, lt, max, sql, type SQL } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { step } from '../db/transaction.js';

/** An event as the API shows it. */
export interface EventRow {
  id: number;
  type: string;
  project_id: number | null;
  build_id: number | null;
  job_id: number | null;
  created_at: Date;
  data: Record<string, unknown>;
}

export interface EventFilter {
  projectId?: number;
  /** `build.` (every build event) or a whole type (`build.failed`): types that start with it. */
  typePrefix?: string;
}

export interface EventPageQuery extends EventFilter {
  limit: number;
  /** Newest first, below this id (the next page of a newest-first listing). */
  before?: number;
  /** Oldest first, above this id (catching up from the last id seen); wins over `before`. */
  after?: number;
}

/** Named positions in the log (the `event_marks` table). */
export type EventMark = 'webhooks' | 'purged';

/** Any constant shared by every Usine process: it names the advisory lock that one sequencer at a time holds. */
const SEQUENCER_LOCK_KEY = 0x75_73_65_71; // "useq"

/** `%` and `_` are LIKE's wildcards: a prefix is matched as the characters it is. */
const escapeLike = (text: string) => text.replace(/[\\%_]/g, (char) => `\\${char}`);

/**
 * The event log (migration 0015): rows written by triggers in the transactions that change projects, builds, jobs
 * and hooks. Readers see only sequenced rows (`id` set), in id order, which on PostgreSQL is the order the sequencer
 * gave them after their commit (see `sequence`), so a reader that has seen id N will never find a smaller one later.
 */
export function createEventsRepository(database: Database) {
  const { db, tables, dialect } = database;
  const { events, event_marks } = tables;

  const columns = {
    id: sql<number>`${events.id}`.mapWith(Number),
    type: events.type,
    project_id: events.project_id,
    build_id: events.build_id,
    job_id: events.job_id,
    created_at: events.created_at,
    data: events.data,
  };

  const filters = ({ projectId, typePrefix }: EventFilter): SQL[] => [
    isNotNull(events.id),
    ...(projectId === undefined ? [] : [eq(events.project_id, projectId)]),
    ...(typePrefix === undefined ? [] : [like(events.type, `${escapeLike(typePrefix)}%`)]),
  ];

  const unsequencedQuery = db.select({ seq: events.seq }).from(events).where(isNull(events.id)).limit(1).prepare('usine_events_unsequenced');

  const markQuery = db
    .select({ value: event_marks.value })
    .from(event_marks)
    .where(eq(event_marks.name, sql.placeholder('name')))
    .prepare('usine_event_mark');

  return {
    /** A page of the log: newest first (below `before`), or oldest first after `after`. */
    async page({ limit, before, after, ...filter }: EventPageQuery): Promise<EventRow[]> {
      const where = filters(filter);
      if (after !== undefined) {
        return (await db
          .select(columns)
          .from(events)
          .where(and(...where, gt(events.id, after)))
          .orderBy(asc(events.id))
          .limit(limit)) as EventRow[];
      }
      if (before !== undefined) where.push(lt(events.id, before));
      return (await db
        .select(columns)
        .from(events)
        .where(and(...where))
        .orderBy(desc(events.id))
        .limit(limit)) as EventRow[];
    },

    /** The newest id readers can see (0 for an empty log). */
    async newestId(): Promise<number> {
      const [row] = await db.select({ id: max(events.id) }).from(events);
      return Number(row?.id ?? 0);
    },

    /** A named position in the log: how far webhooks' fan-out has read, or up to which id retention purged. */
    async mark(name: EventMark): Promise<number> {
      const [row] = await markQuery.execute({ name });
      return Number(row?.value ?? 0);
    },

    /**
     * Gives ids to the rows committed without one, oldest insert first, up to `limit`; returns how many. PostgreSQL
     * only (SQLite's rows commit in id order, one writer at a time): one sequencer at a time holds an advisory lock
     * for its transaction, and takes the ids after the largest given, so ids become visible in increasing order
     * whatever order the writers committed in. A process that finds the lock taken leaves the work to its holder
     * (which runs again when woken) and answers 0.
     */
    async sequence(limit: number): Promise<number> {
      if (dialect !== 'pg') return 0;
      // Idle, a probe of the partial index on a pooled connection, not a transaction of its own.
      const [waiting] = await unsequencedQuery.execute();
      if (!waiting) return 0;
      return database.transaction(function* (tx) {
        const [lock] = yield* step(tx.execute<{ locked: boolean }>(sql`select pg_try_advisory_xact_lock(${SEQUENCER_LOCK_KEY}) as locked`));
        if (!lock?.locked) return 0;
        const rows = yield* step(
          tx.execute<{ id: string }>(sql`
            with pending as (
              select ${events.seq} as seq, row_number() over (order by ${events.seq}) as n
              from ${events} where ${events.id} is null order by ${events.seq} limit ${limit}
            ), top as (select coalesce(max(${events.id}), 0) as id from ${events})
            update ${events} set id = top.id + pending.n from pending, top where ${events.seq} = pending.seq
            returning ${events.id}`),
        );
        return rows.length;
      });
    },

    /**
     * Deletes up to `limit` of the oldest events created before `cutoff` and moves the `purged` mark up to the largest
     * id deleted, in one transaction: a reader asking for what comes after an older id learns that part is gone.
     * Returns how many rows went.
     */
    async purge(cutoff: Date, limit: number): Promise<number> {
      return database.transaction(function* (tx) {
        const doomed = tx
          .select({ id: events.id })
          .from(events)
          .where(and(isNotNull(events.id), lt(events.created_at, cutoff)))
          .orderBy(asc(events.id))
          .limit(limit);
        const deleted = yield* step(
          tx
            .delete(events)
            .where(sql`${events.id} in (select id from (${doomed}) as doomed)`)
            .returning({ id: events.id }),
        );
        if (deleted.length === 0) return 0;
        const newest = Math.max(...deleted.map((row) => Number(row.id)));
        yield* step(
          tx
            .update(event_marks)
            .set({ value: sql`case when ${event_marks.value} < ${newest} then ${newest} else ${event_marks.value} end` })
            .where(eq(event_marks.name, 'purged'))
            .returning({ value: event_marks.value }),
        );
        return deleted.length;
      });
    },
  };
}

export type EventsRepository = ReturnType<typeof createEventsRepository>;
