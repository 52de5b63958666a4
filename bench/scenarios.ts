/**
 * The HTTP scenarios, in the order they run against one database: the baselines first (same data as the app's reads),
 * the reads, then logins and the writes (which add rows). Each names the baseline its ratio is taken against.
 */
import { randomBytes } from 'node:crypto';
import type { LoadSpec } from './load.js';

export interface Context {
  appUrl: string;
  baselineUrl: string;
  token: string;
  /** A project with 3 builds, for GET /projects/:id. */
  projectId: number;
  bigProjectId: number;
  bigBuilds: number;
  /** A project created for POST /projects/:id/build. */
  triggerProjectId: number;
  connections: number;
  /** The `next_cursor` leading to the last builds page of the big project, when the API gives cursors. */
  deepCursor?: string;
}

export interface Scenario {
  name: string;
  /** As printed: method and path. */
  title: string;
  /** The server process it loads. */
  server: 'app' | 'baseline';
  /** Skipped when this says so (a feature the API under test does not have). */
  skip?(context: Context): boolean;
  /** Scenarios of one group run in alternation (see measureAlternating): a read with its minimal route, the builds pages. */
  group?: string;
  /** The scenario whose req/s this one's is divided by, besides the bare route. */
  minimal?: string;
  spec(context: Context): LoadSpec;
}

const auth = (context: Context) => ({ authorization: `Bearer ${context.token}` });
const get = (url: string, context: Context, authorized = true): LoadSpec => ({
  url,
  headers: authorized ? auth(context) : {},
  connections: context.connections,
});
export const PER_PAGE = 20;
export const deepPage = (context: Context) => Math.ceil(context.bigBuilds / PER_PAGE);

export const SCENARIOS: Scenario[] = [
  { name: 'bare', title: 'GET /bare (baseline: constant)', server: 'baseline', spec: (c) => get(`${c.baselineUrl}/bare`, c, false) },
  {
    name: 'minimal-projects',
    title: 'GET /minimal/projects (baseline: least work)',
    server: 'baseline',
    group: 'projects',
    spec: (c) => get(`${c.baselineUrl}/minimal/projects`, c),
  },
  {
    name: 'minimal-project',
    title: 'GET /minimal/projects/:id (baseline: least work)',
    server: 'baseline',
    group: 'project',
    spec: (c) => get(`${c.baselineUrl}/minimal/projects/${c.projectId}`, c),
  },
  {
    name: 'minimal-builds-first',
    title: 'GET /minimal/projects/:id/builds (baseline: first page)',
    server: 'baseline',
    group: 'builds',
    spec: (c) => get(`${c.baselineUrl}/minimal/projects/${c.bigProjectId}/builds?per_page=${PER_PAGE}`, c),
  },
  {
    name: 'minimal-builds-deep',
    title: 'GET /minimal/projects/:id/builds (baseline: last page)',
    server: 'baseline',
    group: 'builds',
    spec: (c) => get(`${c.baselineUrl}/minimal/projects/${c.bigProjectId}/builds?per_page=${PER_PAGE}&page=${deepPage(c)}`, c),
  },
  {
    name: 'minimal-status',
    title: 'GET /minimal/status (baseline: the queue counts)',
    server: 'baseline',
    group: 'status',
    spec: (c) => get(`${c.baselineUrl}/minimal/status`, c, false),
  },
  { name: 'status', title: 'GET /status', server: 'app', group: 'status', minimal: 'minimal-status', spec: (c) => get(`${c.appUrl}/status`, c, false) },
  {
    name: 'projects',
    title: 'GET /projects (page of 20)',
    server: 'app',
    group: 'projects',
    minimal: 'minimal-projects',
    spec: (c) => get(`${c.appUrl}/projects`, c),
  },
  {
    name: 'project',
    title: 'GET /projects/:id',
    server: 'app',
    group: 'project',
    minimal: 'minimal-project',
    spec: (c) => get(`${c.appUrl}/projects/${c.projectId}`, c),
  },
  {
    name: 'builds-first',
    title: 'GET /projects/:id/builds (first page)',
    server: 'app',
    group: 'builds',
    minimal: 'minimal-builds-first',
    spec: (c) => get(`${c.appUrl}/projects/${c.bigProjectId}/builds?per_page=${PER_PAGE}`, c),
  },
  {
    name: 'builds-deep',
    title: 'GET /projects/:id/builds (last page)',
    server: 'app',
    group: 'builds',
    minimal: 'minimal-builds-deep',
    spec: (c) => get(`${c.appUrl}/projects/${c.bigProjectId}/builds?per_page=${PER_PAGE}&page=${deepPage(c)}`, c),
  },
  {
    name: 'builds-cursor',
    title: 'GET /projects/:id/builds (last page by ?cursor=)',
    server: 'app',
    group: 'builds',
    minimal: 'minimal-builds-deep',
    skip: (c) => c.deepCursor === undefined,
    spec: (c) => get(`${c.appUrl}/projects/${c.bigProjectId}/builds?per_page=${PER_PAGE}&cursor=${encodeURIComponent(c.deepCursor ?? '')}`, c),
  },
  {
    name: 'login',
    title: 'POST /login (argon2id)',
    server: 'app',
    spec: (c) => ({ url: `${c.appUrl}/login`, method: 'POST', body: { username: 'admin', password: 'admin123' }, connections: c.connections }),
  },
  {
    name: 'create-project',
    title: 'POST /projects',
    server: 'app',
    spec: (c) => {
      const run = randomBytes(3).toString('hex');
      let next = 0;
      return {
        url: `${c.appUrl}/projects`,
        method: 'POST',
        headers: auth(c),
        makeBody: () => ({ name: `load-${run}-${next++}`, repo: 'https://github.com/bench/load' }),
        connections: c.connections,
      };
    },
  },
  {
    name: 'trigger-build',
    title: 'POST /projects/:id/build',
    server: 'app',
    spec: (c) => ({ url: `${c.appUrl}/projects/${c.triggerProjectId}/build`, method: 'POST', headers: auth(c), connections: c.connections }),
  },
];

/** Names accepted by --only, besides the scenarios above. */
export const EXTRA_NAMES = ['login-flood', 'sse', 'builds'] as const;
