/**
 * The least work each hot read can do, in its own process on the same database: what the app's routes are compared
 * with. None of it copies Usine's design: each route is Fastify, `@fastify/jwt` verifying the token (same options as
 * the app) where the app asks for one, the essential queries written by hand with the raw driver, JSON out.
 *   GET /bare                          a constant, nothing else (the framework's floor)
 *   GET /minimal/projects              a page of the projects table, whose rows store last_build_status, and one count
 *   GET /minimal/projects/:id          one row of it
 *   GET /minimal/projects/:id/builds   a page of builds, newest first (`?page=`): whether the project exists and its
 *                                      newest number (builds are numbered 1..n without gaps: the total), then the
 *                                      page's range of numbers from the (project_id, number) index
 *   GET /minimal/status                the queue's counts (builds and jobs, queued and running), in one statement that
 *                                      is also the database check; no token, as GET /status
 * Run by bench/servers.ts with PORT, DATABASE_URL, JWT_SECRET, JWT_ISSUER and JWT_AUDIENCE in the environment.
 */
import jwt from '@fastify/jwt';
import BetterSqlite3 from 'better-sqlite3';
import Fastify from 'fastify';
import postgres from 'postgres';
import { parseDatabaseUrl } from '../src/config.js';
import type { PostgresOptions } from '../src/db/client.js';

type Row = Record<string, unknown>;

interface Source {
  projects(limit: number, offset: number): Promise<{ items: Row[]; total: number }>;
  project(id: number): Promise<Row | undefined>;
  /** Undefined when the project does not exist. */
  builds(projectId: number, page: number, perPage: number): Promise<{ items: Row[]; total: number } | undefined>;
  queue(): Promise<Row>;
  close(): Promise<void>;
}

const PROJECT = 'select id, name, repo, default_branch, last_build_status, created_at, updated_at from projects';
const PROJECT_TOTAL = 'select count(*) as total from projects';
const NEWEST = 'select (select 1 from projects where id = $1) as found, (select max(number) from builds where project_id = $1) as total';
const BUILD_PAGE =
  'select id, project_id, number, status, branch, commit_sha, triggered_by, retry_of, duration_s, logs, created_at, started_at, finished_at ' +
  'from builds where project_id = $1 and number <= $2 order by number desc limit $3';
const QUEUE =
  "select (select count(*) from builds where status = 'queued') as builds_queued, (select count(*) from builds where status = 'running') as builds_running, " +
  "(select count(*) from jobs where status = 'queued') as jobs_queued, (select count(*) from jobs where status = 'running') as jobs_running";

// Timestamps are stored as epoch milliseconds on SQLite; the API sends ISO-8601.
const SQLITE_TIMES = ['created_at', 'updated_at', 'started_at', 'finished_at'];
const sqliteWire = (row: Row): Row => {
  const out: Row = { ...row };
  for (const key of SQLITE_TIMES) if (typeof out[key] === 'number') out[key] = new Date(out[key]);
  return out;
};

function sqliteSource(path: string): Source {
  const db = new BetterSqlite3(path);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  // better-sqlite3 binds `$1` of PostgreSQL's syntax as a named parameter `@p1`, given as { p1: value }.
  const positional = (text: string) => text.replace(/\$(\d)/g, '@p$1');
  const bind = (...values: number[]) => Object.fromEntries(values.map((value, index) => [`p${index + 1}`, value]));
  const page = db.prepare(`${PROJECT} order by id limit ? offset ?`);
  const total = db.prepare(PROJECT_TOTAL);
  const one = db.prepare(`${PROJECT} where id = ?`);
  const newest = db.prepare(positional(NEWEST));
  const buildPage = db.prepare(positional(BUILD_PAGE));
  const queue = db.prepare(QUEUE);
  return {
    projects: async (limit, offset) => ({
      items: (page.all(limit, offset) as Row[]).map(sqliteWire),
      total: (total.get() as { total: number }).total,
    }),
    project: async (id) => {
      const row = one.get(id) as Row | undefined;
      return row && sqliteWire(row);
    },
    builds: async (projectId, pageNumber, perPage) => {
      const head = newest.get(bind(projectId)) as { found: number | null; total: number | null };
      if (head.found === null) return undefined;
      const total = head.total ?? 0;
      return { items: (buildPage.all(bind(projectId, total - (pageNumber - 1) * perPage, perPage)) as Row[]).map(sqliteWire), total };
    },
    queue: async () => queue.get() as Row,
    close: async () => {
      db.close();
    },
  };
}

