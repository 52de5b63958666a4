import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDatabaseUrl } from '../../src/config.js';
import { createServer } from '../../src/server.js';
import { createScratchDatabase, injectAs, login, testConfig, testDb, uniqueName, waitForBuild, type ScratchDatabase } from '../helper.js';

/**
 * GET /projects without `q` reads its total from the project_count table that triggers keep (migration 0005), not
 * from count(*): these tests compare it with a count of the rows after every kind of write.
 */

/** A connection of its own to the app's database: what it writes reaches the counter only through the triggers. */
interface RawConnection {
  /** One statement (PostgreSQL: the connection is single, so `begin` … `rollback` span calls). */
  exec(statement: string): Promise<void>;
  countRows(): Promise<number>;
  close(): Promise<void>;
}

function rawConnection(url: string): RawConnection {
  const config = parseDatabaseUrl(url);
  if (config.dialect === 'sqlite') {
    const db = new BetterSqlite3(config.path);
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
    const count = db.prepare('select count(*) as n from projects').pluck();
    return {
      exec: async (statement) => {
        db.exec(statement);
      },
      countRows: async () => count.get() as number,
      close: async () => {
        db.close();
      },
    };
  }
  const sql = postgres(config.url, { max: 1, onnotice: () => {} });
  return {
    exec: async (statement) => {
      await sql.unsafe(statement);
    },
    countRows: async () => (await sql<{ n: number }[]>`select count(*)::int as n from projects`)[0]?.n ?? -1,
    close: async () => {
      await sql.end({ timeout: 5 });
    },
  };
}

