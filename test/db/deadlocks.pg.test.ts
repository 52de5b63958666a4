/**
 * src/db/deadlocks.ts against a real deadlock: two transactions lock two rows in opposite orders; PostgreSQL fails
 * one of them, which runs again and completes. Nothing is lost, nothing is written twice.
 */
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { retryingDeadlocks } from '../../src/db/deadlocks.js';
import { createScratchDatabase, type ScratchDatabase } from '../helper.js';

describe('retryingDeadlocks (pg)', () => {
  let scratch: ScratchDatabase;
  let sql: postgres.Sql;

  beforeAll(async () => {
    scratch = await createScratchDatabase('pg');
    sql = postgres(scratch.url, { max: 4, onnotice: () => {} });
    await sql`create table counters (id integer primary key, n integer not null)`;
  });
  afterAll(async () => {
    await sql?.end();
    await scratch?.drop();
  });

  /** Both transactions hold their first row before either asks for its second: a deadlock, every time. */
  function crossing() {
    let arrived = 0;
    let release!: () => void;
    const bothHoldTheirFirst = new Promise<void>((resolve) => (release = resolve));
    const attempts = { count: 0 };
    const transfer = (first: number, second: number) => () => {
      const attempt = ++attempts.count;
      return sql.begin(async (tx) => {
        await tx`update counters set n = n + 1 where id = ${first}`;
        // Only the first two attempts wait for each other; a retry goes straight on.
        if (attempt <= 2) {
          if (++arrived === 2) release();
          await bothHoldTheirFirst;
        }
        await tx`update counters set n = n + 1 where id = ${second}`;
      });
    };
    return { transfer, attempts };
  }

  it('runs the transaction PostgreSQL failed again, and both complete once', async () => {
    await sql`delete from counters`;
    await sql`insert into counters values (1, 0), (2, 0)`;
    const { transfer, attempts } = crossing();
    await Promise.all([retryingDeadlocks(transfer(1, 2)), retryingDeadlocks(transfer(2, 1))]);
    expect(attempts.count).toBe(3);
    expect(await sql`select id, n from counters order by id`).toEqual([
      { id: 1, n: 2 },
      { id: 2, n: 2 },
    ]);
  });

  it('without it, one of the two fails with 40P01 and its writes are gone', async () => {
    await sql`delete from counters`;
    await sql`insert into counters values (1, 0), (2, 0)`;
    const { transfer } = crossing();
    const results = await Promise.allSettled([transfer(1, 2)(), transfer(2, 1)()]);
    const failed = results.filter((result) => result.status === 'rejected');
    expect(failed).toHaveLength(1);
    expect((failed[0] as PromiseRejectedResult).reason).toMatchObject({ code: '40P01' });
    expect(await sql`select id, n from counters order by id`).toEqual([
      { id: 1, n: 1 },
      { id: 2, n: 1 },
    ]);
  });

  it('does not run again what failed for another reason', async () => {
    let attempts = 0;
    await expect(
      retryingDeadlocks(async () => {
        attempts++;
        await sql`select 1 / 0`;
      }),
    ).rejects.toMatchObject({ code: '22012' });
    expect(attempts).toBe(1);
  });
});