function pgSource(url: string): Source {
  // Same pool size as the app's client, and no pipelining either (src/db/client.ts says why). Every query prepared.
  const options: PostgresOptions = { max: 10, max_pipeline: 0, onnotice: () => {}, prepare: true };
  const sql = postgres(url, options);
  const run = <T extends Row>(text: string, parameters: (number | string)[] = []) => sql.unsafe<T[]>(text, parameters, { prepare: true });
  return {
    projects: async (limit, offset) => {
      const [items, totals] = await Promise.all([
        run(`${PROJECT} order by id limit $1 offset $2`, [limit, offset]),
        run<{ total: string }>(PROJECT_TOTAL),
      ]);
      return { items, total: Number(totals[0]?.total ?? 0) };
    },
    project: async (id) => (await run(`${PROJECT} where id = $1`, [id]))[0],
    builds: async (projectId, pageNumber, perPage) => {
      const [head] = await run<{ found: number | null; total: number | null }>(NEWEST, [projectId]);
      if (!head || head.found === null) return undefined;
      const total = head.total ?? 0;
      return { items: await run(BUILD_PAGE, [projectId, total - (pageNumber - 1) * perPage, perPage]), total };
    },
    queue: async () => {
      const [row] = await run(QUEUE);
      return Object.fromEntries(Object.entries(row ?? {}).map(([key, value]) => [key, Number(value)]));
    },
    close: async () => {
      await sql.end({ timeout: 5 });
    },
  };
}

const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const database = parseDatabaseUrl(env('DATABASE_URL'));
const source = database.dialect === 'sqlite' ? sqliteSource(database.path) : pgSource(database.url);
const app = Fastify({ logger: { level: 'warn' } });
await app.register(jwt, {
  secret: env('JWT_SECRET'),
  verify: { algorithms: ['HS256'], allowedIss: env('JWT_ISSUER'), allowedAud: env('JWT_AUDIENCE'), requiredClaims: ['sub', 'exp', 'iss', 'aud'] },
});

const verify = async (request: { jwtVerify(): Promise<unknown> }, reply: { code(status: number): unknown }) => {
  try {
    await request.jwtVerify();
    return true;
  } catch {
    reply.code(401);
    return false;
  }
};

type Paged = { Querystring: { page?: string; per_page?: string } };
const paging = (query: Paged['Querystring']) => ({ page: Number(query.page ?? 1), perPage: Number(query.per_page ?? 20) });

app.get('/bare', async () => ({ hello: 'world' }));

app.get<Paged>('/minimal/projects', async (request, reply) => {
  if (!(await verify(request, reply))) return { error: 'unauthorized' };
  const { page, perPage } = paging(request.query);
  const { items, total } = await source.projects(perPage, (page - 1) * perPage);
  return { items, page, per_page: perPage, total };
});

app.get<{ Params: { id: string } }>('/minimal/projects/:id', async (request, reply) => {
  if (!(await verify(request, reply))) return { error: 'unauthorized' };
  const project = await source.project(Number(request.params.id));
  if (!project) reply.code(404);
  return project ?? { error: 'not_found' };
});

app.get<Paged & { Params: { id: string } }>('/minimal/projects/:id/builds', async (request, reply) => {
  if (!(await verify(request, reply))) return { error: 'unauthorized' };
  const { page, perPage } = paging(request.query);
  const builds = await source.builds(Number(request.params.id), page, perPage);
  if (!builds) {
    reply.code(404);
    return { error: 'not_found' };
  }
  return { items: builds.items, page, per_page: perPage, total: builds.total };
});

app.get('/minimal/status', async () => {
  const counts = await source.queue();
  return {
    status: 'ok',
    db: 'ok',
    time: new Date().toISOString(),
    queue: { queued: counts.builds_queued, running: counts.builds_running },
    jobs: { queued: counts.jobs_queued, running: counts.jobs_running },
  };
});

app.get('/health/ready', async () => ({ status: 'ok' }));
app.addHook('onClose', async () => source.close());

const stop = () => void app.close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
await app.listen({ port: Number(env('PORT')), host: '127.0.0.1' });
