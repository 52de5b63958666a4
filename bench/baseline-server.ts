/**
 * The baselines the app's routes are compared with, in their own process on the same database:
 *   GET /bare                  a constant, nothing else (the framework's floor)
 *   GET /minimal/projects      what GET /projects does and nothing else: verify the JWT with @fastify/jwt (same
 *                              options as the app), the same page query and total (read from the project_count
 *                              table the triggers of migration 0005 keep) with the raw driver, JSON out
 *   GET /minimal/projects/:id  the same for one project
 * Run by bench/servers.ts with PORT, DATABASE_URL, JWT_SECRET, JWT_ISSUER and JWT_AUDIENCE in the environment.
 */
import jwt from '@fastify/jwt';
import BetterSqlite3 from 'better-sqlite3';
import Fastify from 'fastify';
import postgres from 'postgres';
import { parseDatabaseUrl } from '../src/config.js';
import type { PostgresOptions } from '../src/db/client.js';

interface ProjectRow {
  id: number;
  name: string;
  repo: string;
  default_branch: string;
  last_build_status: string | null;
  created_at: Date | number;
  updated_at: Date | number;
}

interface PageSource {
  page(limit: number, offset: number): Promise<{ items: ProjectRow[]; total: number }>;
  one(id: number): Promise<ProjectRow | undefined>;
  close(): Promise<void>;
}

// The same columns, last-build subquery, order and total as src/repositories/projects.ts.
const TOTAL = 'select cast(coalesce(sum(n), 0) as integer) as total from project_count';
const COLUMNS = `p.id, p.name, p.repo, p.default_branch,
  (select b.status from builds b where b.project_id = p.id order by b.number desc limit 1) as last_build_status,
  p.created_at, p.updated_at`;

function sqliteSource(path: string): PageSource {
  const db = new BetterSqlite3(path);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  const pageQuery = db.prepare(`select ${COLUMNS} from projects p order by p.id limit ? offset ?`);
  const countQuery = db.prepare(TOTAL);
  const oneQuery = db.prepare(`select ${COLUMNS} from projects p where p.id = ?`);
  // Timestamps are stored as epoch milliseconds; the API sends ISO-8601.
  const wire = (row: ProjectRow): ProjectRow => ({
    ...row,
    created_at: new Date(row.created_at as number),
    updated_at: new Date(row.updated_at as number),
  });
  return {
    page: async (limit, offset) => ({
      items: (pageQuery.all(limit, offset) as ProjectRow[]).map(wire),
      total: (countQuery.get() as { total: number }).total,
    }),
    one: async (id) => {
      const row = oneQuery.get(id) as ProjectRow | undefined;
      return row && wire(row);
    },
    close: async () => {
      db.close();
    },
  };
}

function pgSource(url: string): PageSource {
  // Same pool size as the app's client, and no pipelining either (src/db/client.ts says why).
  const options: PostgresOptions = { max: 10, max_pipeline: 0, onnotice: () => {} };
  const sql = postgres(url, options);
  return {
    page: async (limit, offset) => {
      const [items, totals] = await Promise.all([
        sql<ProjectRow[]>`select ${sql.unsafe(COLUMNS)} from projects p order by p.id limit ${limit} offset ${offset}`,
        sql<{ total: number }[]>`${sql.unsafe(TOTAL)}`,
      ]);
      return { items, total: totals[0]?.total ?? 0 };
    },
    one: async (id) => (await sql<ProjectRow[]>`select ${sql.unsafe(COLUMNS)} from projects p where p.id = ${id}`)[0],
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

app.get('/bare', async () => ({ hello: 'world' }));

app.get<{ Querystring: { page?: string; per_page?: string } }>('/minimal/projects', async (request, reply) => {
  if (!(await verify(request, reply))) return { error: 'unauthorized' };
  const page = Number(request.query.page ?? 1);
  const perPage = Number(request.query.per_page ?? 20);
  const { items, total } = await source.page(perPage, (page - 1) * perPage);
  return { items, page, per_page: perPage, total };
});

app.get<{ Params: { id: string } }>('/minimal/projects/:id', async (request, reply) => {
  if (!(await verify(request, reply))) return { error: 'unauthorized' };
  const project = await source.one(Number(request.params.id));
  if (!project) reply.code(404);
  return project ?? { error: 'not_found' };
});

app.get('/health/ready', async () => ({ status: 'ok' }));
app.addHook('onClose', async () => source.close());

const stop = () => void app.close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
await app.listen({ port: Number(env('PORT')), host: '127.0.0.1' });
