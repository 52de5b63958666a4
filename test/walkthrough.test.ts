import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from '../src/server.js';
import { createScratchDatabase, testConfig, testDb, type ScratchDatabase } from './helper.js';

const run = promisify(execFile);

/** The seed guide's "Exemples d'utilisation (curl)", copied verbatim. */
const SEED_BASE_URL = 'http://localhost:5000';
const SEED_COMMANDS = {
  login: `curl -X POST http://localhost:5000/login -H "Content-Type: application/json" -d '{"username":"admin","password":"admin123"}'`,
  listProjects: `curl -H "Authorization: Bearer <token>" http://localhost:5000/projects`,
  createProject: `curl -X POST http://localhost:5000/projects -H "Authorization: Bearer <token>" -H "Content-Type: application/json" -d '{"name":"DemoProj","repo":"https://github.com/demo/repo"}'`,
  build: `curl -X POST http://localhost:5000/projects/1/build -H "Authorization: Bearer <token>"`,
  listBuilds: `curl -H "Authorization: Bearer <token>" http://localhost:5000/projects/1/builds`,
  status: `curl http://localhost:5000/status`,
} as const;

const seedDir = new URL('../../shared/seed/', import.meta.url);

/**
 * Splits a command line the way a POSIX shell would for the subset the seed uses: blanks, '…' and "…"
 * (with \ escapes). Anything that would make the shell do more than split words is refused.
 */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < line.length; ) {
    const c = line.charAt(i);
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated ' in ${line}`);
      word += line.slice(i + 1, end);
      i = end + 1;
      inWord = true;
    } else if (c === '"') {
      i++;
      while (i < line.length && line.charAt(i) !== '"') {
        if (line.charAt(i) === '\\' && '"\\$`'.includes(line.charAt(i + 1))) i++;
        if (line.charAt(i) === '$' || line.charAt(i) === '`') throw new Error(`expansion in ${line}`);
        word += line.charAt(i++);
      }
      if (i >= line.length) throw new Error(`unterminated " in ${line}`);
      i++;
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
    } else if ('$`|;&<>()*?\\'.includes(c)) {
      throw new Error(`shell metacharacter ${c} in ${line}`);
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}

interface HttpResult {
  status: number;
  body: string;
  json: () => unknown;
}

/** Runs one seed line through the real curl binary, against `baseUrl`, with `<token>` filled in. */
async function curl(command: string, baseUrl: string, token?: string): Promise<HttpResult> {
  expect(command.startsWith(`curl `)).toBe(true);
  expect(command).toContain(SEED_BASE_URL);
  let line = command.replaceAll(SEED_BASE_URL, baseUrl);
  if (line.includes('<token>')) {
    if (!token) throw new Error(`no token for: ${command}`);
    line = line.replaceAll('<token>', token);
  }
  const [binary, ...args] = shellWords(line);
  expect(binary).toBe('curl');
  const { stdout } = await run('curl', ['-sS', '--max-time', '15', '-w', '\n%{http_code}', ...args], { encoding: 'utf8' });
  const cut = stdout.lastIndexOf('\n');
  const body = stdout.slice(0, cut);
  return { status: Number(stdout.slice(cut + 1)), body, json: () => JSON.parse(body) as unknown };
}

/** A fresh database and a really listening server on an ephemeral port, closed after the block. */
function useListeningServer() {
  /** Server-side view of the TCP connections: how many opened and closed, and which one carried each request. */
  const server = {
    baseUrl: '',
    app: undefined as FastifyInstance | undefined,
    connections: 0,
    closedConnections: 0,
    requestPorts: [] as number[],
  };
  let scratch: ScratchDatabase | undefined;
  beforeAll(async () => {
    scratch = await createScratchDatabase();
    const app = await createServer(testConfig(scratch.url), { logger: false });
    server.app = app;
    app.server.on('connection', (socket: Socket) => {
      server.connections++;
      socket.on('close', () => server.closedConnections++);
    });
    app.server.on('request', (request: IncomingMessage) => server.requestPorts.push(request.socket.remotePort ?? -1));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address() as AddressInfo;
    expect(address.port).toBeGreaterThan(0);
    server.baseUrl = `http://127.0.0.1:${address.port}`;
  });
  afterAll(async () => {
    await server.app?.close();
    await scratch?.drop();
  });
  return server;
}