/** The app on a database other connections can open too: a SQLite file, or a scratch PostgreSQL database. */
function useSharedDatabase() {
  const shared = {} as { app: FastifyInstance; token: string; url: string; raw: RawConnection };
  let scratch: ScratchDatabase | undefined;
  let dir: string | undefined;
  beforeAll(async () => {
    if (testDb === 'sqlite') {
      dir = mkdtempSync(join(tmpdir(), 'usine-project-count-'));
      shared.url = `sqlite:${join(dir, 'usine.db')}`;
    } else {
      scratch = await createScratchDatabase();
      shared.url = scratch.url;
    }
    shared.app = await createServer(testConfig(shared.url), { logger: false });
    await shared.app.ready();
    shared.token = await login(shared.app);
    shared.raw = rawConnection(shared.url);
  });
  afterAll(async () => {
    await shared.raw?.close();
    await shared.app?.close();
    await scratch?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return shared;
}

const values = (names: string[]) => names.map((name) => `('${name}', 'https://github.com/demo/raw')`).join(', ');

describe(`projects: the exact total (${testDb})`, () => {
  const ctx = useSharedDatabase();

  const create = (name: string) =>
    injectAs(ctx.app, ctx.token, { method: 'POST', url: '/projects', payload: { name, repo: 'https://github.com/demo/total' } });
  const remove = (id: number) => injectAs(ctx.app, ctx.token, { method: 'DELETE', url: `/projects/${id}` });
  const idOf = (response: LightMyRequestResponse) => response.json<{ id: number }>().id;

  /** GET /projects' total, which must be the number of rows. */
  async function expectTotal(expected: number): Promise<void> {
    const response = await injectAs(ctx.app, ctx.token, { url: '/projects?per_page=1' });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<{ total: number }>().total).toBe(expected);
    expect(await ctx.raw.countRows()).toBe(expected);
  }

  it('starts at 0; counts creates and deletes, not a refused duplicate, a refused body, an unknown id or a rename', async () => {
    await expectTotal(0);

    const names = [uniqueName('Total'), uniqueName('Total'), uniqueName('Total')];
    const ids: number[] = [];
    for (const name of names) {
      const response = await create(name);
      expect(response.statusCode, response.body).toBe(201);
      ids.push(idOf(response));
    }
    await expectTotal(3);
    // The response serializer would turn a numeric string (PostgreSQL's sum) into a number: the repository must not.
    expect((await ctx.app.projectsRepository.list({ page: 1, perPage: 1 })).total).toBe(3);

    expect((await create(names[0]!)).statusCode).toBe(409);
    expect((await create('')).statusCode).toBe(400);
    await expectTotal(3);

    expect((await remove(ids[0]!)).statusCode).toBe(204);
    await expectTotal(2);
    expect((await remove(ids[0]!)).statusCode).toBe(404);
    expect((await remove(2147483000)).statusCode).toBe(404);
    await expectTotal(2);

    const rename = await injectAs(ctx.app, ctx.token, { method: 'PATCH', url: `/projects/${ids[1]}`, payload: { name: uniqueName('Renamed') } });
    expect(rename.statusCode, rename.body).toBe(200);
    await expectTotal(2);
  });

  it('counts 50 simultaneous creates, 5 of them losing their name to another, and 10 deletes among them', async () => {
    const doomed: number[] = [];
    for (let i = 0; i < 10; i++) doomed.push(idOf(await create(uniqueName('Doomed'))));
    const before = await ctx.raw.countRows();
    await expectTotal(before);

    const shared = Array.from({ length: 5 }, () => uniqueName('Shared'));
    const names = [...Array.from({ length: 40 }, () => uniqueName('Burst')), ...shared, ...shared];
    const [creates, deletes] = await Promise.all([Promise.all(names.map(create)), Promise.all(doomed.map(remove))]);
    const codes = creates.map((response) => response.statusCode);
    expect(codes.filter((code) => code === 201)).toHaveLength(45);
    expect(codes.filter((code) => code === 409)).toHaveLength(5);
    expect(deletes.map((response) => response.statusCode)).toEqual(Array<number>(10).fill(204));
    await expectTotal(before + 45 - 10);
  });

  it('follows raw SQL from another connection: several rows per statement, an insert that conflicts, an update, a rollback', async () => {
    const before = await ctx.raw.countRows();
    const [a, b, c, d] = [uniqueName('Raw'), uniqueName('Raw'), uniqueName('Raw'), uniqueName('Raw')];
    await ctx.raw.exec(`insert into projects (name, repo) values ${values([a, b, c])}`);
    await expectTotal(before + 3);
    await ctx.raw.exec(`insert into projects (name, repo) values ${values([a])} on conflict (name) do nothing`);
    await ctx.raw.exec(`update projects set repo = 'https://github.com/demo/moved' where name in ('${a}', '${b}')`);
    await expectTotal(before + 3);
    await ctx.raw.exec(`delete from projects where name in ('${a}', '${b}')`);
    await expectTotal(before + 1);

    await ctx.raw.exec('begin');
    await ctx.raw.exec(`insert into projects (name, repo) values ${values([d])}`);
    await ctx.raw.exec(`delete from projects where name = '${c}'`);
    await ctx.raw.exec('rollback');
    await expectTotal(before + 1);
  });

  it('reads the unfiltered total from project_count, and counts the matches of a filter', async () => {
    const name = uniqueName('Counter');
    expect((await create(name)).statusCode).toBe(201);
    const rows = await ctx.raw.countRows();
    // Only a test moves the counter by hand: the page's total must follow it, the filtered one must not.
    const bump = (by: number) =>
      ctx.raw.exec(`update project_count set n = n + ${by}` + (testDb === 'pg' ? ' where slot = (select min(slot) from project_count)' : ''));
    await bump(1000);
    try {
      const page = await injectAs(ctx.app, ctx.token, { url: '/projects?per_page=1' });
      expect(page.json<{ total: number }>().total).toBe(rows + 1000);
      const filtered = await injectAs(ctx.app, ctx.token, { url: '/projects', query: { q: name } });
      expect(filtered.json<{ total: number }>().total).toBe(1);
    } finally {
      await bump(-1000);
    }
    await expectTotal(rows);
  });

  it('reaches 0 when every row is deleted in one statement, builds with them, and counts on from there', async () => {
    const project = await create(uniqueName('WithBuild'));
    const build = await injectAs(ctx.app, ctx.token, { method: 'POST', url: `/projects/${idOf(project)}/builds` });
    expect(build.statusCode).toBe(201);
    await waitForBuild(ctx.app, ctx.token, idOf(build));
    expect(await ctx.raw.countRows()).toBeGreaterThan(1);

    await ctx.raw.exec('delete from projects');
    await expectTotal(0);
    expect((await create(uniqueName('After'))).statusCode).toBe(201);
    await expectTotal(1);
  });
});

// PostgreSQL only: TRUNCATE (SQLite has none) and the counter's slots, one per backend modulo 16.
if (testDb === 'pg') describe('projects: the exact total on PostgreSQL', () => {
  const ctx = useSharedDatabase();
  const writers: postgres.Sql[] = [];

  afterAll(async () => {
    await Promise.allSettled(writers.map((writer) => writer.end({ timeout: 5 })));
  });

  const total = async () => {
    const response = await injectAs(ctx.app, ctx.token, { url: '/projects?per_page=1' });
    expect(response.statusCode, response.body).toBe(200);
    return response.json<{ total: number }>().total;
  };

  it('TRUNCATE empties the counter, also when it reaches projects through CASCADE; a rolled-back one changes nothing', async () => {
    await ctx.raw.exec(`insert into projects (name, repo) values ${values([uniqueName('T'), uniqueName('T'), uniqueName('T')])}`);
    expect(await total()).toBe(3);

    await ctx.raw.exec('begin');
    await ctx.raw.exec('truncate projects cascade');
    await ctx.raw.exec('rollback');
    expect(await total()).toBe(3);

    await ctx.raw.exec('truncate projects cascade');
    expect(await total()).toBe(0);
    await ctx.raw.exec(`insert into projects (name, repo) values ${values([uniqueName('T'), uniqueName('T')])}`);
    expect(await total()).toBe(2);

    // Every table that references projects named, without CASCADE.
    await ctx.raw.exec('truncate delivery_attempts, deliveries, hooks, artifacts, jobs, builds, projects');
    expect(await total()).toBe(0);
    await ctx.raw.exec(`insert into projects (name, repo) values ${values([uniqueName('T')])}`);
    expect(await total()).toBe(1);
    expect(await ctx.raw.countRows()).toBe(1);
  });

  it('sums exactly what 8 connections insert and delete at once, each adding to the slot of its backend', async () => {
    await ctx.raw.exec('truncate projects cascade');
    for (let i = 0; i < 8; i++) writers.push(postgres(ctx.url, { max: 1, onnotice: () => {} }));
    const pids = await Promise.all(writers.map(async (writer) => (await writer<{ pid: number }[]>`select pg_backend_pid() as pid`)[0]!.pid));
    const prefix = uniqueName('Slot');
    /** What each slot should hold when every writer has changed its rows by `perWriter`. */
    const expectedSlots = (perWriter: number) => {
      const slots: Record<number, number> = {};
      for (const pid of pids) slots[pid % 16] = (slots[pid % 16] ?? 0) + perWriter;
      return slots;
    };
    const slots = async () => {
      const rows = await writers[0]!<{ slot: number; n: string }[]>`select slot, n from project_count`;
      return Object.fromEntries(rows.map((row) => [row.slot, Number(row.n)]));
    };

    await Promise.all(
      writers.map(async (writer, w) => {
        for (let round = 0; round < 10; round++) {
          // Five rows in one statement inside a transaction, then one on its own.
          await writer.begin(async (tx) => {
            await tx`insert into projects (name, repo)
              select ${`${prefix}-${w}-${round}-`} || g, 'https://github.com/demo/slot' from generate_series(1, 5) g`;
          });
          await writer`insert into projects (name, repo) values (${`${prefix}-${w}-${round}`}, 'https://github.com/demo/slot')`;
        }
      }),
    );
    expect(await slots()).toEqual(expectedSlots(60));
    expect(await total()).toBe(8 * 60);

    await Promise.all(writers.map((writer, w) => writer`delete from projects where name like ${`${prefix}-${w}-0-%`}`));
    expect(await slots()).toEqual(expectedSlots(55));
    expect(await total()).toBe(8 * 55);
    expect(await ctx.raw.countRows()).toBe(8 * 55);
  });
});
