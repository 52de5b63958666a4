/**
 * `npm run bench:flask`: GET /projects on Usine against the seed's Flask service (bench/flask-seed/app.py: Flask,
 * Flask-SQLAlchemy, a JWT checked on every request, gunicorn with 2 workers, as ../shared/seed runs it), both reading
 * the same SQLite file, a page of 20 out of 1,000 projects, in alternation so that the machine's other load weighs on
 * both alike, 10 connections each. Writes the "## The seed's Flask service" section of BENCHMARKS.md (unless --no-write).
 *
 * Needs gunicorn and the Python packages (Debian: `apt-get install gunicorn python3-flask python3-flask-sqlalchemy
 * python3-jwt`); without them it says so and measures nothing. GUNICORN=<path> picks another gunicorn.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseDatabaseUrl } from '../src/config.js';
import { loginAdmin, repoRoot, stopServer, type ServerProcess } from '../test/processes.js';
import { migrate, scratchDatabase, seed } from './database.js';
import { measureAlternating, type Measurement } from './load.js';
import { describeMachine } from './machine.js';
import { readBenchmarks, upsertSection, writeBenchmarks } from './markdown.js';
import { JWT, spawnReady, startApp } from './servers.js';

const GOAL = 6;
const write = !process.argv.includes('--no-write');
const gunicorn = process.env.GUNICORN ?? '/usr/bin/gunicorn';
if (!existsSync(gunicorn)) {
  console.log(`No gunicorn at ${gunicorn}: apt-get install gunicorn python3-flask python3-flask-sqlalchemy python3-jwt (nothing measured)`);
  process.exit(0);
}

/** gunicorn: its master forks the workers, and takes them down when stopped. */
const startFlask = (dbPath: string): Promise<ServerProcess> =>
  spawnReady('flask-seed', (port) => ({
    file: gunicorn,
    args: ['--workers', '2', '--worker-class', 'gthread', '--threads', '1', '--bind', `127.0.0.1:${port}`, '--chdir', join(repoRoot, 'bench', 'flask-seed'), 'app:app'],
    env: { ...JWT, SEED_DB_PATH: dbPath },
  }));

const database = await scratchDatabase('sqlite');
const servers: ServerProcess[] = [];
try {
  await migrate(database.url);
  await seed(database, 1000, 1000);
  const config = parseDatabaseUrl(database.url);
  if (config.dialect !== 'sqlite') throw new Error('not a SQLite database');
  const usine = await startApp(database.url, 'bench-flask-usine', { dist: true });
  servers.push(usine);
  const flask = await startFlask(config.path);
  servers.push(flask);
  const token = await loginAdmin(usine.url);
  const headers = { authorization: `Bearer ${token}` };
  const check = await fetch(`${flask.url}/projects`, { headers });
  if (check.status !== 200) throw new Error(`Flask GET /projects answered ${check.status}: ${await check.text()}`);
  const [onUsine, onFlask] = (await measureAlternating(
    [
      { url: `${usine.url}/projects`, headers, connections: 10, pid: usine.pid },
      { url: `${flask.url}/projects`, headers, connections: 10 },
    ],
    20,
    3,
    4,
  )) as [Measurement, Measurement];
  const ratio = onUsine.rps / onFlask.rps;
  const row = (name: string, m: Measurement) => `| ${name} | ${m.rps.toFixed(0)} | ${m.p50} | ${m.p99} | ${m.bad} |`;
  const machine = await describeMachine(['sqlite']);
  const section = `## The seed's Flask service

\`npm run bench:flask\` (bench/flask-seed.ts) measures \`GET /projects\` (a page of 20 out of 1,000 projects, 10
connections, 4 alternating rounds over 20 s after a warm-up) on Usine (\`npm start\`'s process) and on the seed's
Flask service (bench/flask-seed/app.py: Flask, Flask-SQLAlchemy, the token checked with PyJWT on every request,
gunicorn with 2 workers of one thread each: one request at a time per worker, as the seed's sync workers, but with
keep-alive, which sync workers close after every answer and autocannon then counts as errors), both on the same
SQLite file. ${machine.join('; ')}.

| Server | req/s | p50 ms | p99 ms | non-2xx/errors |
| --- | --- | --- | --- | --- |
${row('Usine (Fastify, 1 process)', onUsine)}
${row('Seed (Flask + gunicorn, 2 workers)', onFlask)}

Usine answers **${ratio.toFixed(1)}×** the seed's rate (goal ≥ ${GOAL}×: ${ratio >= GOAL ? 'met' : '**not met**'}).
`;
  console.log(section);
  if (write) {
    writeBenchmarks(upsertSection(readBenchmarks(), "## The seed's Flask service", section, '## Build throughput'));
    console.log('Wrote BENCHMARKS.md');
  }
} finally {
  for (const server of servers) await stopServer(server).catch(() => undefined);
  await database.drop();
}
process.exit(0);