type Project = { id: number; name: string; repo: string; last_build_status: string | null };
type Build = {
  id: number;
  project_id: number;
  number: number;
  status: string;
  duration_s: number | null;
  logs: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
};

const TERMINAL = ['success', 'fail', 'canceled'];

/** Polls `GET /builds/:id` (a route the seed does not have) until the build has run, as a client following it would. */
async function pollUntilFinished(baseUrl: string, token: string, id: number): Promise<Build> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const response = await fetch(`${baseUrl}/builds/${id}`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(200);
    const build = (await response.json()) as Build;
    if (TERMINAL.includes(build.status)) return build;
    if (Date.now() > deadline) throw new Error(`build ${id} still ${build.status} after 15 s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
type Page<T> = { items: T[]; page: number; per_page: number; total: number };

describe(`the seed's curl walkthrough through curl on a listening server (${testDb})`, () => {
  const server = useListeningServer();

  it.skipIf(!existsSync(seedDir))('keeps its command lines verbatim from ../shared/seed', () => {
    const seed = readdirSync(seedDir)
      .filter((file) => file.endsWith('.md'))
      .map((file) => readFileSync(new URL(file, seedDir), 'utf8'))
      .join('\n');
    const seedLines = seed.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('curl '));
    expect(seedLines).toEqual(Object.values(SEED_COMMANDS));
  });

  it('runs login, list projects, create DemoProj, build, list builds and status unchanged', async () => {
    const login = await curl(SEED_COMMANDS.login, server.baseUrl);
    expect(login.status, login.body).toBe(200);
    const { access_token, token_type } = login.json() as { access_token: string; token_type: string };
    expect(token_type).toBe('bearer');
    expect(access_token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);

    const projects = await curl(SEED_COMMANDS.listProjects, server.baseUrl, access_token);
    expect(projects.status, projects.body).toBe(200);
    expect(projects.json()).toMatchObject({ items: [], page: 1, total: 0 });

    const created = await curl(SEED_COMMANDS.createProject, server.baseUrl, access_token);
    expect(created.status, created.body).toBe(201);
    // The seed then builds /projects/1: on a fresh database DemoProj is project 1.
    expect(created.json()).toMatchObject({ id: 1, name: 'DemoProj', repo: 'https://github.com/demo/repo', last_build_status: null });

    const build = await curl(SEED_COMMANDS.build, server.baseUrl, access_token);
    expect(build.status, build.body).toBe(201);
    const built = build.json() as Build;
    // The seed's fields are all there; the build is queued and a worker runs it.
    for (const field of ['id', 'project_id', 'status', 'duration_s', 'logs', 'created_at']) expect(built).toHaveProperty(field);
    expect(built).toMatchObject({ project_id: 1, number: 1, status: 'queued', duration_s: null, logs: '' });

    const finished = await pollUntilFinished(server.baseUrl, access_token, built.id);
    expect(['success', 'fail']).toContain(finished.status);
    // The whole pipeline (2–10 s) on success; a failing run's ends with its failing step.
    expect(finished.duration_s).toBeGreaterThan(0);
    expect(finished.duration_s).toBeLessThanOrEqual(10);
    if (finished.status === 'success') expect(finished.duration_s).toBeGreaterThanOrEqual(2);
    expect(finished.logs).toContain(`Build finished: ${finished.status} in ${finished.duration_s} s`);

    const builds = await curl(SEED_COMMANDS.listBuilds, server.baseUrl, access_token);
    expect(builds.status, builds.body).toBe(200);
    const page = builds.json() as Page<Build>;
    expect(page.total).toBe(1);
    expect(page.items).toHaveLength(1);
    expect(page.items[0]).toMatchObject({ id: built.id, project_id: 1, status: finished.status, duration_s: finished.duration_s });

    const project = await fetch(`${server.baseUrl}/projects/1`, { headers: { authorization: `Bearer ${access_token}` } });
    expect(((await project.json()) as Project).last_build_status).toBe(finished.status);

    const status = await curl(SEED_COMMANDS.status, server.baseUrl);
    expect(status.status, status.body).toBe(200);
    expect(status.json()).toMatchObject({ status: 'ok', db: 'ok', db_dialect: testDb, queue: { queued: 0, running: 0 } });

    // Without the token, the protected lines are refused.
    const anonymous = await curl(SEED_COMMANDS.listProjects.replace(' -H "Authorization: Bearer <token>"', ''), server.baseUrl);
    expect(anonymous.status).toBe(401);
    expect(anonymous.json()).toMatchObject({ status: 401, error: 'unauthorized' });
  });
});

describe(`the seed's walkthrough with fetch over one keep-alive connection (${testDb})`, () => {
  const server = useListeningServer();

  it('runs the same six steps (and a project read, and polls of the build) over reused keep-alive connections', async () => {
    const url = (path: string) => `${server.baseUrl}${path}`;
    const connectionsBefore = server.connections;
    const closedBefore = server.closedConnections;
    const requestsBefore = server.requestPorts.length;
    const headersOf: Headers[] = [];
    const call = async (path: string, init: RequestInit = {}) => {
      // fetch (undici) keeps connections alive by default.
      const response = await fetch(url(path), init);
      headersOf.push(response.headers);
      return { status: response.status, headers: response.headers, body: (await response.json()) as unknown };
    };

    const login = await call('/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: 'admin123' }),
    });
    expect(login.status).toBe(200);
    const token = (login.body as { access_token: string }).access_token;
    expect(token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    const auth = { authorization: `Bearer ${token}` };

    const projects = await call('/projects', { headers: auth });
    expect(projects.status).toBe(200);
    expect(projects.body).toMatchObject({ items: [], total: 0 });

    const created = await call('/projects', {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'DemoProj', repo: 'https://github.com/demo/repo' }),
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: 1, name: 'DemoProj' });
    expect(created.headers.get('location')).toBe('/projects/1');

    const build = await call('/projects/1/build', { method: 'POST', headers: auth });
    expect(build.status).toBe(201);
    const built = build.body as Build;
    expect(built).toMatchObject({ project_id: 1, status: 'queued', duration_s: null });
    expect(build.headers.get('location')).toBe(`/builds/${built.id}`);

    // Follow the build over the same connections until a worker has run it.
    let finished = built;
    const deadline = Date.now() + 15_000;
    while (!['success', 'fail', 'canceled'].includes(finished.status)) {
      if (Date.now() > deadline) throw new Error(`build ${built.id} still ${finished.status} after 15 s`);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const polled = await call(`/builds/${built.id}`, { headers: auth });
      expect(polled.status).toBe(200);
      finished = polled.body as Build;
    }
    expect(['success', 'fail']).toContain(finished.status);
    const polls = headersOf.length - 4;
    expect(polls).toBeGreaterThanOrEqual(1);

    const builds = await call('/projects/1/builds', { headers: auth });
    expect(builds.status).toBe(200);
    expect((builds.body as Page<Build>).items.map((b) => [b.id, b.status])).toEqual([[built.id, finished.status]]);

    const project = await call('/projects/1', { headers: auth });
    expect(project.status).toBe(200);
    expect((project.body as Project).last_build_status).toBe(finished.status);

    const status = await call('/status');
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({ status: 'ok', db: 'ok', queue: { queued: 0, running: 0 } });

    // Seven sequential requests plus the polls, all answered keep-alive, over connections the server never closed.
    // undici may open a second socket while the first is still being released, so reuse is asserted rather than an
    // exact count.
    expect(headersOf).toHaveLength(7 + polls);
    for (const headers of headersOf) expect(headers.get('connection')).toBe('keep-alive');
    const ports = server.requestPorts.slice(requestsBefore);
    expect(ports).toHaveLength(7 + polls);
    const perConnection = new Map<number, number>();
    for (const port of ports) perConnection.set(port, (perConnection.get(port) ?? 0) + 1);
    expect(server.connections - connectionsBefore).toBe(perConnection.size);
    expect(perConnection.size).toBeLessThanOrEqual(3);
    expect(Math.max(...perConnection.values())).toBeGreaterThanOrEqual(3);
    expect(server.closedConnections).toBe(closedBefore);
  });
});
